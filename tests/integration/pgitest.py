# SPDX-License-Identifier: MIT
"""The integration harness of itest.c, for tests written in Python.

A real passguardd on the simulated host, in a temporary directory, spoken to
over its real socket. The fixture host and policy are itest.c's own, printed
by the itest-fixture helper, so that C and Python tests run on the same host.
The host file is changed under the simulator's flock protocol (exclusive lock
on FILE.lock, write a temporary file, rename).

Environment, set by tests/integration/meson.build:
  PASSGUARDD, PASSGUARD_CLI   the binaries
  ITEST_FIXTURE               the itest-fixture helper
  PG_SOURCE_ROOT, PG_BUILD_ROOT
  PYTHONPATH                  bindings/python of the source tree
ITEST_KEEP=1 keeps the temporary directories.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

SKIP = 77

# The fixture host of itest.h.
DEV_GPU = "0000:03:00.0"      # 10de, pciback, quarantined, flr, alone in group 7
DEV_GPU2 = "0000:0a:00.0"     # 10de, pciback, quarantined, flr, group 13
DEV_NIC = "0000:04:00.0"      # 8086 NIC, pciback, quarantined, group 8
DEV_IGB = "0000:05:00.0"      # NIC still bound to igb and owned by dom0
DEV_SATA = "0000:00:1f.2"     # protected by the policy
DEV_NORESET = "0000:06:00.0"  # pciback, quarantined, no reset method
DEV_SLOT0 = "0000:07:00.0"    # same group (11) as DEV_SLOT1
DEV_SLOT1 = "0000:07:00.1"
DEV_SPARE = "0000:08:00.0"    # pciback, quarantined, group 12: fault target
DEV_E1000 = "0000:09:00.0"    # bound to e1000e, owned by dom0: for prepare
DEV_GHOST = "0000:0f:00.0"    # not on the host

DOM_RENDER1 = 5    # "render-1", hvm
DOM_RENDER2 = 6    # "render-2", hvm
DOM_NETPV = 7      # "net-pv", pv
DOM_NETPVH = 8     # "net-pvh", pvh
DOM_DYING = 9      # "dying-1", hvm, dying
DOM_NOIOMMU = 10   # "noiommu-1", hvm, created without an IOMMU context
DOM_RENDERPV = 11  # "render-pv", pv
DOM_NETHVM = 12    # "net-hvm", hvm


def env(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        sys.exit(f"{name} is not set: run this test through meson test")
    return v


def fixture(what: str) -> str:
    """itest.c's default "host" (JSON text) or "policy"."""
    return subprocess.run([env("ITEST_FIXTURE"), what], check=True, capture_output=True,
                          text=True).stdout


# ---- checks, as tests/unit/harness.h: record a failure and go on ----

checks = 0
failures = 0


def _where() -> str:
    frame = inspect.stack()[2]
    return f"{os.path.basename(frame.filename)}:{frame.lineno}"


def check(cond: Any, msg: str = "") -> bool:
    global checks, failures
    checks += 1
    if not cond:
        failures += 1
        print(f"FAIL {_where()}: {msg or 'check failed'}", file=sys.stderr, flush=True)
    return bool(cond)


def check_eq(got: Any, want: Any, msg: str = "") -> bool:
    global checks, failures
    checks += 1
    if got != want:
        failures += 1
        print(f"FAIL {_where()}: {msg + ': ' if msg else ''}{got!r} != {want!r}",
              file=sys.stderr, flush=True)
        return False
    return True


