#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""qvm-pci-attach: what `qvm-pci attach --persistent VM dom0:BB_DD.F` would do through passguard.

A sketch of the device-attach path of a Qubes-like toolstack (qubesd is
asyncio, hence passguard.AsyncClient), in the order passguard requires:

  1. prepare   the device is bound to pciback and quarantined (a no-op when it
               already is); needs an admin or a rule with managed = true;
  2. explain   ask what assign would decide, and stop before asking if it is a
               deny, printing the check that failed;
  3. assign    the daemon makes the IOMMU assignment and records the grant;
  4. attach    only now hand the device to the device model (here: run
               --attach-cmd, e.g. a libvirt attach-device wrapper); if that
               fails, release the grant, so the device goes back to quarantine;
  5. persist   with --persistent, record the assignment (as qubes.xml does) so
               that it is made again when the VM starts.

Exit status as passguard(1): 0 attached, 1 refused (or the attach failed and
was rolled back), 2 usage, 3 daemon unreachable or protocol error.

Example (a simulated host; see passguard-python(3)):
  qvm-pci-attach.py --persistent --persist-file devices.json render-1 dom0:03_00.0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import sys
from typing import List, Optional

import passguard


def device_from_ident(ident: str) -> str:
    """Qubes' ``dom0:03_00.0`` (backend dom0, BB_DD.F) or a plain BDF -> ``0000:03:00.0``."""
    m = re.fullmatch(r"dom0:([0-9a-fA-F]{2})_([0-9a-fA-F]{2})\.([0-7])", ident)
    if m:
        return f"0000:{m[1]}:{m[2]}.{m[3]}".lower()
    if re.fullmatch(r"([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]", ident):
        return ident
    raise ValueError(f"not a PCI device of dom0: {ident!r} (expected dom0:BB_DD.F or a BDF)")


def persist(path: str, vm: str, device: str, grant: passguard.Grant) -> None:
    """Add {vm, device, rule} to the JSON list in path, durably (tmp, fsync, rename)."""
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except FileNotFoundError:
        entries = []
    entries = [e for e in entries if not (e.get("vm") == vm and e.get("device") == device)]
    entries.append({"vm": vm, "device": device, "rule": grant.rule,
                    "rdm_policy": grant.rdm_policy})
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def attach_to_device_model(cmd: List[str], vm: str, device: str) -> int:
    """Run the device-model step; its exit status (127 when it cannot be run)."""
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, vm, device)
    except OSError as e:
        print(f"qvm-pci-attach: cannot run {cmd[0]}: {e.strerror}", file=sys.stderr)
        return 127
    return await proc.wait()


async def attach(args: argparse.Namespace) -> int:
    device = device_from_ident(args.device)
    async with passguard.AsyncClient(args.socket) as pg:
        # 1. prepare: pciback + quarantine; already prepared devices say so.
        prepared = await pg.prepare(device)
        if not prepared.get("already_prepared"):
            print(f"prepared {device} (was bound to {prepared.get('previous_driver')})")

        # 2. explain: the same checks as assign, nothing changes.
        decision = await pg.explain(args.vm, device, rdm_relaxed=args.rdm_relaxed)
        if not decision.allow:
            for c in decision.checks:
                print(f"  {c.result:4}  {c.check:20} {c.detail}", file=sys.stderr)
            refusal = decision.refusal()
            assert refusal is not None
            raise refusal

        # 3. assign: on return the IOMMU assignment is made and on disk.
        grant = await pg.assign(args.vm, device, rdm_relaxed=args.rdm_relaxed)
        print(f"granted {grant.device} to {grant.domain} (domid {grant.domid}), "
              f"rule {grant.rule}, rdm_policy {grant.rdm_policy}")

        # 4. attach to the device model, only after the grant; release on failure.
        try:
            status = await attach_to_device_model(args.attach_cmd, args.vm, device)
        except BaseException:  # cancelled, interrupted: do not leave the grant behind
            await pg.release(grant.domid, grant.device)
            raise
        if status != 0:
            await pg.release(grant.domid, grant.device)
            print(f"the device model refused {device} (exit status {status}); "
                  f"released it back to quarantine", file=sys.stderr)
            return 1

        # 5. persist, once the device really is attached.
        if args.persistent:
            persist(args.persist_file, args.vm, grant.device, grant)
            print(f"recorded {grant.device} for {args.vm} in {args.persist_file}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="qvm-pci-attach.py",
        description="Attach a dom0 PCI device to a VM through passguard, "
                    "as qvm-pci attach --persistent would.")
    p.add_argument("--socket", help="passguardd's socket (default: $PASSGUARD_SOCKET or "
                                    f"{passguard.DEFAULT_SOCKET_PATH})")
    p.add_argument("--persistent", action="store_true",
                   help="record the assignment so that it is made again at VM start")
    p.add_argument("--persist-file", default="/var/lib/qubes/passguard-devices.json",
                   help="where --persistent records it (default: %(default)s)")
    p.add_argument("--attach-cmd", type=shlex.split, default=["true"],
                   help="the device-model step, run with VM and BDF appended "
                        "(default: true, i.e. nothing)")
    p.add_argument("--rdm-relaxed", action="store_true",
                   help="ask for the relaxed reserved-device-memory policy")
    p.add_argument("vm", help="the VM (domain) name")
    p.add_argument("device", help="dom0:BB_DD.F, as qvm-pci names it, or SSSS:BB:DD.F")
    args = p.parse_args(argv)
    try:
        device_from_ident(args.device)
    except ValueError as e:
        p.error(str(e))
    try:
        return asyncio.run(attach(args))
    except passguard.PassguardError as e:
        print(f"qvm-pci-attach: refused: {e}", file=sys.stderr)
        return 1
    except passguard.TransportError as e:
        print(f"qvm-pci-attach: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
