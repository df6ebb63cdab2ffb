# SPDX-License-Identifier: MIT
"""The bash completion of passguard, in a real bash, against a real passguardd.

Each case is a command line with the cursor at its end. It is split into
COMP_WORDS the way bash splits it (blanks, then COMP_WORDBREAKS, so that
"0000:03:00.0" is "0000", ":", "03", ":", "00.0"), the completion script is
sourced into a fresh `bash --norc`, `complete -p passguard` must name its
function, the function is called as bash calls it, and COMPREPLY is compared
with what the daemon says (its assignable devices and grants). Nothing may be
printed on stderr. With the daemon unreachable, or stopped, completion of
daemon-backed words gives nothing, silently, and within its 2-second limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import List, Optional, Sequence, Tuple

import pgitest
from pgitest import DEV_GPU, DEV_NIC, check, check_eq

SCRIPT = os.path.join(pgitest.env("PG_SOURCE_ROOT"), "client/cli/completion/passguard.bash")
BREAKS = "\"'><=;|&(:"  # bash's default COMP_WORDBREAKS, less the blanks


def split(line: str) -> List[str]:
    """COMP_WORDS for line, as bash makes them (no quoting in these cases)."""
    words: List[str] = []
    for blank_word in line.split():
        cur = ""
        for ch in blank_word:
            if ch in BREAKS:
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    if line.endswith(" ") or not words:
        words.append("")
    return words


def quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def complete(line: str, env: Optional[dict] = None) -> Tuple[List[str], str, float]:
    """COMPREPLY for line, bash's stderr, and the seconds it took."""
    words = split(line)
    cword = len(words) - 1
    prev = words[cword - 1] if cword > 0 else ""
    script = "\n".join([
        f"source {quote(SCRIPT)} || exit 9",
        '[[ $(complete -p passguard) == "complete -F _passguard passguard" ]] || exit 8',
        f"COMP_LINE={quote(line)}",
        "COMP_POINT=${#COMP_LINE}",
        "COMP_WORDS=(" + " ".join(quote(w) for w in words) + ")",
        f"COMP_CWORD={cword}",
        "COMP_TYPE=9 COMP_KEY=9",
        f"_passguard passguard {quote(words[cword])} {quote(prev)}",
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    start = time.monotonic()
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, timeout=30, env=env)
    took = time.monotonic() - start
    check_eq(r.returncode, 0, f"{line!r}: bash exited {r.returncode}: {r.stderr}")
    return [x for x in r.stdout.split("\n") if x], r.stderr, took


def expect(line: str, want: Sequence[str], env: dict, exact: bool = True) -> None:
    got, err, _ = complete(line, env)
    check_eq(err, "", f"{line!r}: stderr")
    if exact:
        check_eq(sorted(got), sorted(want), f"{line!r}")
    else:
        check(set(want) <= set(got), f"{line!r}: {sorted(want)} not all in {sorted(got)}")


def main() -> int:
    build_cli_dir = os.path.dirname(pgitest.env("PASSGUARD_CLI"))
    with pgitest.Daemon("completion") as d:
        d.start()
        env = dict(os.environ)
        env["PATH"] = build_cli_dir + ":" + env.get("PATH", "/usr/bin:/bin")
        env["PASSGUARD_SOCKET"] = d.sock
        check_eq(d.cli("assign", "render-1", DEV_GPU).returncode, 0)
        check_eq(d.cli("assign", "net-pv", DEV_NIC).returncode, 0)
        listing = json.loads(d.cli("--json", "list").stdout)
        assignable = [a["device"] for a in listing["assignable"]]
        check(len(assignable) >= 5 and DEV_GPU not in assignable, repr(assignable))
        verbs = ["status", "list", "assign", "release", "explain", "owner", "prepare",
                 "unprepare", "untaint", "reload", "monitor", "policy"]

        # verbs and global options
        expect("passguard ", verbs, env)
        expect("passguard as", ["assign"], env)
        expect("passguard re", ["release", "reload"], env)
        expect("passguard -", ["--json", "--socket", "--help", "--version"], env)
        expect("passguard --json ", verbs, env)
        expect(f"passguard --socket {d.sock} ", verbs, env)
        expect(f"passguard --socket {d.dir}/ru", [f"{d.dir}/run"], env)
        expect("passguard assign --", ["--rdm-relaxed", "--help"], env)
        expect("passguard list -", ["--help"], env)

        # domains and devices from the daemon
        expect("passguard assign ", ["render-1", "5", "net-pv", "7"], env)
        expect("passguard assign ren", ["render-1"], env)
        expect("passguard assign render-2 ", assignable, env)
        expect("passguard explain --rdm-relaxed render-2 ", assignable, env)
        # after a colon, bash replaces only what follows the last one
        expect("passguard assign render-2 0000:0",
               [a[len("0000:"):] for a in assignable if a.startswith("0000:0")], env)
        expect("passguard assign render-2 0000:0a:", ["00.0"], env)
        expect("passguard assign render-2 0000:0a:00", ["00.0"], env)
        expect("passguard assign render-2 0000:07:00.", ["00.0", "00.1"], env)
        expect("passguard release ", ["render-1", "5", "net-pv", "7"], env)
        expect("passguard release net-pv ", [DEV_NIC], env)
        expect("passguard release 5 ", [DEV_GPU], env)
        expect("passguard release 5 0000:03", ["03:00.0"], env)
        expect("passguard owner ", assignable + [DEV_GPU, DEV_NIC], env)
        expect("passguard unprepare ", assignable, env)
        # several devices, all or none: each offered until it is named
        expect("passguard assign render-2 0000:03:00.0 ", assignable, env)
        expect("passguard assign render-2 0000:07:00.0 ",
               [a for a in assignable if a != "0000:07:00.0"], env)
        expect("passguard explain render-2 0000:07:00.0 0000:07:00.1 ",
               [a for a in assignable if a not in ("0000:07:00.0", "0000:07:00.1")], env)
        expect("passguard untaint ", assignable + [DEV_GPU, DEV_NIC], env)
        expect("passguard monitor -", ["--json", "--help"], env)

        # the daemon named by --socket, not by the environment
        other = dict(env)
        other.pop("PASSGUARD_SOCKET")
        expect(f"passguard --socket {d.sock} release ", ["render-1", "5", "net-pv", "7"], other)
        expect(f"passguard --json --socket {d.sock} assign x ", assignable, other)
        expect(f"passguard --socket={d.sock} release 7 ", [DEV_NIC], other)
        expect(f"passguard --socket={d.dir}/ru", [f"{d.dir}/run"], other)

        # policy verbs: offline
        expect("passguard policy ", ["check", "explain", "edit", "generate"], env)
        expect("passguard policy generate -", ["--output", "--sysfs-root", "--help"], env)
        expect("passguard policy explain --type ", ["hvm", "pvh", "pv"], env)
        expect("passguard policy explain --do", ["--domain", "--domid"], env)
        expect("passguard policy explain --uid ", [], env)
        expect(f"passguard policy check {d.dir}/pol", [d.policy], env)
        expect(f"passguard policy edit --file {d.dir}/pol", [d.policy], env)
        expect("passguard policy edit -", ["--file", "--help"], env)
        expect("passguard policy explain --group ro", ["root"], env, exact=False)

        # unreachable: nothing, silently, at once
        gone = dict(env)
        gone["PASSGUARD_SOCKET"] = os.path.join(d.dir, "nothing.sock")
        for line in ("passguard assign ", "passguard assign render-1 ", "passguard release x ",
                     "passguard owner 0000:"):
            got, err, took = complete(line, gone)
            check_eq((got, err), ([], ""), f"{line!r} with no daemon")
            check(took < 1.5, f"{line!r}: {took:.2f} s with no daemon")
        expect("passguard ", verbs, gone)

        # a daemon that does not answer: nothing, within the 2-second limit per query
        assert d.proc is not None
        d.proc.send_signal(signal.SIGSTOP)
        try:
            got, err, took = complete("passguard assign render-2 ", env)
            check_eq((got, err), ([], ""), "a stopped daemon")
            check(took < 4.5, f"took {took:.2f} s with a stopped daemon")
        finally:
            d.proc.send_signal(signal.SIGCONT)
        expect("passguard unprepare ", assignable, env)
        check(d.alive())
    return pgitest.exit_status()


if __name__ == "__main__":
    sys.exit(main())
