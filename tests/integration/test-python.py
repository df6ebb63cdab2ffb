# SPDX-License-Identifier: MIT
"""The Python binding's blocking client against a real passguardd on the simulated host.

Every error code of the wire protocol reached from Python, as test-errors.c
reaches it from C, each raised as its own exception class with the fields
libpassguard gives (code, number, message, check, rule, errno), no hypervisor
assign call for a refusal a check decides, and the connection still usable
after a refusal. `internal` stands for a daemon bug and cannot be reached from
a correct daemon: test-python-hostile.py gets it from a fake one. Then a
session: grant, refusal, explain, owner, list, status, release, prepare and
unprepare; the socket path rules; transport errors; and the error table,
compared with libpassguard's.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Set, Type

import passguard
from passguard import Client
import pgitest
from pgitest import (DEV_E1000, DEV_GHOST, DEV_GPU, DEV_GPU2, DEV_IGB, DEV_NIC, DEV_NORESET,
                     DEV_SATA, DEV_SLOT0, DEV_SLOT1, DEV_SPARE, DOM_RENDER1, check, check_eq,
                     check_raises)

reached: Set[str] = set()


def refused(d: pgitest.Daemon, pg: Client, cls: Type[passguard.PassguardError],
            call: Callable[[], Any], check_name: Optional[str],
            hv_call: bool = False) -> Optional[passguard.PassguardError]:
    """call must raise cls, with check check_name, and the connection must stay usable."""
    before = d.calls("assign")
    e = check_raises(cls, call)
    if e is None:
        return None
    reached.add(e.code)
    check_eq(type(e), cls, "exactly the code's own class")
    check(isinstance(e, passguard.PassguardError) and not isinstance(e, OSError))
    check_eq(passguard.error_class(e.code), cls)
    check_eq(e.number, passguard.error_number(e.code))
    check(isinstance(e.message, str) and e.message, f"{e.code}: no message")
    check_eq(e.wire_error, e.code)
    check_eq(e.reply.get("error"), e.code)
    if check_name is not None:
        check_eq(e.check, check_name, f"{e.code}: check")
    if not hv_call:
        check_eq(d.calls("assign"), before, f"{e.code}: the hypervisor's assign was called")
    check(not pg.closed, f"{e.code}: the refusal closed the connection")
    return e


def errors(d: pgitest.Daemon) -> None:
    pg = Client(d.sock)

    # bad-request, unsupported-version
    refused(d, pg, passguard.BadRequest, lambda: pg.call("frobnicate"), "request")
    refused(d, pg, passguard.BadRequest, lambda: pg.assign("net-pv", "not-a-bdf"), "request")
    refused(d, pg, passguard.BadRequest, lambda: pg.call("assign", device=DEV_GPU), "request")
    refused(d, pg, passguard.UnsupportedVersion, lambda: pg.hello(2), None)
    check_eq(pg.hello()["version"], 1, "hello after a refused hello")

    # the domain
    refused(d, pg, passguard.NoSuchDomain, lambda: pg.assign("nowhere", DEV_GPU), "domain")
    refused(d, pg, passguard.NoSuchDomain, lambda: pg.assign(77, DEV_GPU), "domain")
    refused(d, pg, passguard.NoSuchDomain, lambda: pg.assign(0, DEV_SPARE), "domain")
    refused(d, pg, passguard.NoSuchDomain, lambda: pg.assign(0x7FF1, DEV_SPARE), "domain")
    refused(d, pg, passguard.DomainDying, lambda: pg.assign("dying-1", DEV_SPARE), "domain")

    # the device
    refused(d, pg, passguard.NoSuchDevice, lambda: pg.assign("net-pv", DEV_GHOST), "device")
    refused(d, pg, passguard.ProtectedDevice, lambda: pg.assign("net-pv", DEV_SATA), "protected")
    refused(d, pg, passguard.NotAssignable, lambda: pg.assign("net-pv", DEV_IGB), "assignable")

    # group-conflict: the other function of the slot belongs to another domain
    pg.assign("net-pv", DEV_SLOT0)
    refused(d, pg, passguard.GroupConflict, lambda: pg.assign("net-pvh", DEV_SLOT1), "group")
    pg.assign("net-pv", DEV_SLOT1)
    pg.release("net-pv", DEV_SLOT1)
    pg.release("net-pv", DEV_SLOT0)

    # busy: granted by passguard, or assigned behind its back
    pg.assign("net-pv", DEV_NIC)
    e = refused(d, pg, passguard.Busy, lambda: pg.assign("net-pvh", DEV_NIC), "free")
    if e:
        # the CLI prints the same refusal in the same words
        cli = d.cli("assign", "net-pvh", DEV_NIC)
        check_eq(cli.returncode, 1)
        check_eq(cli.stderr, f"passguard: refused: {e}\n", "Python and the CLI say the same")
    pg.release("net-pv", DEV_NIC)
    d.set_owner(DEV_SPARE, 12)
    refused(d, pg, passguard.Busy, lambda: pg.assign("net-pv", DEV_SPARE), "free")
    d.set_owner(DEV_SPARE, "io")

    # domain-no-iommu (with the hypervisor's errno), denied by a rule and by default,
    # limit-reached, reset-failed
    e = refused(d, pg, passguard.DomainNoIommu, lambda: pg.assign("noiommu-1", DEV_SPARE),
                "domain-iommu")
    if e:
        check_eq(e.errno, "EOPNOTSUPP")
    e = refused(d, pg, passguard.Denied, lambda: pg.assign("render-1", DEV_NIC), "policy")
    if e:
        check_eq(e.rule, "no-nics-for-render")
    e = refused(d, pg, passguard.Denied, lambda: pg.assign("render-pv", DEV_GPU), "policy")
    if e:
        check_eq(e.rule, "default")
        check(e.errno is None, "a policy refusal has no errno")
    pg.assign("render-1", DEV_GPU)
    e = refused(d, pg, passguard.LimitReached, lambda: pg.assign("render-1", DEV_GPU2), "limit")
    if e:
        check_eq(e.rule, "gpus-to-render")
    pg.assign("render-2", DEV_GPU2)
    pg.release("render-1", DEV_GPU)
    pg.release(6, DEV_GPU2)
    refused(d, pg, passguard.ResetFailed, lambda: pg.assign("net-pv", DEV_NORESET), "reset",
            hv_call=True)
    check_eq(d.owner(DEV_NORESET), "io", "reset-failed left the device in quarantine")

    # not-assigned
    refused(d, pg, passguard.NotAssigned, lambda: pg.release("net-pv", DEV_SPARE), None)
    refused(d, pg, passguard.NotAssigned, lambda: pg.release("net-pv", DEV_GPU), None)

    # hypervisor-error: the assign call itself fails, and says how
    d.set_fault("assign", DEV_SPARE, "EIO")
    before = d.calls("assign")
    e = refused(d, pg, passguard.HypervisorError, lambda: pg.assign("net-pv", DEV_SPARE), None,
                hv_call=True)
    if e:
        check_eq(e.errno, "EIO")
    check_eq(d.calls("assign"), before + 1)
    check_eq(d.owner(DEV_SPARE), "io")
    check(not d.granted(DEV_SPARE))
    d.set_fault("assign", DEV_SPARE, None)
    pg.assign("net-pv", DEV_SPARE)
    pg.release("net-pv", DEV_SPARE)

    # state-error: the grant store cannot be written (the names of its journal and
    # of its temporary file are taken by directories), so the assign is rolled
    # back; then it can again
    journal = os.path.join(d.state, "grants.journal")
    if os.path.exists(journal):
        os.rename(journal, journal + ".kept")
    os.mkdir(journal)
    os.mkdir(d.grants + ".tmp")
    e = refused(d, pg, passguard.StateError, lambda: pg.assign("net-pv", DEV_NIC), None,
                hv_call=True)
    check_eq(d.owner(DEV_NIC), "io", "state-error rolled the hypervisor back")
    check(not d.granted(DEV_NIC))
    os.rmdir(d.grants + ".tmp")
    os.rmdir(journal)
    if os.path.exists(journal + ".kept"):
        os.rename(journal + ".kept", journal)
    pg.assign("net-pv", DEV_NIC)
    pg.release("net-pv", DEV_NIC)

    # policy-invalid: a reload of a bad file; the message has file:line
    d.write(d.policy, 'version = 1;\nclients = ( { name = "x"; } );\nbogus = 3;\n')
    e = refused(d, pg, passguard.PolicyInvalid, pg.reload, None)
    if e:
        check(re.search(re.escape(d.policy) + r":\d+: ", e.message), e.message)
    d.write(d.policy, pgitest.fixture("policy"))
    pg.reload()
    pg.close()

    # not-authorized: root is a known client but not an admin
    d.write(d.policy,
            'version = 1;\n'
            'clients = ( { name = "root"; uid = 0; },\n'
            '            { name = "operator"; uid = 65534; } );\n'
            'admins = [ "operator" ];\n'
            'rules = ( { name = "net"; action = "allow";\n'
            '            domains = ( { name = "net-*"; } ); reset = "never"; } );\n')
    d.restart()
    with Client(d.sock) as pg:
        refused(d, pg, passguard.NotAuthorized, pg.reload, None)
        refused(d, pg, passguard.NotAuthorized, lambda: pg.unprepare(DEV_SPARE), None)
        refused(d, pg, passguard.NotAuthorized, lambda: pg.prepare(DEV_E1000), None)
        check_eq(d.owner(DEV_E1000), "null")
        pg.assign("net-pv", DEV_NIC)  # a client, though
        pg.release("net-pv", DEV_NIC)
    d.write(d.policy, pgitest.fixture("policy"))

    # no-iommu and no-interrupt-remapping: host facts, read at start-up at the latest
    d.set_bool("interrupt_remapping", False)
    d.restart()
    with Client(d.sock) as pg:
        refused(d, pg, passguard.NoInterruptRemapping, lambda: pg.assign("net-pv", DEV_SPARE),
                "interrupt-remapping")
    d.set_bool("iommu", False)
    d.restart()
    with Client(d.sock) as pg:
        refused(d, pg, passguard.NoIommu, lambda: pg.assign("net-pv", DEV_SPARE), "iommu")
        refused(d, pg, passguard.NoIommu, lambda: pg.assign("render-1", DEV_GPU), "iommu")
    check(d.alive())

    # identity-changed: the device passguard prepared at an address is not the one there now
    d.set_bool("iommu", True)
    d.set_bool("interrupt_remapping", True)
    d.restart()
    with Client(d.sock) as pg:
        pg.prepare(DEV_E1000)

        def new_device_id(h: Dict[str, Any]) -> None:
            d.device(h, DEV_E1000)["device"] = "0x1533"
        d.host_edit(new_device_id)
        e = refused(d, pg, passguard.IdentityChanged, lambda: pg.assign("net-pv", DEV_E1000),
                    "identity")
        if e:
            check("device id 0x15b8 became 0x1533" in e.message, e.message)
            check_eq(e.number, 22)

    every = set(passguard.ERROR_CODES) - {"internal"}
    check_eq(sorted(every - reached), [], "error codes not reached from Python")


def session(d: pgitest.Daemon) -> None:
    """A grant, a refusal and its fields, and every other op, on a fresh daemon."""
    with Client(d.sock) as pg:
        check_eq(pg.daemon_version, "passguardd " + os.environ.get("PG_VERSION", "?"))
        st = pg.status()
        check_eq((st["backend"], st["iommu"], st["grants"], st["state_ok"]),
                 ("sim", True, 0, True))

        g = pg.assign("render-1", "03:00.0")
        check_eq((g.device, g.domid, g.domain, g.rule, g.rdm_policy),
                 (DEV_GPU, DOM_RENDER1, "render-1", "gpus-to-render", "strict"))
        check_eq(g.client_uid, os.getuid())
        check(g.domain_uuid and re.fullmatch(r"[0-9a-f-]{36}", g.domain_uuid), g.domain_uuid)
        check(g.time and g.time > 1_600_000_000, "grant time")

        e = check_raises(passguard.Busy, pg.assign, "render-2", DEV_GPU)
        if e:
            check_eq((e.code, e.number, e.check, e.rule, e.errno), ("busy", 12, "free", None, None))
            check("render-1" in e.message, e.message)
            check_eq(str(e), f"busy: {e.message} (check: free)")
            check_eq(e.args, (e.message,))

        o = pg.owner(DEV_GPU)
        check_eq((o.assigned, o.domid, o.domain, o.granted, o.quarantined),
                 (True, DOM_RENDER1, "render-1", True, False))
        check(o.grant is not None and o.grant.device == DEV_GPU)
        o = pg.owner(DEV_SPARE)
        check_eq((o.assigned, o.domid, o.granted, o.quarantined, o.driver),
                 (False, None, False, True, "pciback"))

        x = pg.explain("render-pv", DEV_GPU2)
        check_eq((x.allow, x.decision, x.error, x.check, x.rule), (False, "deny", "denied",
                                                                   "policy", "default"))
        check_eq(x.checks[-1].check, "policy")
        check_eq(x.checks[-1].result, "fail")
        check_eq([c.check for c in x.checks[:4]], ["request", "client", "iommu",
                                                   "interrupt-remapping"])
        r = x.refusal()
        check(isinstance(r, passguard.Denied) and r.rule == "default", repr(r))
        x = pg.explain(DOM_RENDER1, DEV_NIC, rdm_relaxed=True)
        check_eq((x.allow, x.error), (False, "denied"))
        x = pg.explain("net-hvm", DEV_SPARE, rdm_relaxed=True)
        check_eq((x.allow, x.decision, x.rule, x.refusal()), (True, "allow", "net", None))
        check_eq(x.checks[-1].check, "reset")
        check_eq(d.calls("assign"), 1, "explain assigned nothing")

        lst = pg.list()
        check_eq(lst["grant_count"], 1)
        check_eq([passguard.Grant.from_json(x).device for x in lst["grants"]], [DEV_GPU])
        check(DEV_SPARE in [a["device"] for a in lst["assignable"]])
        check_eq(lst["truncated"], False)

        check_eq(pg.release(DOM_RENDER1, DEV_GPU), {"device": DEV_GPU, "domid": DOM_RENDER1})
        check_eq(d.owner(DEV_GPU), "io")

        p = pg.prepare(DEV_E1000)
        check_eq((p["already_prepared"], p["previous_driver"], p["quarantined"]),
                 (False, "e1000e", True))
        check_eq(d.owner(DEV_E1000), "io")
        check_eq(pg.prepare(DEV_E1000)["already_prepared"], True)
        u = pg.unprepare(DEV_E1000)
        check_eq((u["driver"], u["quarantined"]), ("e1000e", False))
        check_eq(d.owner(DEV_E1000), "null")
        check_eq(pg.reload(), {"policy": d.policy, "rules": 4})
        check_eq(pg.call("status")["grants"], 0)

        # arguments the client rejects without sending anything
        check_raises(TypeError, pg.assign, True, DEV_GPU)
        check_raises(TypeError, pg.assign, "render-1", 3)
        check_raises(ValueError, pg.call, "assign", id=3)
        check_raises(ValueError, pg.call, "status", pad="x" * passguard.MAX_MESSAGE)
        check(not pg.closed, "local argument errors keep the connection")
        check_eq(pg.status()["grants"], 0)
    check(pg.closed)
    e = check_raises(passguard.TransportError, pg.status)
    check(e is not None and e.errno == errno.ENOTCONN, repr(e))


def transport(d: pgitest.Daemon) -> None:
    """The socket path rules of pg_connect, and an unreachable daemon."""
    saved = os.environ.pop("PASSGUARD_SOCKET", None)
    try:
        check_eq(passguard.socket_path(), "/run/passguard/passguard.sock")
        os.environ["PASSGUARD_SOCKET"] = ""
        check_eq(passguard.socket_path(), "/run/passguard/passguard.sock")
        os.environ["PASSGUARD_SOCKET"] = d.sock
        check_eq(passguard.socket_path(), d.sock)
        check_eq(passguard.socket_path("/x.sock"), "/x.sock")
        with Client() as pg:
            check_eq(pg.path, d.sock)
            check_eq(pg.status()["backend"], "sim")

        e = check_raises(passguard.TransportError, Client, d.dir + "/nothing.sock")
        check(e is not None and e.errno == errno.ENOENT and not isinstance(e, passguard.PassguardError),
              repr(e))
        check(isinstance(e, OSError) and "nothing.sock" in str(e), str(e))
        e = check_raises(passguard.TransportError, Client, "/" + "x" * 200)
        check(e is not None and e.errno == errno.ENAMETOOLONG, repr(e))
        # a socket nobody listens on
        dead = d.dir + "/dead.sock"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(dead)
        s.close()
        e = check_raises(passguard.TransportError, Client, dead)
        check(e is not None and e.errno == errno.ECONNREFUSED, repr(e))

        # the daemon goes away under a client
        pg = Client(d.sock)
        d.stop()
        e = check_raises(passguard.TransportError, pg.status)
        check(e is not None and e.errno in (errno.ECONNRESET, errno.EPIPE), repr(e))
        check(pg.closed)
        d.start()
    finally:
        if saved is None:
            os.environ.pop("PASSGUARD_SOCKET", None)
        else:
            os.environ["PASSGUARD_SOCKET"] = saved


def connection_limit(d: pgitest.Daemon) -> None:
    """A connection over max_connections gets one limit-reached line (id null) and is closed."""
    # start()'s probe connection may still hold the slot for a moment
    first: Optional[Client] = None
    for _ in range(200):
        try:
            first = Client(d.sock)
            break
        except passguard.LimitReached:
            time.sleep(0.01)
    if not check(first is not None, "no connection at all"):
        return
    assert first is not None
    for make in (lambda: Client(d.sock), lambda: asyncio.run(passguard.AsyncClient.connect(d.sock))):
        e = check_raises(passguard.LimitReached, make)
        if e:
            check(e.check is None and e.message, repr(e))
    check_eq(first.status()["backend"], "sim", "the first connection is still served")
    first.close()
    with Client(d.sock) as pg:
        check_eq(pg.status()["grants"], 0, "a slot is free again")


def error_table() -> None:
    """The Python table is libpassguard's: same names, same numbers, same order."""
    root = pgitest.env("PG_SOURCE_ROOT")
    with open(os.path.join(root, "client/passguard.h"), encoding="utf-8") as f:
        numbers = {m[1]: int(m[2]) for m in re.finditer(r"#define PG_ERR_(\w+) (\d+)", f.read())}
    with open(os.path.join(root, "client/errors.c"), encoding="utf-8") as f:
        names = dict(re.findall(r'\[PG_ERR_(\w+)\] = \{ "([a-z-]+)"', f.read()))
    pg_max = numbers.pop("MAX")
    c_table = {names[k]: n for k, n in numbers.items()}
    py_table = {code: cls.number for code, cls in passguard.ERROR_CODES.items()}
    check_eq(py_table, c_table, "error codes")
    check_eq(list(py_table.values()), list(range(1, pg_max + 1)), "in PG_ERR_* order")
    for code, cls in passguard.ERROR_CODES.items():
        camel = "".join(p.capitalize() for p in code.split("-"))
        check_eq(cls.__name__.lower(), camel.lower(), f"class name of {code}")
        check(getattr(passguard, cls.__name__) is cls, f"passguard.{cls.__name__}")
        check(cls.__doc__ and code in cls.__doc__, f"{cls.__name__} docstring")
    check_eq(passguard.error_number("busy"), 12)
    check_eq(passguard.error_number("nonsense"), -errno.EINVAL)
    check(passguard.error_class("nonsense") is passguard.Internal)


