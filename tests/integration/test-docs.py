# SPDX-License-Identifier: MIT
"""Every example in the README and the man pages is run, so none can rot.

WHERE: README.md, doc/*.scd, and every *.md under integrations/ and
bindings/. New files there are picked up without changing this test.

WHAT IS AN EXAMPLE:
  - a fenced block (a line ``` or ~~~ ... up to the same fence) in any of them;
  - in a .scd page, a paragraph that starts with "Example:" (the inline
    examples of passguard.conf(5); each *bold span* in it is one example);
  - and, to be found and converted to fenced blocks: tab-indented text in a
    .scd section whose title has EXAMPLE in it, and 4-space indented code
    blocks in Markdown. Those fail the test.

THE MARKER is a comment on the line right before the example (scdoc and
Markdown both leave it out of what they render):
    .scd:  ; example: KIND [OPTIONS]
    .md:   <!-- example: KIND [OPTIONS] -->
An example without a marker fails the test. KIND is one of:
  sh [status=N,N...] [files=NAME] [daemon]
      A shell session. Lines starting with "# " or "$ " (the prompt) are
      commands; a command ending in "\\" goes on on the next line; other lines
      are the expected output of the command above them, compared exactly
      (stdout and stderr together, trailing blanks ignored), where a line
      "..." stands for any number of lines. A command shown without output is
      run but its output is not compared. Each command must exit with its
      status= entry (default 0). A block without any prompt is one script.
      files=NAME copies tests/integration/doc-fixtures/NAME/ into the sandbox
      first. daemon: each command is a passguardd that must start listening
      on its --socket, answer `passguard status`, and exit 0 on SIGTERM.
  policy [groups=G,...]
      A whole policy file: `passguard policy check` must accept it.
  policy-fragment in=top|device|domain [groups=G,...]
      Part of a policy, checked inside a minimal policy: at the top level
      (replacing the setting of the same name; clients "xl" and "libvirt"
      exist), inside a device matcher (of protected), or inside a domain
      matcher (of a rule). groups= makes those groups exist for the check
      (a private mount namespace with its own /etc/group; needs root).
  c [status=N]
      A C program: compiled against the built libpassguard (with the build's
      compiler and sanitizers) and run against the page's daemon.
  c-synopsis
      C declarations: compiled after #include <passguard.h> (a prototype that
      differs from the header fails), each pg_* name in libpassguard.sym.
  python
      doctest text (">>> " lines and their output), run against the page's
      daemon; the blocks of one file share their names, as one doctest file.
  python-api
      Lines "[class] NAME(PARAMETERS) [-> RETURN]": each names an attribute
      of the passguard package whose signature (parameter names, kinds and
      defaults; the return annotation) must be the one shown.
  layout
      A tree of the source: each line starting with "DIR/" names a directory
      that must exist, and the file names and "SUB/" on its lines must exist
      under it.
  not-run REASON...
      Not run here, and why: it needs a real Xen host, or changes the
      system (installs, systemctl, /etc). The reason is printed.

THE SESSION: the examples of one file run in order, against one passguardd
of their own on a simulated host: the demo's world (tools/demo-host.json,
policy/examples/demo.conf, as tools/demo.sh uses). Commands run in a sandbox
directory holding host.json and policy.conf, with the built passguard and
passguardd first in PATH, PASSGUARD_SOCKET set to the daemon's socket, and
these paths rewritten into the sandbox, in commands, programs and expected
output alike: /etc/passguard/, /run/passguard/, /var/lib/passguard/, /tmp/.
The sandbox also links the top-level entries of the source tree, so that a
relative path such as tools/demo-host.json means what it means in the README.
The daemon listens on the rewritten /run/passguard/passguard.sock and reads
the rewritten /etc/passguard/policy.conf.

The test fails when an example is unmarked or fails, and prints each example
that ran and each that did not run, with its reason.
"""

from __future__ import annotations

import doctest
import glob
import inspect
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pgitest
from pgitest import check

ROOT = pgitest.env("PG_SOURCE_ROOT")
BUILD = pgitest.env("PG_BUILD_ROOT")
FIXTURES = os.path.join(ROOT, "tests/integration/doc-fixtures")
REWRITTEN = ("/etc/passguard/", "/run/passguard/", "/var/lib/passguard/", "/tmp/")
KINDS = ("sh", "policy", "policy-fragment", "c", "c-synopsis", "python", "python-api", "layout",
         "not-run")


