# SPDX-License-Identifier: MIT
"""Hostile replies from a fake daemon: each is a clear exception, never a hang.

A fake passguardd in a thread answers hello properly, then answers the next
request in one hostile way: a reply over 64 KiB with or without a newline, no
newline at all, silence, a trickle slower than the timeout, a reply cut off by
a close, another request's id, text that is not JSON, not an object,
duplicate keys, NaN, a NUL byte, invalid UTF-8, deep nesting, missing or
mistyped fields, an unknown error code. Each one is tried on the blocking and
the asyncio client: the exception's class and errno are checked, and so is
how long it took (at once, or within the timeout when the daemon is silent),
and that the client is closed afterwards (ENOTCONN) except where the reply
was a well-formed refusal. The `internal` error code is reached here, since
a correct daemon never sends it on purpose.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any, Callable, List, Optional, Type

import passguard
import pgitest
from pgitest import check, check_eq

MAX = passguard.MAX_MESSAGE
Behaviour = Callable[[socket.socket, int], None]


class FakeDaemon:
    """An AF_UNIX server; each connection: a hello reply, then behave(conn, id) on the next request."""

    def __init__(self, path: str, behave: Behaviour,
                 hello: Optional[Callable[[socket.socket, int], None]] = None) -> None:
        self.path = path
        self.behave = behave
        self.hello = hello or (lambda c, i: c.sendall(
            json.dumps({"id": i, "ok": True, "version": 1, "daemon": "fake"}).encode() + b"\n"))
        self.stopping = threading.Event()
        self.conns: List[socket.socket] = []
        self.threads: List[threading.Thread] = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _read_line(self, conn: socket.socket, buf: bytearray) -> Optional[bytes]:
        while b"\n" not in buf:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        line, _, rest = bytes(buf).partition(b"\n")
        buf[:] = rest
        return line

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            line = self._read_line(conn, buf)
            if line is None:
                return
            self.hello(conn, json.loads(line)["id"])
            line = self._read_line(conn, buf)
            if line is None:
                return
            self.behave(conn, json.loads(line)["id"])
            # then answer nothing more, until the client goes or the test ends
            conn.settimeout(0.1)
            while not self.stopping.is_set():
                try:
                    if not conn.recv(65536):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return
        except OSError:
            pass

    def stop(self) -> None:
        self.stopping.set()
        self.srv.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in [self.acceptor, *self.threads]:
            t.join(5)
        os.unlink(self.path)


def send(data: bytes) -> Behaviour:
    return lambda c, i: c.sendall(data)


def send_json(make: Callable[[int], Any]) -> Behaviour:
    return lambda c, i: c.sendall(json.dumps(make(i)).encode() + b"\n")


def send_text(fmt: str) -> Behaviour:
    """fmt with {id} for the request's id."""
    return lambda c, i: c.sendall(fmt.replace("{id}", str(i)).encode())


def then_close(b: Behaviour) -> Behaviour:
    def f(c: socket.socket, i: int) -> None:
        b(c, i)
        c.shutdown(socket.SHUT_RDWR)
    return f


def nothing(c: socket.socket, i: int) -> None:
    pass


def trickle(c: socket.socket, i: int) -> None:
    for ch in f'{{"id":{i},"ok":true,"pad":"{"x" * 40}"}}\n'.encode():
        try:
            c.sendall(bytes([ch]))
        except OSError:
            return
        time.sleep(0.05)


def padded(i: int, size: int) -> bytes:
    """A valid reply line of exactly size bytes, newline excluded."""
    head = f'{{"id":{i},"ok":true,"pad":"'.encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


TIMEOUT = 0.6   # for the cases where the daemon is silent
PROMPT = 1.5    # anything else must fail well before this


class Case:
    def __init__(self, name: str, behave: Behaviour, exc: Type[BaseException],
                 errnum: Optional[int] = None, words: str = "", closed: bool = True,
                 slow: bool = False, on_connect: bool = False,
                 hello: Optional[Callable[[socket.socket, int], None]] = None) -> None:
        self.name, self.behave, self.exc, self.errnum = name, behave, exc, errnum
        self.words, self.closed, self.slow, self.on_connect = words, closed, slow, on_connect
        self.hello = hello


