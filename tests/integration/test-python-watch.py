# SPDX-License-Identifier: MIT
"""The event stream against a real passguardd on the simulated host.

Client.watch() yields one Event per decision, built from its audit record:
grant, refuse, release, domain-gone (a domain's death), unmanaged (an
assignment behind passguard's back, seen at the host's event), identity (a
prepared device replaced under the daemon), taint and reload, each with the
record's fields. AsyncClient.watch() is the same as an async iterator. Only
admins and the policy's watchers may watch; a watcher the new policy no
longer allows is closed after the reload's event. A watcher that does not
read is dropped, never blocking the daemon: it gets a last "dropped" event
and is closed, and everyone else is served meanwhile. Watchers count against
the connection limits. `passguard monitor` prints the events and exits 0 on
SIGINT/SIGTERM and 3 when the daemon goes away. pg_watch() and
pg_watch_next() from C: test-libpassguard.c.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import passguard
from passguard import Client
import pgitest
from pgitest import (DEV_E1000, DEV_GPU, DEV_NIC, DEV_SPARE, DOM_NETPVH, check, check_eq,
                     check_raises)


def until(w: passguard.Watch, pred: Any, timeout: float = 5.0) -> Optional[passguard.Event]:
    """The first event for which pred is true within timeout; None at the end of the stream."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not w.pending() and w.fileno() >= 0:
            if not select.select([w], [], [], max(end - time.monotonic(), 0))[0]:
                continue
        try:
            e = next(w)
        except (StopIteration, passguard.TransportError):
            return None
        if pred(e):
            return e
    return None


def flood(d: pgitest.Daemon, n: int) -> int:
    """n refused assigns pipelined on one connection, each one event; how many were answered."""
    burst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    burst.connect(d.sock)
    reqs = "".join(json.dumps({"op": "assign", "id": i, "domain": "render-pv",
                               "device": DEV_GPU}) + "\n" for i in range(n)).encode()
    t = threading.Thread(target=lambda: burst.sendall(reqs))
    t.start()
    answered = 0
    end = time.monotonic() + 60
    while answered < n and time.monotonic() < end:
        chunk = burst.recv(65536)
        if not chunk:
            break
        answered += chunk.count(b"\n")
    t.join()
    burst.close()
    return answered


def connect_when_free(d: pgitest.Daemon, timeout: float = 10.0) -> Client:
    """A client, once a connection slot is free (the daemon frees it when it sees the close)."""
    end = time.monotonic() + timeout
    while True:
        try:
            return Client(d.sock)
        except passguard.LimitReached:
            if time.monotonic() > end:
                raise
            time.sleep(0.02)


def stream(d: pgitest.Daemon) -> None:
    with Client(d.sock) as pg, pg.watch() as w:
        check(isinstance(w, passguard.Watch))
        # grant and release: the fields of the audit record
        pg.assign("net-pv", DEV_NIC)
        e = until(w, lambda e: e.event == "grant")
        if check(e is not None, "no grant event"):
            assert e is not None
            check_eq((e.op, e.device, e.domid, e.domain, e.decision, e.rule),
                     ("assign", DEV_NIC, 7, "net-pv", "granted", "net"))
            check_eq(e.client_uid, 0)
            check_eq(e.client_pid, os.getpid())
            check(isinstance(e.uuid, str) and e.time > 1_600_000_000, repr(e))
            check_eq(e.reply["event"], "grant")
        pg.release("net-pv", DEV_NIC)
        e = until(w, lambda e: e.event == "release")
        check(e is not None and e.device == DEV_NIC and e.decision == "released", repr(e))

        # a refusal
        check_raises(passguard.Busy, lambda: (pg.assign("net-pv", DEV_GPU),
                                              pg.assign("net-pvh", DEV_GPU)))
        e = until(w, lambda e: e.event == "refuse")
        check(e is not None and e.error == "busy" and e.device == DEV_GPU
              and e.domain == "net-pvh" and e.decision == "refused", repr(e))

        # a domain's death releases its grant
        d.host_edit(lambda h: h.__setitem__(
            "domains", [x for x in h["domains"] if x["domid"] != 7]))
        e = until(w, lambda e: e.event == "domain-gone")
        check(e is not None and e.device == DEV_GPU and e.domid == 7
              and e.op == "domain-death" and e.decision == "released", repr(e))

        # an assignment behind passguard's back, at the host's event
        d.set_owner(DEV_SPARE, DOM_NETPVH)
        e = until(w, lambda e: e.event == "unmanaged")
        check(e is not None and e.device == DEV_SPARE and e.domid == DOM_NETPVH
              and e.decision == "unmanaged", repr(e))
        d.set_owner(DEV_SPARE, "io")

        # a prepared device replaced under the daemon
        pg.prepare(DEV_E1000)
        until(w, lambda e: e.event == "prepare")
        d.host_edit(lambda h: d.device(h, DEV_E1000).__setitem__("device", "0x1533"))
        e = until(w, lambda e: e.event == "identity")
        check(e is not None and e.device == DEV_E1000 and e.message is not None
              and "device id 0x15b8 became 0x1533" in e.message, repr(e))

        # a taint
        d.set_fault("reset", DEV_GPU, "EIO")
        check_raises(passguard.ResetFailed, lambda: pg.assign("net-pvh", DEV_GPU))
        e = until(w, lambda e: e.event == "taint")
        check(e is not None and e.device == DEV_GPU and e.decision == "tainted", repr(e))
        check(pg.owner(DEV_GPU).tainted, "owner does not say tainted")
        d.set_fault("reset", DEV_GPU, None)
        pg.untaint(DEV_GPU)
        check(not pg.owner(DEV_GPU).tainted, "owner still says tainted")
        e = until(w, lambda e: e.event == "taint")
        check(e is not None and e.decision == "untainted" and e.op == "untaint", repr(e))

        # a reload
        pg.reload()
        e = until(w, lambda e: e.event == "reload")
        check(e is not None and e.decision == "reloaded", repr(e))

        # the client's connection is still a client's: requests go on meanwhile
        check_eq(pg.status()["backend"], "sim")
        check(d.alive())


