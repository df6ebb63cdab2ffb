# SPDX-License-Identifier: MIT
"""The asyncio client against a real passguardd on the simulated host.

A grant, refusals and their fields; many tasks sharing one client, each
getting its own reply; clients racing for one device, exactly one of them
granted; a cancelled call closing its connection and nothing else; and a
stopped daemon (SIGSTOP), which both clients give up on within their timeout.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import sys
import time
from typing import List, Union

import passguard
from passguard import AsyncClient
import pgitest
from pgitest import (DEV_GPU, DEV_GPU2, DEV_NIC, DEV_SPARE, DOM_RENDER1, check, check_eq)


async def session(d: pgitest.Daemon) -> None:
    async with AsyncClient(d.sock) as pg:
        check_eq(pg.daemon_version, "passguardd " + pgitest.env("PG_VERSION"))
        g = await pg.assign("render-1", DEV_GPU)
        check_eq((g.device, g.domid, g.rule, g.rdm_policy),
                 (DEV_GPU, DOM_RENDER1, "gpus-to-render", "strict"))
        check_eq(d.owner(DEV_GPU), str(DOM_RENDER1), "the hypervisor assigned it")

        for call, cls, fields in [
            (lambda: pg.assign("render-2", DEV_GPU), passguard.Busy, ("busy", "free", None)),
            (lambda: pg.assign("render-1", DEV_GPU2), passguard.LimitReached,
             ("limit-reached", "limit", "gpus-to-render")),
            (lambda: pg.assign("render-1", DEV_NIC), passguard.Denied,
             ("denied", "policy", "no-nics-for-render")),
            (lambda: pg.release("net-pv", DEV_SPARE), passguard.NotAssigned,
             ("not-assigned", None, None)),
            (lambda: pg.call("frobnicate"), passguard.BadRequest, ("bad-request", "request", None)),
        ]:
            try:
                await call()
                check(False, f"{cls.__name__}: no exception")
            except passguard.PassguardError as e:
                check_eq(type(e), cls)
                check_eq((e.code, e.check, e.rule), fields)
                check(e.message, "a message")
        check(not pg.closed, "refusals keep the connection")

        x = await pg.explain("render-2", DEV_GPU2)
        check_eq((x.allow, x.rule, x.checks[-1].check), (True, "gpus-to-render", "reset"))
        o = await pg.owner(DEV_GPU)
        check_eq((o.assigned, o.domid, o.granted), (True, DOM_RENDER1, True))
        check_eq((await pg.list())["grant_count"], 1)
        check_eq((await pg.status())["grants"], 1)
        check_eq(await pg.release(DOM_RENDER1, DEV_GPU), {"device": DEV_GPU, "domid": DOM_RENDER1})
        check_eq(d.owner(DEV_GPU), "io", "released into quarantine")
        check_eq((await pg.prepare(DEV_SPARE))["already_prepared"], True)
        check_eq((await pg.reload())["rules"], 4)
    check(pg.closed)
    try:
        await pg.status()
        check(False, "a closed client answered")
    except passguard.TransportError as e:
        check_eq(e.errno, errno.ENOTCONN)


async def many_tasks(d: pgitest.Daemon) -> None:
    """60 concurrent calls on one client: each gets the reply to its own request."""
    devices = [DEV_GPU, DEV_GPU2, DEV_NIC, DEV_SPARE]
    async with await AsyncClient.connect(d.sock) as pg:
        results = await asyncio.gather(*[pg.owner(devices[i % 4]) for i in range(60)])
        check_eq([o.device for o in results], [devices[i % 4] for i in range(60)])
        explained = await asyncio.gather(*[pg.explain("render-1" if i % 2 else "render-pv", DEV_GPU)
                                           for i in range(20)])
        check_eq([x.allow for x in explained], [bool(i % 2) for i in range(20)])


async def race(d: pgitest.Daemon) -> None:
    """Eight clients ask for one device at once: one grant, seven busy."""
    clients = [await AsyncClient.connect(d.sock) for _ in range(8)]
    before = d.calls("assign")
    results: List[Union[passguard.Grant, BaseException]] = await asyncio.gather(
        *[c.assign("net-pv", DEV_NIC) for c in clients], return_exceptions=True)
    grants = [r for r in results if isinstance(r, passguard.Grant)]
    busy = [r for r in results if isinstance(r, passguard.Busy)]
    check_eq((len(grants), len(busy)), (1, 7), repr(results))
    check_eq(d.calls("assign"), before + 1, "one hypervisor assign")
    await clients[0].release("net-pv", DEV_NIC)
    for c in clients:
        await c.close()


async def cancelled(d: pgitest.Daemon) -> None:
    """A call cancelled on the wire closes its client; other clients go on."""
    other = await AsyncClient.connect(d.sock)
    pg = await AsyncClient.connect(d.sock)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGSTOP)  # so that the reply cannot come first
    try:
        task = asyncio.ensure_future(pg.status())
        await asyncio.sleep(0.2)  # the request is sent, its reply not read
        check(not task.done(), "a stopped daemon answered")
        task.cancel()
        try:
            await task
            check(False, "the cancelled call finished")
        except asyncio.CancelledError:
            pass
        check(pg.closed, "a call cancelled mid-way closes the connection")
    finally:
        d.proc.send_signal(signal.SIGCONT)
        await pg.close()
    check_eq((await other.status())["backend"], "sim")
    await other.close()
    async with AsyncClient(d.sock) as again:
        check_eq((await again.status())["backend"], "sim", "a new client after a cancellation")


def stopped(d: pgitest.Daemon) -> None:
    """A daemon that does not answer (SIGSTOP): ReplyTimeout within the timeout, both clients."""
    blocking = passguard.Client(d.sock, timeout=0.5)
    asynchronous = asyncio.run(AsyncClient.connect(d.sock, timeout=0.5))
    assert d.proc is not None
    d.proc.send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        e = pgitest.check_raises(passguard.ReplyTimeout, blocking.status)
        elapsed = time.monotonic() - start
        check(e is not None and e.errno == errno.ETIMEDOUT and isinstance(e, TimeoutError), repr(e))
        check(0.4 < elapsed < 2, f"blocking: took {elapsed:.2f} s")
        check(blocking.closed)

        async def a() -> None:
            start = time.monotonic()
            try:
                await asynchronous.status()
                check(False, "a stopped daemon answered")
            except passguard.ReplyTimeout as e:
                check_eq(e.errno, errno.ETIMEDOUT)
            elapsed = time.monotonic() - start
            check(0.4 < elapsed < 2, f"asyncio: took {elapsed:.2f} s")
            check(asynchronous.closed)
        asyncio.run(a())
    finally:
        d.proc.send_signal(signal.SIGCONT)
    with passguard.Client(d.sock) as pg:
        check_eq(pg.status()["backend"], "sim", "the daemon goes on after SIGCONT")


def main() -> int:
    with pgitest.Daemon("python-async") as d:
        d.start()
        asyncio.run(session(d))
        asyncio.run(many_tasks(d))
        asyncio.run(race(d))
        asyncio.run(cancelled(d))
        stopped(d)
        check(d.alive())
    return pgitest.exit_status()


if __name__ == "__main__":
    sys.exit(main())
