# SPDX-License-Identifier: MIT
"""bindings/python/examples/qvm-pci-attach.py against a real passguardd on the simulated host.

A dom0 device attached with --persistent: prepared, granted, handed to the
"device model" (a script that checks, when it runs, that the hypervisor has
already assigned the device: a grant comes first, invariant 8), recorded.
Then a device model that fails: the grant is released and the device is back
in quarantine, nothing recorded. Then a refusal at explain: no assign call at
all. Then an unreachable daemon (exit 3) and a bad device name (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import pgitest
from pgitest import DEV_E1000, DEV_NIC, DOM_NETHVM, check, check_eq

EXAMPLE = os.path.join(pgitest.env("PG_SOURCE_ROOT"), "bindings/python/examples/qvm-pci-attach.py")

# The device model: records its arguments and the device's owner at that moment.
DEVICE_MODEL = r'''
import json, sys
vm, bdf, host, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
with open(host) as f:
    dev = [d for d in json.load(f)["devices"] if d["bdf"] == bdf][0]
with open(out, "a") as f:
    f.write(json.dumps({"vm": vm, "device": bdf, "owner": dev["assigned_to"]}) + "\n")
sys.exit(int(sys.argv[5]))
'''


def run(d: pgitest.Daemon, *args: str) -> "subprocess.CompletedProcess[str]":
    r = subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True,
                       timeout=60, env=d.client_env())
    print(f"$ qvm-pci-attach.py {' '.join(args)}\n{r.stdout}{r.stderr}(exit status {r.returncode})")
    return r


def lines(path: str) -> List[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(x) for x in f]
    except FileNotFoundError:
        return []


def main() -> int:
    with pgitest.Daemon("python-qvm") as d:
        d.start()
        persist = os.path.join(d.dir, "devices.json")
        log = os.path.join(d.dir, "device-model.log")
        script = os.path.join(d.dir, "device-model.py")
        d.write(script, DEVICE_MODEL)
        wrapper = os.path.join(d.dir, "attach")

        def attach_cmd(status: int) -> str:
            # a wrapper puts VM and BDF first, then the host file, the log and the status
            d.write(wrapper, f'#!/bin/sh\nexec {sys.executable} {script} "$1" "$2" '
                             f'{d.host} {log} {status}\n')
            os.chmod(wrapper, 0o755)
            return wrapper

        # 1. attached: prepared (e1000e -> pciback), granted, device model, recorded
        check_eq(d.owner(DEV_E1000), "null")
        r = run(d, "--persistent", "--persist-file", persist, "--attach-cmd", attach_cmd(0),
                "net-hvm", "dom0:09_00.0")
        check_eq(r.returncode, 0, r.stderr)
        check(f"prepared {DEV_E1000} (was bound to e1000e)" in r.stdout, r.stdout)
        check(f"granted {DEV_E1000} to net-hvm (domid {DOM_NETHVM}), rule net" in r.stdout,
              r.stdout)
        check_eq(d.owner(DEV_E1000), str(DOM_NETHVM))
        check(d.granted(DEV_E1000), "the grant is on disk")
        check_eq(lines(log), [{"vm": "net-hvm", "device": DEV_E1000, "owner": DOM_NETHVM}],
                 "the device model ran once the hypervisor had assigned the device")
        with open(persist, encoding="utf-8") as f:
            check_eq(json.load(f), [{"vm": "net-hvm", "device": DEV_E1000, "rule": "net",
                                     "rdm_policy": "strict"}])

        # 2. the device model fails: released, back in quarantine, nothing recorded
        os.unlink(log)
        r = run(d, "--persistent", "--persist-file", persist, "--attach-cmd", attach_cmd(1),
                "net-pv", DEV_NIC)
        check_eq(r.returncode, 1)
        check("released it back to quarantine" in r.stderr, r.stderr)
        check_eq([x["owner"] for x in lines(log)], [7], "the device model saw the grant")
        check_eq(d.owner(DEV_NIC), "io")
        check(not d.granted(DEV_NIC), "the grant is gone")
        with open(persist, encoding="utf-8") as f:
            check_eq(len(json.load(f)), 1, "nothing recorded for the failed attach")

        # 3. refused at explain: the checks are shown, assign is never asked
        before = d.calls("assign")
        os.unlink(log)
        r = run(d, "--attach-cmd", attach_cmd(0), "render-1", "dom0:04_00.0")
        check_eq(r.returncode, 1)
        check("qvm-pci-attach: refused: denied:" in r.stderr and "rule: no-nics-for-render"
              in r.stderr, r.stderr)
        check("fail  policy" in r.stderr, "the failing check is printed")
        check_eq(d.calls("assign"), before, "no assign call after a deny")
        check_eq(lines(log), [], "no device model after a deny")

        # 4. and 5. no daemon; not a device
        r = run(d, "--socket", os.path.join(d.dir, "none.sock"), "net-pv", DEV_NIC)
        check_eq(r.returncode, 3)
        check("cannot connect" in r.stderr, r.stderr)
        r = run(d, "net-pv", "dom1:04_00.0")
        check_eq(r.returncode, 2)
        check(d.alive())
    return pgitest.exit_status()


if __name__ == "__main__":
    sys.exit(main())