def check_raises(cls: type, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call fn; check that it raises cls; return the exception (or None)."""
    global checks, failures
    checks += 1
    try:
        r = fn(*args, **kwargs)
    except cls as e:
        return e
    except BaseException as e:  # noqa: B902 - report anything else as a failure
        failures += 1
        print(f"FAIL {_where()}: expected {cls.__name__}, got {type(e).__name__}: {e}",
              file=sys.stderr, flush=True)
        return None
    failures += 1
    print(f"FAIL {_where()}: expected {cls.__name__}, got the result {r!r}",
          file=sys.stderr, flush=True)
    return None


def exit_status() -> int:
    """1 on a failure, or when no check ran: a test that checks nothing cannot fail."""
    print(f"{checks} checks, {failures} failed", flush=True)
    if checks == 0:
        print("FAIL no check ran", file=sys.stderr, flush=True)
        return 1
    return 1 if failures else 0


# ---- the daemon ----

class Daemon:
    """A passguardd on a simulated host in a temporary directory (itest.c's struct itest)."""

    def __init__(self, name: str, host: Optional[Mapping[str, Any]] = None,
                 policy: Optional[str] = None,
                 config: str = "idle_timeout = 30;\nmax_connections = 64;\n") -> None:
        self.daemon_bin = env("PASSGUARDD")
        self.cli_bin = env("PASSGUARD_CLI")
        self.dir = tempfile.mkdtemp(prefix=f"pg-pytest-{name}-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.host = os.path.join(self.dir, "host.json")
        self.state = os.path.join(self.dir, "state")
        self.grants = os.path.join(self.state, "grants.json")
        self.run = os.path.join(self.dir, "run")
        self.sock = os.path.join(self.run, "passguard.sock")
        self.policy = os.path.join(self.dir, "policy.conf")
        self.config = os.path.join(self.dir, "passguardd.conf")
        self.log = os.path.join(self.dir, "daemon.log")
        self.proc: Optional[subprocess.Popen[bytes]] = None
        os.mkdir(self.state, 0o700)
        os.mkdir(self.run, 0o755)
        self.host_store(dict(host) if host is not None else json.loads(fixture("host")))
        self.write(self.policy, policy if policy is not None else fixture("policy"))
        self.write(self.config, config)

    # context manager: always stop the daemon and remove the directory
    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish(dump_log=exc[0] is not None)

    def finish(self, dump_log: bool = False) -> None:
        if dump_log or failures:
            self.dump_log()
        self.stop()
        if os.environ.get("ITEST_KEEP"):
            print(f"# kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def write(path: str, text: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def argv(self, extra: Sequence[str] = ()) -> List[str]:
        return [self.daemon_bin, "--backend", "sim", "--sim-host", self.host,
                "--socket", self.sock, "--state-dir", self.state, "--policy", self.policy,
                "--config", self.config, "--debug", *extra]

    def start(self, extra: Sequence[str] = (), timeout: float = 10.0) -> None:
        """Start passguardd and wait until its socket answers."""
        if self.proc is not None:
            self.stop()
        argv = self.argv(extra)
        with open(self.log, "ab") as log:
            log.write(("---- pgitest: starting " + " ".join(argv[1:]) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.dump_log()
                raise RuntimeError(f"passguardd exited with {self.proc.returncode}")
            if self.answers():
                return
            time.sleep(0.005)
        raise RuntimeError("passguardd did not start listening")

    def answers(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.sock)
                return True
            except OSError:
                return False

    def stop(self) -> Optional[int]:
        """SIGTERM, SIGKILL after 5 s; the exit status."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def restart(self, extra: Sequence[str] = ()) -> None:
        self.stop()
        self.start(extra)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def dump_log(self) -> None:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return
        print("---- daemon log ----\n" + text[-20000:] + "---- end of daemon log ----",
              file=sys.stderr)

    def client_env(self) -> Dict[str, str]:
        """The environment of a client of this daemon."""
        e = dict(os.environ)
        e["PASSGUARD_SOCKET"] = self.sock
        return e

    def cli(self, *args: str, **kwargs: Any) -> "subprocess.CompletedProcess[str]":
        """Run `passguard --socket SOCK args...`."""
        return subprocess.run([self.cli_bin, "--socket", self.sock, *args],
                              capture_output=True, text=True, timeout=30, **kwargs)

    # ---- the host file, under the simulator's lock ----

    @contextlib.contextmanager
    def _locked(self, how: int = fcntl.LOCK_EX) -> Iterator[None]:
        with open(self.host + ".lock", "a") as lock:
            fcntl.flock(lock, how)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _replace_host(self, host: Mapping[str, Any]) -> None:
        tmp = self.host + ".pgitest.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(host, f, indent=2)
        os.rename(tmp, self.host)

    def _read_host(self) -> Dict[str, Any]:
        with open(self.host, encoding="utf-8") as f:
            return json.load(f)

    def host_load(self) -> Dict[str, Any]:
        """Under the shared lock: the daemon counts calls while it holds the lock."""
        with self._locked(fcntl.LOCK_SH):
            return self._read_host()

    def host_store(self, host: Mapping[str, Any]) -> None:
        with self._locked():
            self._replace_host(host)

    def host_edit(self, fn: Callable[[Dict[str, Any]], None]) -> None:
        with self._locked():
            host = self._read_host()
            fn(host)
            self._replace_host(host)

    def device(self, host: Mapping[str, Any], bdf: str) -> Dict[str, Any]:
        for d in host["devices"]:
            if d["bdf"] == bdf:
                return d
        raise KeyError(bdf)

    def owner(self, bdf: str) -> str:
        """"null" (dom0), "io", or the domid as text (itest_owner)."""
        v = self.device(self.host_load(), bdf).get("assigned_to")
        return "null" if v is None else str(v)

    def calls(self, op: str) -> int:
        return int(self.host_load().get("calls", {}).get(op, 0))

    def set_fault(self, op: str, bdf: str, errname: Optional[str]) -> None:
        def edit(h: Dict[str, Any]) -> None:
            faults = h.setdefault("faults", {}).setdefault(op, {})
            if errname is None:
                faults.pop(bdf, None)
            else:
                faults[bdf] = errname
        self.host_edit(edit)

    def set_owner(self, bdf: str, owner: Any) -> None:
        """owner: None (dom0), "io" or a domid."""
        self.host_edit(lambda h: self.device(h, bdf).__setitem__("assigned_to", owner))

    def set_bool(self, key: str, value: bool) -> None:
        self.host_edit(lambda h: h.__setitem__(key, value))

    def grants_load(self) -> Dict[str, Any]:
        """The store as the daemon would load it: grants.json, grants.journal replayed over it."""
        try:
            with open(self.grants, encoding="utf-8") as f:
                store = json.load(f)
        except FileNotFoundError:
            store = {"format": 1, "grants": [], "prepared": []}
        try:
            with open(os.path.join(self.state, "grants.journal"), encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (FileNotFoundError, IsADirectoryError):
            return store
        for i, line in enumerate(lines):
            try:
                rec = json.loads(line)
            except ValueError:
                break  # a torn last record
            if i == 0:
                if rec.get("op") != "base" or rec.get("snapshot") != store.get("checksum"):
                    break  # another snapshot's journal: all of it is in this one
                continue
            op, dev = rec.get("op"), rec.get("device")
            if op in ("grant", "release"):
                store["grants"] = [g for g in store["grants"] if g.get("device") != dev]
                if op == "grant":
                    store["grants"].append(rec["grant"])
            elif op in ("prepared", "unprepared"):
                store["prepared"] = [p for p in store["prepared"] if p.get("device") != dev]
                if op == "prepared":
                    store["prepared"].append({"device": dev, "driver": rec["driver"]})
        return store

    def granted(self, bdf: str) -> bool:
        return any(g.get("device") == bdf for g in self.grants_load().get("grants", []))