CASES = [
    Case("oversized, no newline", send(b"{" + b" " * (MAX + 100)), passguard.ProtocolError,
         errno.EMSGSIZE, "longer than 65536"),
    Case("oversized line", send_json(lambda i: {"id": i, "ok": True, "pad": "x" * MAX}),
         passguard.ProtocolError, errno.EMSGSIZE, "longer than 65536"),
    Case("one byte over the limit", lambda c, i: c.sendall(padded(i, MAX) + b"\n"),
         passguard.ProtocolError, errno.EMSGSIZE),
    Case("no newline, then silence", send_text('{"id":{id},"ok":true}'), passguard.ReplyTimeout,
         errno.ETIMEDOUT, "no reply to status", slow=True),
    Case("silence", nothing, passguard.ReplyTimeout, errno.ETIMEDOUT, slow=True),
    Case("a trickle slower than the timeout", trickle, passguard.ReplyTimeout, errno.ETIMEDOUT,
         slow=True),
    Case("closed in the middle of a reply", then_close(send_text('{"id":{id},"ok":tr')),
         passguard.TransportError, errno.ECONNRESET, "in the middle of a reply"),
    Case("closed before replying", then_close(nothing), passguard.TransportError,
         errno.ECONNRESET, "before replying"),
    Case("another request's id", send_text('{"id":99{id},"ok":true}\n'),
         passguard.ProtocolError, errno.EPROTO, "does not match request id"),
    Case("no id", send_text('{"ok":true}\n'), passguard.ProtocolError, errno.EPROTO, '"id"'),
    Case("a boolean id", send_text('{"id":true,"ok":true}\n'), passguard.ProtocolError,
         errno.EPROTO, '"id"'),
    Case("a null id on a success", send_text('{"id":null,"ok":true}\n'),
         passguard.ProtocolError, errno.EPROTO, '"id"'),
    Case("not JSON", send(b"hello, world\n"), passguard.ProtocolError, errno.EPROTO,
         "not valid JSON"),
    Case("not an object", send(b"[1, 2, 3]\n"), passguard.ProtocolError, errno.EPROTO,
         "not a JSON object"),
    Case("an empty line", send(b"\n"), passguard.ProtocolError, errno.EPROTO, "JSON"),
    Case("duplicate keys", send_text('{"id":{id},"ok":true,"ok":false}\n'),
         passguard.ProtocolError, errno.EPROTO, "duplicate key"),
    Case("NaN", send_text('{"id":{id},"ok":true,"x":NaN}\n'), passguard.ProtocolError,
         errno.EPROTO, "NaN"),
    Case("a NUL byte", send_text('{"id":{id},"ok":true}\0\n'), passguard.ProtocolError,
         errno.EPROTO, "NUL"),
    Case("invalid UTF-8", lambda c, i: c.sendall(b'{"id":%d,"ok":true,"x":"\xff"}\n' % i),
         passguard.ProtocolError, errno.EPROTO, "UTF-8"),
    Case("nested 30000 deep", lambda c, i: c.sendall(b'{"id":%d,"ok":true,"x":%s%s}\n'
                                                      % (i, b"[" * 30000, b"]" * 30000)),
         passguard.ProtocolError, errno.EPROTO),
    Case("no ok", send_text('{"id":{id}}\n'), passguard.ProtocolError, errno.EPROTO, '"ok"'),
    Case("ok is a string", send_text('{"id":{id},"ok":"true"}\n'), passguard.ProtocolError,
         errno.EPROTO, '"ok"'),
    Case("a refusal without error", send_text('{"id":{id},"ok":false,"message":"no"}\n'),
         passguard.ProtocolError, errno.EPROTO, '"error"'),
    Case("a numeric message", send_text('{"id":{id},"ok":false,"error":"busy","message":5}\n'),
         passguard.ProtocolError, errno.EPROTO, '"message"'),
    Case("a numeric errno", send_text('{"id":{id},"ok":false,"error":"busy","errno":16}\n'),
         passguard.ProtocolError, errno.EPROTO, '"errno"'),
    Case("an unknown error code",
         send_text('{"id":{id},"ok":false,"error":"frobnicated","message":"what"}\n'),
         passguard.Internal, None, "unknown error code 'frobnicated'", closed=False),
    Case("internal", send_text('{"id":{id},"ok":false,"error":"internal",'
                               '"message":"reply too long"}\n'),
         passguard.Internal, None, "internal: reply too long", closed=False),
    Case("a refusal of the connection (id null), then close",
         then_close(send_text('{"id":null,"ok":false,"error":"limit-reached",'
                              '"message":"too many connections"}\n')),
         passguard.LimitReached, None, "too many connections"),
    Case("a hello of another version", nothing, passguard.ProtocolError, errno.EPROTONOSUPPORT,
         "version 2", on_connect=True,
         hello=lambda c, i: c.sendall(b'{"id":%d,"ok":true,"version":2}\n' % i)),
    Case("a refused hello", nothing, passguard.UnsupportedVersion, None, "speaks", on_connect=True,
         hello=lambda c, i: c.sendall(b'{"id":%d,"ok":false,"error":"unsupported-version",'
                                      b'"message":"this daemon speaks version 7"}\n' % i)),
    Case("silence on hello", nothing, passguard.ReplyTimeout, errno.ETIMEDOUT, slow=True,
         on_connect=True, hello=lambda c, i: None),
    Case("an immediate refusal of the connection", nothing, passguard.LimitReached, None,
         "too many", on_connect=True,
         hello=lambda c, i: (c.sendall(b'{"id":null,"ok":false,"error":"limit-reached",'
                                       b'"message":"too many connections"}\n'),
                             c.shutdown(socket.SHUT_RDWR))),
]