@dataclass
class Example:
    path: str            # relative to the source root
    line: int            # of the first line of the example
    text: str            # as rendered: scdoc escapes resolved
    kind: Optional[str]  # None: unmarked
    options: Dict[str, str] = field(default_factory=dict)
    reason: str = ""
    problem: str = ""    # set for text that must become a fenced block

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


# ---- finding the examples ----

MARKER_RE = {".scd": re.compile(r"^; example:\s*(.*?)\s*$"),
             ".md": re.compile(r"^<!--\s*example:\s*(.*?)\s*-->\s*$")}


def parse_marker(text: str) -> Tuple[str, Dict[str, str], str]:
    words = text.split()
    kind = words[0] if words else ""
    if kind == "not-run":
        return kind, {}, " ".join(words[1:])
    opts: Dict[str, str] = {}
    for w in words[1:]:
        k, _, v = w.partition("=")
        opts[k] = v
    return kind, opts, ""


def scd_unescape(text: str) -> str:
    """What scdoc renders: a backslash takes the next character literally."""
    return re.sub(r"\\(.)", r"\1", text)


def find_examples(path: str) -> List[Example]:
    rel = os.path.relpath(path, ROOT)
    ext = ".scd" if path.endswith(".scd") else ".md"
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    found: List[Example] = []
    section = ""
    i = 0

    def marker_before(n: int) -> Tuple[Optional[str], Dict[str, str], str]:
        m = MARKER_RE[ext].match(lines[n - 1]) if n > 0 else None
        if not m:
            return None, {}, ""
        return parse_marker(m.group(1))

    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(```|~~~)", line)
        if ext == ".scd" and line.startswith("# "):
            section = line[2:]
        if fence:
            end = i + 1
            while end < len(lines) and not lines[end].startswith(fence.group(1)):
                end += 1
            body = "\n".join(lines[i + 1:end])
            if ext == ".scd":
                body = scd_unescape(body)
            kind, opts, reason = marker_before(i)
            found.append(Example(rel, i + 2, body, kind, opts, reason))
            i = end + 1
            continue
        if ext == ".scd" and re.match(r"^\t*Example:", line):
            kind, opts, reason = marker_before(i)
            para = [line]
            while i + 1 < len(lines) and lines[i + 1].strip():
                i += 1
                para.append(lines[i])
            for span in re.findall(r"\*((?:\\.|[^*\\])+)\*", " ".join(para)):
                found.append(Example(rel, i + 1, scd_unescape(span), kind, opts, reason))
        elif ext == ".scd" and "EXAMPLE" in section and line.startswith("\t") and line.strip():
            found.append(Example(rel, i + 1, line.strip(), None,
                                 problem="tab-indented text in an EXAMPLES section: make it a "
                                         "fenced block with a marker"))
        elif (ext == ".md" and line.startswith("    ") and line.strip() and i > 0
              and not lines[i - 1].strip()):
            found.append(Example(rel, i + 1, line.strip(), None,
                                 problem="an indented code block: make it a fenced block "
                                         "with a marker"))
        i += 1
    return found


def documents() -> List[str]:
    docs = [os.path.join(ROOT, "README.md")]
    docs += sorted(glob.glob(os.path.join(ROOT, "doc", "*.scd")))
    for sub in ("integrations", "bindings"):
        docs += sorted(glob.glob(os.path.join(ROOT, sub, "**", "*.md"), recursive=True))
    return [d for d in docs if os.path.isfile(d)]


# ---- the session: a daemon and a sandbox per document ----

class Session:
    def __init__(self, name: str) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"pg-docs-{name}-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        for p in REWRITTEN:
            os.makedirs(self.dir + p, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "tools/demo-host.json"), self.path("host.json"))
        shutil.copy(os.path.join(ROOT, "policy/examples/demo.conf"), self.path("policy.conf"))
        shutil.copy(os.path.join(ROOT, "policy/examples/demo.conf"),
                    self.dir + "/etc/passguard/policy.conf")
        # relative paths of the README name the source tree
        for entry in os.listdir(ROOT):
            if not entry.startswith(".") and not os.path.exists(self.path(entry)):
                os.symlink(os.path.join(ROOT, entry), self.path(entry))
        self.sock = self.dir + "/run/passguard/passguard.sock"
        self.env = dict(os.environ)
        self.env["PATH"] = ":".join([os.path.join(BUILD, "client/cli"),
                                     os.path.join(BUILD, "daemon"),
                                     self.env.get("PATH", "/usr/bin:/bin")])
        self.env["PASSGUARD_SOCKET"] = self.sock
        self.log = open(self.path("passguardd.log"), "wb")
        self.proc = subprocess.Popen(
            [pgitest.env("PASSGUARDD"), "--backend", "sim", "--sim-host", self.path("host.json"),
             "--socket", self.sock, "--state-dir", self.dir + "/var/lib/passguard",
             "--policy", self.dir + "/etc/passguard/policy.conf", "--debug"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_socket(self.sock, self.proc, 10):
            raise RuntimeError(f"the session's passguardd did not start: {self.dir}")
        self.globs: Dict[str, Any] = {}

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def rewrite(self, text: str) -> str:
        """The paths of REWRITTEN moved into the sandbox, in one pass."""
        alternatives = "|".join(re.escape(p) for p in REWRITTEN)
        return re.sub(r"(?<![\w./-])(" + alternatives + ")", lambda m: self.dir + m.group(1),
                      text)

    def close(self, failed: bool) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if failed:
            with open(self.path("passguardd.log"), encoding="utf-8", errors="replace") as f:
                print("---- session daemon log ----\n" + f.read()[-8000:], file=sys.stderr)
        if os.environ.get("ITEST_KEEP"):
            print(f"# kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_socket(path: str, proc: "subprocess.Popen[bytes]", timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(path)
                return True
            except OSError:
                time.sleep(0.01)
    return False


# ---- running each kind; each returns a list of problems ----

def run_sh(ex: Example, s: Session) -> List[str]:
    if "files" in ex.options:
        src = os.path.join(FIXTURES, ex.options["files"])
        if not os.path.isdir(src):
            return [f"files={ex.options['files']}: no directory {src}"]
        shutil.copytree(src, s.dir, dirs_exist_ok=True)
    lines = s.rewrite(ex.text).split("\n")
    commands: List[Tuple[str, List[str]]] = []
    if not any(re.match(r"^[#$] ", ln) for ln in lines):
        commands.append(("\n".join(lines), []))
    else:
        i = 0
        while i < len(lines):
            if re.match(r"^[#$] ", lines[i]):
                cmd = lines[i][2:]
                while cmd.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd += "\n" + lines[i]
                commands.append((cmd, []))
            elif commands:
                commands[-1][1].append(lines[i])
            elif lines[i].strip():
                return [f"output before any command: {lines[i]!r}"]
            i += 1
    statuses = [int(x) for x in ex.options.get("status", "").split(",") if x]
    problems: List[str] = []
    for n, (cmd, want) in enumerate(commands):
        status = statuses[n] if n < len(statuses) else 0
        if "daemon" in ex.options:
            problems += run_daemon(cmd, s)
            continue
        r = subprocess.run(["bash", "-c", cmd], cwd=s.dir, env=s.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        got = [ln.rstrip() for ln in r.stdout.rstrip("\n").split("\n")] if r.stdout else []
        if r.returncode != status:
            problems.append(f"`{cmd}` exited {r.returncode}, not {status}:\n{r.stdout}")
        while want and not want[-1].strip():
            want.pop()
        if want and not lines_match([w.rstrip() for w in want], got):
            problems.append(f"`{cmd}` printed:\n" + "\n".join(got) + "\nnot:\n" + "\n".join(want))
    return problems


def lines_match(want: List[str], got: List[str]) -> bool:
    """want may hold "..." lines, each matching any number of lines."""
    if not want:
        return not got
    if want[0] == "...":
        return any(lines_match(want[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and want[0] == got[0] and lines_match(want[1:], got[1:])


def run_daemon(cmd: str, s: Session) -> List[str]:
    m = re.search(r"--socket\s+(\S+)", cmd)
    if not m:
        return [f"`{cmd}`: a daemon example needs --socket PATH"]
    sock = m.group(1)
    with open(s.path("example-daemon.log"), "wb") as log:
        p = subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=s.dir, env=s.env,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    problems = []
    try:
        if not wait_socket(sock, p, 10):
            problems.append(f"`{cmd}` did not listen on {sock}")
        else:
            r = subprocess.run(["passguard", "--socket", sock, "status"], env=s.env,
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                problems.append(f"`passguard status` to `{cmd}`: {r.stderr}")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
    if rc != 0:
        problems.append(f"`{cmd}` exited {rc} on SIGTERM")
    if problems:
        with open(s.path("example-daemon.log"), encoding="utf-8", errors="replace") as f:
            problems.append(f.read()[-3000:])
    return problems


FRAGMENT_BASE = {
    "version": "version = 1;",
    "clients": 'clients = ( { name = "xl"; uid = 0; }, { name = "libvirt"; uid = 0; } );',
}


def policy_check(text: str, s: Session, groups: str) -> List[str]:
    path = s.path("example-policy.conf")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    cmd = ["passguard", "policy", "check", path]
    if groups:
        if os.geteuid() != 0:
            return [f"groups={groups} needs root (a private mount namespace)"]
        group_file = s.path("example-group")
        with open("/etc/group", encoding="utf-8") as f:
            content = f.read()
        for n, g in enumerate(groups.split(",")):
            content += f"{g}:x:{64000 + n}:\n"
        with open(group_file, "w", encoding="utf-8") as f:
            f.write(content)
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount --bind "$1" /etc/group && shift && exec "$@"', "sh", group_file, *cmd]
    r = subprocess.run(cmd, env=s.env, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return [f"policy check refused it:\n{r.stdout}{r.stderr}--- the file:\n{text}"]
    return []


def run_policy(ex: Example, s: Session) -> List[str]:
    return policy_check(ex.text, s, ex.options.get("groups", ""))


def run_policy_fragment(ex: Example, s: Session) -> List[str]:
    where = ex.options.get("in", "")
    frag = ex.text.strip()
    if where == "top":
        m = re.match(r"(\w+)\s*=", frag)
        if not m:
            return [f"not a top-level setting: {frag!r}"]
        base = {k: v for k, v in FRAGMENT_BASE.items() if k != m.group(1)}
        text = "\n".join([*base.values(), frag])
    elif where == "device":
        text = f"version = 1;\nprotected = ( {{ {frag} }} );"
    elif where == "domain":
        text = (f'version = 1;\nrules = ( {{ name = "example"; action = "allow";\n'
                f"  domains = ( {{ {frag} }} ); }} );")
    else:
        return [f"in={where}: expected top, device or domain"]
    return policy_check(text, s, ex.options.get("groups", ""))


def compiler() -> List[str]:
    cc = os.environ.get("PG_CC", "cc").split()
    sanitize = os.environ.get("PG_SANITIZE", "none")
    if sanitize and sanitize != "none":
        cc.append("-fsanitize=" + sanitize)
    return cc


def run_c(ex: Example, s: Session) -> List[str]:
    src, exe = s.path("example.c"), s.path("example")
    with open(src, "w", encoding="utf-8") as f:
        f.write(s.rewrite(ex.text) + "\n")
    libdir = os.path.join(BUILD, "client")
    r = subprocess.run([*compiler(), "-std=gnu11", "-Wall", "-Werror", "-I",
                        os.path.join(ROOT, "client"), src, "-o", exe, "-L", libdir,
                        "-Wl,-rpath," + libdir, "-lpassguard"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return [f"does not compile:\n{r.stderr}"]
    r = subprocess.run([exe], cwd=s.dir, env=s.env, capture_output=True, text=True, timeout=60)
    status = int(ex.options.get("status", "0"))
    if r.returncode != status:
        return [f"exited {r.returncode}, not {status}:\n{r.stdout}{r.stderr}"]
    return []


def run_c_synopsis(ex: Example, s: Session) -> List[str]:
    src = s.path("synopsis.c")
    with open(src, "w", encoding="utf-8") as f:
        f.write("#include <passguard.h>\n" + ex.text + "\n")
    r = subprocess.run([*compiler(), "-std=gnu11", "-Wall", "-Werror", "-fsyntax-only", "-I",
                        os.path.join(ROOT, "client"), src], capture_output=True, text=True,
                       timeout=60)
    problems = [f"does not match passguard.h:\n{r.stderr}"] if r.returncode != 0 else []
    with open(os.path.join(ROOT, "client/libpassguard.sym"), encoding="utf-8") as f:
        exported = set(re.findall(r"\b(pg_\w+)\s*;", f.read()))
    for name in sorted(set(re.findall(r"\b(pg_\w+)\s*\(", ex.text)) - exported):
        problems.append(f"{name} is not exported (libpassguard.sym)")
    return problems


def run_python(ex: Example, s: Session) -> List[str]:
    saved = os.environ.get("PASSGUARD_SOCKET")
    os.environ["PASSGUARD_SOCKET"] = s.sock
    cwd = os.getcwd()
    os.chdir(s.dir)
    try:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(s.rewrite(ex.text), s.globs, ex.where, ex.path, ex.line - 1)
        out: List[str] = []
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
        result = runner.run(test, out=out.append, clear_globs=False)
        s.globs.update(test.globs)  # DocTest runs on a copy; the next block goes on from it
    finally:
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("PASSGUARD_SOCKET", None)
        else:
            os.environ["PASSGUARD_SOCKET"] = saved
    if result.attempted == 0:
        return ["no >>> lines in a python example"]
    return ["".join(out)] if result.failed else []


def bare_signature(obj: Any) -> Tuple[str, str]:
    sig = inspect.signature(obj)
    params = []
    star = False
    for p in sig.parameters.values():
        if p.name == "self" or p.name == "cls":
            continue
        if p.kind == p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        text = p.name
        if p.kind == p.VAR_KEYWORD:
            text = "**" + text
        elif p.kind == p.VAR_POSITIONAL:
            text = "*" + text
            star = True
        if p.default is not p.empty:
            text += "=" + repr(p.default)
        params.append(text)
    ret = sig.return_annotation
    ret_text = "" if ret is sig.empty else (ret if isinstance(ret, str) else getattr(
        ret, "__name__", str(ret)))
    return ", ".join(params), ret_text.strip("'\"")


def run_python_api(ex: Example, s: Session) -> List[str]:
    import passguard
    problems = []
    n = 0
    for line in ex.text.split("\n"):
        m = re.match(r"^\s*(?:(?:async\s+)?class\s+|async\s+)?([\w.]+)\((.*)\)(?:\s*->\s*(.+?))?\s*$",
                     line)
        if not m:
            continue
        n += 1
        obj: Any = passguard
        try:
            for part in m.group(1).split("."):
                obj = getattr(obj, part)
        except AttributeError:
            problems.append(f"passguard.{m.group(1)} does not exist")
            continue
        params, ret = bare_signature(obj)
        want_params = ", ".join(x.strip() for x in m.group(2).split(",") if x.strip())
        if params != want_params:
            problems.append(f"{m.group(1)}({want_params}): the code says ({params})")
        if m.group(3) and ret != m.group(3) and not inspect.isclass(obj):
            problems.append(f"{m.group(1)} -> {m.group(3)}: the code says -> {ret or '(none)'}")
    if n == 0:
        problems.append("no NAME(PARAMETERS) line")
    return problems


def run_layout(ex: Example, s: Session) -> List[str]:
    problems = []
    current: Optional[str] = None
    for line in ex.text.split("\n"):
        m = re.match(r"^([\w.-]+)/", line)
        if m:
            current = m.group(1)
            if not os.path.isdir(os.path.join(ROOT, current)):
                problems.append(f"{current}/ does not exist")
                continue
            line = line[m.end():]
        if current is None:
            continue
        base = os.path.join(ROOT, current)
        names = set()
        for _, dirs, files in os.walk(base):
            names.update(files)
            names.update(d + "/" for d in dirs)
        for tok in re.findall(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+(?:\.[a-z]+)+|(?:[\w-]+/)+)"
                              r"(?=[\s,;)]|$)", line):
            if not os.path.exists(os.path.join(base, tok)) and tok not in names:
                problems.append(f"{current}/ has no {tok}")
    return problems


RUNNERS = {"sh": run_sh, "policy": run_policy, "policy-fragment": run_policy_fragment,
           "c": run_c, "c-synopsis": run_c_synopsis, "python": run_python,
           "python-api": run_python_api, "layout": run_layout}


def main() -> int:
    ran = not_run = 0
    for doc in documents():
        examples = find_examples(doc)
        if not examples:
            continue
        name = re.sub(r"\W+", "-", os.path.relpath(doc, ROOT))
        session: Optional[Session] = None
        failed = False
        try:
            for ex in examples:
                if ex.problem:
                    check(False, f"{ex.where}: {ex.problem}: {ex.text!r}")
                    failed = True
                    continue
                if ex.kind is None:
                    check(False, f"{ex.where}: an example without a marker (see the comment at "
                                 f"the top of tests/integration/test-docs.py): "
                                 f"{ex.text[:60]!r}")
                    failed = True
                    continue
                if ex.kind not in KINDS:
                    check(False, f"{ex.where}: unknown example kind {ex.kind!r}")
                    failed = True
                    continue
                if ex.kind == "not-run":
                    if check(ex.reason, f"{ex.where}: not-run needs a reason"):
                        print(f"not run  {ex.where}: {ex.reason}")
                    not_run += 1
                    continue
                if session is None:
                    session = Session(name)
                problems = RUNNERS[ex.kind](ex, session)
                ran += 1
                if problems:
                    failed = True
                check(not problems, f"{ex.where} ({ex.kind}): " + "\n".join(problems))
                print(f"{'FAILED' if problems else 'ran':8} {ex.where} ({ex.kind})")
        finally:
            if session is not None:
                session.close(failed)
    print(f"# {ran} examples ran, {not_run} not run")
    check(ran > 0, "no example ran at all")
    return pgitest.exit_status()


if __name__ == "__main__":
    sys.exit(main())