def permission(d: pgitest.Daemon) -> None:
    """Admins and watchers may watch; a watcher the reloaded policy drops is closed."""
    d.write(d.policy, 'version = 1;\nclients = ( { name = "root"; uid = 0; } );\n')
    d.restart()
    with Client(d.sock) as pg:
        e = check_raises(passguard.NotAuthorized, pg.watch)
        if e:
            check_eq(e.check, "client")
            check("watchers" in e.message, e.message)
        check(not pg.closed)
    d.write(d.policy, 'version = 1;\nclients = ( { name = "root"; uid = 0; } );\n'
                      'watchers = [ "root" ];\n')
    d.restart()
    # Not an admin, but a watcher; SIGHUP reloads without an admin.
    with Client(d.sock) as pg, pg.watch() as w:
        d.write(d.policy, 'version = 1;\nclients = ( { name = "root"; uid = 0; } );\n')
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        e = until(w, lambda e: e.event == "reload")
        check(e is not None, "no reload event before the watcher was closed")
        check(until(w, lambda e: True, timeout=3) is None, "an event after the reload")
        check(w.fileno() == -1, "the watcher the policy dropped is still open")
    d.write(d.policy, pgitest.fixture("policy"))
    d.restart()


def slow_watcher(d: pgitest.Daemon) -> None:
    """A watcher that does not read is dropped; the daemon never waits for it."""
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(d.sock)
    slow.sendall(b'{"op":"hello","id":1,"version":1}\n{"op":"watch","id":2}\n')
    # Watching once the watch's reply is in.
    slow.settimeout(10)
    data = b""
    while data.count(b"\n") < 2:
        chunk = slow.recv(4096)
        if not check(bool(chunk), "no reply to watch"):
            return
        data += chunk
    # Far more events than a watcher's queue and its socket hold.
    n = 4000
    start = time.monotonic()
    answered = flood(d, n)
    elapsed = time.monotonic() - start
    check_eq(answered, n, "every request answered while a watcher did not read")
    check(elapsed < 30, f"{n} refusals took {elapsed:.1f} s")
    # The slow watcher: its events up to where it was dropped, then "dropped", then EOF.
    while True:
        try:
            chunk = slow.recv(65536)
        except socket.timeout:
            check(False, "the dropped watcher's connection was not closed")
            break
        if not chunk:
            break
        data += chunk
    slow.close()
    lines = data.decode().splitlines()
    check(len(lines) > 2, f"{len(lines)} lines")
    events = [json.loads(ln) for ln in lines[2:]]  # after the hello's and the watch's replies
    check_eq(json.loads(lines[1]).get("watching"), True)
    check(len(events) > 10, f"only {len(events)} events before the drop")
    check_eq(events[-1].get("event"), "dropped", "the last line")
    check(all(e.get("event") == "refuse" for e in events[:-1]), "events before the drop")
    check(len(events) < n, "the watcher was not dropped")
    check(d.alive())
    with Client(d.sock) as pg:
        check_eq(pg.status()["backend"], "sim")

    # Python's iterator ends after "dropped".
    with Client(d.sock) as pg:
        w = pg.watch()
        check_eq(flood(d, n), n)
        kinds = [e.event for e in w]
        check(bool(kinds) and kinds[-1] == "dropped", f"last of {len(kinds)}: {kinds[-1:]}")
        check(w.fileno() == -1)


