# SPDX-License-Identifier: MIT
"""The asyncio client, for event-loop toolstacks such as qubesd.

The same operations and the same exceptions as :class:`passguard.Client`,
as coroutines::

    async with passguard.AsyncClient() as pg:
        grant = await pg.assign("render-1", "0000:03:00.0")

Requests from concurrent tasks on one client are sent one at a time (an
asyncio lock). A call that is cancelled, or times out, while its request is on
the wire closes the connection, since its reply could no longer be told from
the next one's; later calls raise TransportError (ENOTCONN).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from types import TracebackType
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Type

from . import _wire
from .errors import ProtocolError, ReplyTimeout, TransportError
from .results import Event, Explanation, Grant, Owner, Reply


class AsyncClient:
    """A connection to passguardd for asyncio code.

    ``AsyncClient(path, timeout=...)`` does no I/O; ``await client.open()``,
    ``async with AsyncClient() as client``, or ``await AsyncClient.connect()``
    connects and says hello. ``path`` and ``timeout`` mean what they mean for
    :class:`passguard.Client`; the timeout bounds each call as a whole.
    """

    def __init__(self, path: "Optional[os.PathLike[str] | str]" = None, *,
                 timeout: Optional[float] = _wire.DEFAULT_TIMEOUT) -> None:
        self.path: str = _wire.socket_path(path)
        self.timeout = timeout
        self.daemon_version: Optional[str] = None
        """The daemon's version string from hello (``"passguardd 0.1.0"``)."""
        self._sock: Optional[socket.socket] = None
        self._buf = _wire.LineBuffer()
        self._next_id = 1
        self._lock: Optional[asyncio.Lock] = None

    @classmethod
    async def connect(cls, path: "Optional[os.PathLike[str] | str]" = None, *,
                      timeout: Optional[float] = _wire.DEFAULT_TIMEOUT) -> "AsyncClient":
        """Construct and open a client."""
        c = cls(path, timeout=timeout)
        await c.open()
        return c

    async def open(self) -> "AsyncClient":
        """Connect and say hello with protocol version 1. Opening an open client does nothing."""
        if self._sock is not None:
            return self
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(s, self.path), self.timeout)
        except asyncio.TimeoutError:
            s.close()
            raise ReplyTimeout(errno.ETIMEDOUT, f"cannot connect to {self.path}: timed out") \
                from None
        except OSError as e:
            s.close()
            raise TransportError(e.errno or errno.EIO,
                                 f"cannot connect to {self.path}: {e.strerror or e}") from None
        except BaseException:
            s.close()
            raise
        self._sock = s
        self._buf = _wire.LineBuffer()
        self._lock = asyncio.Lock()
        try:
            hello = await self.hello()
        except BaseException:
            self.close_now()
            raise
        v = hello.get("daemon")
        self.daemon_version = v if isinstance(v, str) else None
        return self

    def close_now(self) -> None:
        """Close the connection at once (no await needed)."""
        s, self._sock = self._sock, None
        if s is not None:
            s.close()

    async def close(self) -> None:
        """Close the connection. Calling it again does nothing."""
        self.close_now()

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by close(), or after a transport error)."""
        return self._sock is None

    async def __aenter__(self) -> "AsyncClient":
        return await self.open()

    async def __aexit__(self, exc_type: Optional[Type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<passguard.AsyncClient {self.path} {state}>"

    # ---- the exchange ----

    async def _recv_line(self, sock: socket.socket) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            line = self._buf.pop_line()
            if line is not None:
                return line
            chunk = await loop.sock_recv(sock, self._buf.room())
            if not chunk:
                what = "in the middle of a reply" if len(self._buf) else "before replying"
                raise TransportError(errno.ECONNRESET, f"the daemon closed the connection {what}")
            self._buf.feed(chunk)

    async def _round_trip(self, sock: socket.socket, data: bytes) -> bytes:
        try:
            await asyncio.get_running_loop().sock_sendall(sock, data)
        except (BrokenPipeError, ConnectionResetError) as e:
            # The daemon may have refused the connection and closed it: its
            # refusal is then waiting to be read, and is the answer.
            line = _wire.pending_line(sock, self._buf)
            if line is None:
                raise TransportError(e.errno or errno.EPIPE,
                                     f"cannot send the request: {e.strerror}") from None
            return line
        return await self._recv_line(sock)

    async def _exchange(self, op: str, args: Dict[str, Any]) -> Reply:
        if self._lock is None:
            raise TransportError(errno.ENOTCONN, "the client is not open: await open() first")
        async with self._lock:
            sock = self._sock
            if sock is None:
                raise TransportError(errno.ENOTCONN,
                                     "the connection is closed (after close() or an earlier error)")
            request_id = self._next_id
            data = _wire.encode_request(op, request_id, args)
            self._next_id += 1
            try:
                line = await asyncio.wait_for(self._round_trip(sock, data), self.timeout)
                reply, closing = _wire.decode_reply(line, request_id)
            except asyncio.TimeoutError:
                self.close_now()
                raise ReplyTimeout(errno.ETIMEDOUT,
                                   f"no reply to {op} within {self.timeout} s") from None
            except TransportError:
                self.close_now()
                raise
            except OSError as e:
                self.close_now()
                raise TransportError(e.errno or errno.EIO,
                                     f"cannot talk to the daemon: {e.strerror or e}") from None
            except BaseException:
                # Cancelled with the request on the wire: the stream is out of step.
                self.close_now()
                raise
            if closing:
                self.close_now()
        if not reply["ok"]:
            raise _wire.refusal(reply)
        return _wire.result(reply)

    # ---- the operations; see passguard.Client for what each does ----

    async def call(self, op: str, **args: Any) -> Reply:
        """Send any request; see :meth:`passguard.Client.call`."""
        return await self._exchange(op, args)

    async def hello(self, version: int = _wire.PROTOCOL_VERSION) -> Reply:
        """See :meth:`passguard.Client.hello`."""
        reply = await self._exchange("hello", {"version": version})
        if version == _wire.PROTOCOL_VERSION:
            try:
                _wire.check_hello(reply)
            except TransportError:
                self.close_now()
                raise
        return reply

    async def status(self) -> Reply:
        """See :meth:`passguard.Client.status`."""
        return await self._exchange("status", {})

    async def list(self) -> Reply:
        """See :meth:`passguard.Client.list`."""
        return await self._exchange("list", {})

    async def assign(self, domain: "str | int", device: str, *,
                     rdm_relaxed: bool = False) -> Grant:
        """See :meth:`passguard.Client.assign`."""
        args = _wire.target_args(domain, device, rdm_relaxed)
        reply = await self._exchange("assign", args)
        g = reply.get("grant")
        if not isinstance(g, dict):
            raise ProtocolError(errno.EPROTO, 'assign reply has no "grant" object')
        return Grant.from_json(g, args.get("domid"))

    async def release(self, domain: "str | int", device: str) -> Reply:
        """See :meth:`passguard.Client.release`."""
        return await self._exchange("release", _wire.target_args(domain, device))

    async def explain(self, domain: "str | int", device: str, *,
                      rdm_relaxed: bool = False) -> Explanation:
        """See :meth:`passguard.Client.explain`."""
        reply = await self._exchange("explain", _wire.target_args(domain, device, rdm_relaxed))
        return Explanation.from_json(reply)

    async def owner(self, device: str) -> Owner:
        """See :meth:`passguard.Client.owner`."""
        return Owner.from_json(await self._exchange("owner", {"device": device}), device)

    async def prepare(self, device: str) -> Reply:
        """See :meth:`passguard.Client.prepare`."""
        return await self._exchange("prepare", {"device": device})

    async def unprepare(self, device: str) -> Reply:
        """See :meth:`passguard.Client.unprepare`."""
        return await self._exchange("unprepare", {"device": device})

    async def reload(self) -> Reply:
        """See :meth:`passguard.Client.reload`."""
        return await self._exchange("reload", {})

    async def assign_many(self, domain: "str | int", devices: Sequence[str], *,
                          rdm_relaxed: bool = False) -> List[Grant]:
        """See :meth:`passguard.Client.assign_many`."""
        args = _wire.devices_args(domain, devices, rdm_relaxed)
        reply = await self._exchange("assign", args)
        grants = reply.get("grants")
        if not isinstance(grants, list) or len(grants) != len(devices) or \
                not all(isinstance(g, dict) for g in grants):
            raise ProtocolError(errno.EPROTO, 'assign reply has no "grants" array')
        return [Grant.from_json(g, args.get("domid")) for g in grants]

    async def explain_many(self, domain: "str | int", devices: Sequence[str], *,
                           rdm_relaxed: bool = False) -> Explanation:
        """See :meth:`passguard.Client.explain_many`."""
        reply = await self._exchange("explain",
                                     _wire.devices_args(domain, devices, rdm_relaxed))
        return Explanation.from_json(reply)

    async def untaint(self, device: str) -> Reply:
        """See :meth:`passguard.Client.untaint`."""
        return await self._exchange("untaint", {"device": device})

    def watch(self) -> "AsyncWatch":
        """The daemon's event stream as an async iterator, on a connection of its own::

            async for event in client.watch():
                ...

        It connects when ``async with`` enters it, or else at the first event
        asked for (so a refusal, NotAuthorized, is raised there); every event
        after that point is delivered. Otherwise as
        :meth:`passguard.Client.watch`. Close it with ``await w.aclose()`` or
        ``async with client.watch() as w``.
        """
        return AsyncWatch(self.path, self.timeout)


class AsyncWatch:
    """An event stream of passguardd for asyncio code (:meth:`AsyncClient.watch`)."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: Optional[socket.socket] = None
        self._buf = _wire.LineBuffer()
        self._started = False
        self._done = False

    async def _start(self) -> None:
        self._started = True
        c = AsyncClient(self.path, timeout=self.timeout)
        await c.open()
        try:
            await c.call("watch")
        except BaseException:
            c.close_now()
            raise
        # The connection is the stream's from now on; events may have come with the reply.
        self._sock, self._buf = c._sock, c._buf
        c._sock = None

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> Event:
        if not self._started:
            await self._start()
        loop = asyncio.get_running_loop()
        while True:
            if self._done or self._sock is None:
                raise StopAsyncIteration
            try:
                event = Event.from_buffer(self._buf)
            except TransportError:
                self.close_now()
                raise
            if event is not None:
                if event.event == "dropped":
                    self.close_now()  # the daemon closes it after this line
                return event
            try:
                chunk = await loop.sock_recv(self._sock, self._buf.room())
            except OSError as e:
                self.close_now()
                raise TransportError(e.errno or errno.EIO,
                                     f"cannot read an event: {e.strerror or e}") from None
            except BaseException:
                self.close_now()
                raise
            if not chunk:
                self.close_now()
                raise TransportError(errno.ECONNRESET, "the daemon ended the event stream")
            self._buf.feed(chunk)

    def close_now(self) -> None:
        """Stop watching at once (no await needed)."""
        s, self._sock = self._sock, None
        self._done = True
        if s is not None:
            s.close()

    async def aclose(self) -> None:
        """Stop watching. Calling it again does nothing."""
        self.close_now()

    async def __aenter__(self) -> "AsyncWatch":
        if not self._started:
            await self._start()
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close_now()

    def __repr__(self) -> str:
        return f"<passguard.AsyncWatch {'closed' if self._done else 'open'}>"