def judge(case: Case, client: str, e: Optional[BaseException], elapsed: float,
          closed: Optional[bool]) -> None:
    where = f"{case.name} ({client})"
    if not check(isinstance(e, case.exc), f"{where}: expected {case.exc.__name__}, got "
                 f"{type(e).__name__}: {e}"):
        return
    if case.errnum is not None:
        check_eq(getattr(e, "errno", None), case.errnum, f"{where}: errno")
    check(case.words in str(e), f"{where}: {case.words!r} not in {str(e)!r}")
    if case.slow:
        check(TIMEOUT * 0.8 <= elapsed < TIMEOUT + PROMPT, f"{where}: took {elapsed:.2f} s")
    else:
        check(elapsed < PROMPT, f"{where}: took {elapsed:.2f} s, not at once")
    if closed is not None:
        check_eq(closed, case.closed, f"{where}: closed afterwards")


def run_blocking(path: str, case: Case) -> None:
    timeout = TIMEOUT if case.slow else 10.0
    start = time.monotonic()
    pg: Optional[passguard.Client] = None
    try:
        pg = passguard.Client(path, timeout=timeout)
        if not case.on_connect:
            pg.status()
        e: Optional[BaseException] = None
    except BaseException as x:  # noqa: B902 - judged below
        e = x
    elapsed = time.monotonic() - start
    judge(case, "blocking", e, elapsed, pg.closed if pg is not None else None)
    if pg is not None and pg.closed:
        after = pgitest.check_raises(passguard.TransportError, pg.status)
        check(after is None or after.errno == errno.ENOTCONN, f"{case.name}: {after!r}")
    if pg is not None:
        pg.close()


async def run_async(path: str, case: Case) -> None:
    timeout = TIMEOUT if case.slow else 10.0
    start = time.monotonic()
    pg = passguard.AsyncClient(path, timeout=timeout)
    e: Optional[BaseException] = None
    try:
        await pg.open()
        if not case.on_connect:
            await pg.status()
    except BaseException as x:  # noqa: B902 - judged below
        e = x
    elapsed = time.monotonic() - start
    judge(case, "asyncio", e, elapsed, None if case.on_connect else pg.closed)
    if pg.closed:
        try:
            await pg.status()
            check(False, f"{case.name} (asyncio): a closed client answered")
        except passguard.TransportError as after:
            check_eq(after.errno, errno.ENOTCONN, f"{case.name} (asyncio)")
    await pg.close()


def boundary(path: str) -> None:
    """A reply of exactly 64 KiB with its newline is accepted, by both clients."""
    srv = FakeDaemon(path, lambda c, i: c.sendall(padded(i, MAX - 1) + b"\n"))
    try:
        with passguard.Client(path) as pg:
            r = pg.status()
            check_eq(len(r["pad"]) + len('{"id":2,"ok":true,"pad":""}'), MAX - 1)

        async def a() -> None:
            async with passguard.AsyncClient(path) as apg:
                r = await apg.status()
                check_eq(len(r["pad"]) + len('{"id":2,"ok":true,"pad":""}'), MAX - 1)
        asyncio.run(a())
    finally:
        srv.stop()


def after_refusal(path: str) -> None:
    """An unknown error code is a refusal: the connection goes on."""
    calls = {"n": 0}

    def behave(c: socket.socket, i: int) -> None:
        c.sendall(b'{"id":%d,"ok":false,"error":"from-the-future","message":"m"}\n' % i)
        # and answer the next request properly
        buf = b""
        while b"\n" not in buf:
            buf += c.recv(4096)
        j = json.loads(buf.split(b"\n")[0])["id"]
        calls["n"] += 1
        c.sendall(b'{"id":%d,"ok":true,"backend":"fake"}\n' % j)

    srv = FakeDaemon(path, behave)
    try:
        with passguard.Client(path) as pg:
            e = pgitest.check_raises(passguard.Internal, pg.status)
            if e:
                check_eq((e.code, e.wire_error, e.number), ("internal", "from-the-future", 21))
            check_eq(pg.status(), {"backend": "fake"})
    finally:
        srv.stop()


class Interrupted(Exception):
    pass


def interrupted(path: str) -> None:
    """An exception from a signal handler mid-call (^C) closes the blocking client."""
    srv = FakeDaemon(path, nothing)

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        pg = passguard.Client(path, timeout=10)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        start = time.monotonic()
        pgitest.check_raises(Interrupted, pg.status)
        check(time.monotonic() - start < PROMPT, "the interruption came through at once")
        check(pg.closed, "interrupted with the request on the wire: closed")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        srv.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pg-pytest-hostile-") as d:
        for n, case in enumerate(CASES):
            path = os.path.join(d, f"fake{n}.sock")
            srv = FakeDaemon(path, case.behave, case.hello)
            try:
                run_blocking(path, case)
                asyncio.run(run_async(path, case))
            finally:
                srv.stop()
        boundary(os.path.join(d, "boundary.sock"))
        after_refusal(os.path.join(d, "after.sock"))
        interrupted(os.path.join(d, "interrupted.sock"))
    print(f"# {len(CASES)} hostile replies, each to both clients")
    return pgitest.exit_status()


if __name__ == "__main__":
    sys.exit(main())