def limits(d: pgitest.Daemon) -> None:
    """A watcher is a connection: it counts against max_connections."""
    d.write(d.config, "idle_timeout = 1;\nmax_connections = 2;\n")
    d.restart()
    a = Client(d.sock)
    w1 = a.watch()
    a.close()
    # Longer than idle_timeout: a watcher is never idle (it gets the grant below).
    time.sleep(1.5)
    with Client(d.sock) as b:
        e = check_raises(passguard.LimitReached, lambda: Client(d.sock))
        check(e is None or "too many connections" in e.message, repr(e))
        b.close()
        # the watcher still gets events, once the daemon has seen b go
        c = connect_when_free(d)
        with c:
            c.assign("net-pv", DEV_NIC)
            ev = until(w1, lambda e: e.event == "grant")
            check(ev is not None and ev.device == DEV_NIC, repr(ev))
            c.release("net-pv", DEV_NIC)
    w1.close()
    d.write(d.config, "idle_timeout = 30;\nmax_connections = 64;\n")
    d.restart()


def asyncio_watch(d: pgitest.Daemon) -> None:
    async def main() -> List[str]:
        seen: List[str] = []
        async with passguard.AsyncClient(d.sock, timeout=5) as pg:
            w = pg.watch()
            check(isinstance(w, passguard.AsyncWatch))
            async with w:
                async def act() -> None:
                    # async with has started the watch: nothing after it is missed
                    await pg.assign("net-pv", DEV_NIC)
                    await pg.release("net-pv", DEV_NIC)
                task = asyncio.create_task(act())
                async for e in w:
                    seen.append(f"{e.event} {e.device}")
                    if e.event == "release":
                        break
                await task
            check(w._done)  # noqa: SLF001
        return seen
    seen = asyncio.run(asyncio.wait_for(main(), 20))
    check_eq(seen, [f"grant {DEV_NIC}", f"release {DEV_NIC}"])

    async def refused() -> None:
        async with passguard.AsyncClient(d.sock) as pg:
            w = pg.watch()
            try:
                async for _ in w:
                    pass
            except passguard.NotAuthorized:
                return
            check(False, "watch by a client that may not")
    d.write(d.policy, 'version = 1;\nclients = ( { name = "root"; uid = 0; } );\n')
    d.restart()
    asyncio.run(refused())
    d.write(d.policy, pgitest.fixture("policy"))
    d.restart()


def monitor(d: pgitest.Daemon) -> None:
    """passguard monitor: one line per event; 0 on SIGINT or SIGTERM; 3 when the daemon goes."""
    for sig, as_json in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        args = [d.cli_bin, "--socket", d.sock, "monitor"] + (["--json"] if as_json else [])
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = monitor_ready(p)
        with Client(d.sock) as pg:
            pg.assign("net-pv", DEV_NIC)
            pg.release("net-pv", DEV_NIC)
        # both events printed, then the signal
        assert p.stdout is not None
        lines = [p.stdout.readline(), p.stdout.readline()]
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
        out = "".join(lines) + out
        check("watching passguardd's events" in ready, ready)
        check_eq(p.returncode, 0, f"monitor on {sig}: {err}")
        lines = out.splitlines()
        check_eq(len(lines), 2, out)
        if as_json:
            check_eq([json.loads(ln)["event"] for ln in lines], ["grant", "release"])
        else:
            check(len(lines) == 2 and "grant: granted assign " + DEV_NIC + " -> d7 (net-pv)"
                  in lines[0] and "release: released release" in lines[1], out)
    p = subprocess.Popen([d.cli_bin, "--socket", d.sock, "--json", "monitor"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    monitor_ready(p)
    d.stop()
    out, err = p.communicate(timeout=10)
    check_eq(p.returncode, 3, f"monitor when the daemon goes: {err}")
    d.start()


def monitor_ready(p: "subprocess.Popen[str]") -> str:
    """monitor's line on stderr: it watches from then on."""
    assert p.stderr is not None
    return p.stderr.readline()


def main() -> int:
    with pgitest.Daemon("python-watch") as d:
        d.start()
        stream(d)
        d.host_store(json.loads(pgitest.fixture("host")))
        d.restart()
        permission(d)
        slow_watcher(d)
        limits(d)
        asyncio_watch(d)
        monitor(d)
        check(d.alive())
    return pgitest.exit_status()


if __name__ == "__main__":
    sys.exit(main())