def many(d: pgitest.Daemon) -> None:
    """assign_many / explain_many, sync and async: all or none, the failing device named."""
    with Client(d.sock) as pg:
        ex = pg.explain_many("net-pv", [DEV_NIC, DEV_SPARE])
        check_eq(ex.decision, "allow")
        check_eq([x["device"] for x in ex.reply["devices"]], [DEV_NIC, DEV_SPARE])
        ex = pg.explain_many("net-pv", [DEV_NIC, DEV_SATA])
        check_eq((ex.decision, ex.reply.get("device")), ("deny", DEV_SATA))

        grants = pg.assign_many("net-pv", [DEV_NIC, DEV_SPARE])
        check_eq([(g.device, g.domid) for g in grants], [(DEV_NIC, 7), (DEV_SPARE, 7)])
        check_eq((d.owner(DEV_NIC), d.owner(DEV_SPARE)), ("7", "7"))
        for dev in (DEV_NIC, DEV_SPARE):
            pg.release("net-pv", dev)

        # The second one's assign fails: the first goes back, nothing is granted.
        d.set_fault("assign", DEV_SPARE, "EIO")
        e = refused(d, pg, passguard.HypervisorError,
                    lambda: pg.assign_many("net-pv", [DEV_NIC, DEV_SPARE]), None, hv_call=True)
        if e:
            check_eq(e.reply.get("device"), DEV_SPARE)
            check("back in quarantine" in e.message, e.message)
        d.set_fault("assign", DEV_SPARE, None)
        check_eq((d.owner(DEV_NIC), d.owner(DEV_SPARE)), ("io", "io"))
        check_eq(pg.list()["grants"], [])

        # A refusal by a check: nothing is assigned at all.
        before = d.calls("assign")
        refused(d, pg, passguard.ProtectedDevice,
                lambda: pg.assign_many("net-pv", [DEV_NIC, DEV_SATA]), "protected")
        check_eq(d.calls("assign"), before)

    async def aio() -> List[str]:
        async with passguard.AsyncClient(d.sock) as apg:
            gs = await apg.assign_many("net-pv", [DEV_NIC, DEV_SPARE])
            ex = await apg.explain_many("net-pvh", [DEV_NIC, DEV_SPARE])
            check_eq((ex.decision, ex.reply.get("error")), ("deny", "busy"))
            for g in gs:
                await apg.release("net-pv", g.device)
            return [g.device for g in gs]
    check_eq(asyncio.run(aio()), [DEV_NIC, DEV_SPARE])


def main() -> int:
    print(f"# python {sys.version.split()[0]} at {sys.executable}")
    error_table()
    with pgitest.Daemon("python-errors") as d:
        d.start()
        errors(d)
    with pgitest.Daemon("python-session") as d:
        d.start()
        session(d)
        many(d)
        transport(d)
    with pgitest.Daemon("python-limit", config="max_connections = 1;\n") as d:
        d.start()
        connection_limit(d)
    return pgitest.exit_status()


if __name__ == "__main__":
    sys.exit(main())
