# SPDX-License-Identifier: MIT
"""The blocking client: one connection to passguardd, one request at a time."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any, Dict, Iterator, List, Optional, Sequence, Type

from . import _wire
from .errors import ProtocolError, ReplyTimeout, TransportError
from .results import Event, Explanation, Grant, Owner, Reply


class Client:
    """A connection to passguardd, as a libpassguard handle is.

    ``Client()`` connects to ``path`` (default: ``$PASSGUARD_SOCKET``, else
    ``/run/passguard/passguard.sock``) and says hello with protocol version 1.
    Each call sends one request and waits up to ``timeout`` seconds (None: for
    ever) for its reply.

    A refusal raises a :class:`~passguard.PassguardError` subclass and leaves
    the connection usable. Anything else that goes wrong raises
    :class:`~passguard.TransportError` and closes the connection: later calls
    raise TransportError (ENOTCONN); connect again.

    Calls on one client are serialised by a lock, so threads may share one,
    though one client per thread gives more throughput. Use it as a context
    manager to close it::

        with passguard.Client() as pg:
            grant = pg.assign("render-1", "0000:03:00.0")
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
        self._lock = threading.Lock()
        self._connect()

    # ---- connection ----

    def _connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.settimeout(self.timeout)
            s.connect(self.path)
        except socket.timeout:
            s.close()
            raise ReplyTimeout(errno.ETIMEDOUT, f"cannot connect to {self.path}: timed out") \
                from None
        except OSError as e:
            s.close()
            raise TransportError(e.errno or errno.EIO,
                                 f"cannot connect to {self.path}: {e.strerror or e}") from None
        self._sock = s
        try:
            hello = self.hello()
        except BaseException:
            self.close()
            raise
        v = hello.get("daemon")
        self.daemon_version = v if isinstance(v, str) else None

    def close(self) -> None:
        """Close the connection. Calling it again does nothing."""
        s, self._sock = self._sock, None
        if s is not None:
            s.close()

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by close(), or after a transport error)."""
        return self._sock is None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<passguard.Client {self.path} {state}>"

    # ---- the exchange ----

    def _drop(self, err: TransportError) -> TransportError:
        self.close()
        return err

    def _send(self, sock: socket.socket, data: bytes, deadline: Optional[float]) -> None:
        view = memoryview(data)
        while view:
            sock.settimeout(_remaining(deadline))
            n = sock.send(view, socket.MSG_NOSIGNAL)
            view = view[n:]

    def _recv_line(self, sock: socket.socket, deadline: Optional[float]) -> bytes:
        while True:
            line = self._buf.pop_line()
            if line is not None:
                return line
            sock.settimeout(_remaining(deadline))
            chunk = sock.recv(self._buf.room())
            if not chunk:
                what = "in the middle of a reply" if len(self._buf) else "before replying"
                raise TransportError(errno.ECONNRESET, f"the daemon closed the connection {what}")
            self._buf.feed(chunk)

    def _exchange(self, op: str, args: Dict[str, Any]) -> Reply:
        with self._lock:
            sock = self._sock
            if sock is None:
                raise TransportError(errno.ENOTCONN,
                                     "the connection is closed (after close() or an earlier error)")
            request_id = self._next_id
            data = _wire.encode_request(op, request_id, args)
            self._next_id += 1
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            try:
                try:
                    self._send(sock, data, deadline)
                except (BrokenPipeError, ConnectionResetError) as e:
                    # The daemon may have refused the connection and closed it:
                    # its refusal is then waiting to be read, and is the answer.
                    line = _wire.pending_line(sock, self._buf)
                    if line is None:
                        raise TransportError(e.errno or errno.EPIPE,
                                             f"cannot send the request: {e.strerror}") from None
                else:
                    line = self._recv_line(sock, deadline)
                reply, closing = _wire.decode_reply(line, request_id)
            except socket.timeout:
                raise self._drop(ReplyTimeout(
                    errno.ETIMEDOUT, f"no reply to {op} within {self.timeout} s")) from None
            except TransportError as e:
                raise self._drop(e) from None
            except OSError as e:
                raise self._drop(TransportError(e.errno or errno.EIO,
                                                f"cannot talk to the daemon: {e.strerror or e}")) \
                    from None
            except BaseException:
                # KeyboardInterrupt and the like with the request on the wire:
                # its reply could no longer be told from the next one's.
                self.close()
                raise
            if closing:
                self.close()
        if not reply["ok"]:
            raise _wire.refusal(reply)
        return _wire.result(reply)

    # ---- the operations of the wire protocol ----

    def call(self, op: str, **args: Any) -> Reply:
        """Send any request (``op`` and its arguments; None arguments are left out).

        Returns the reply without ``id`` and ``ok``; a refusal raises. The
        equivalent of pg_call_json(), for ops this class has no method for.
        """
        return self._exchange(op, args)

    def hello(self, version: int = _wire.PROTOCOL_VERSION) -> Reply:
        """Say hello: ``{"version": 1, "daemon": "passguardd 0.1.0"}``.

        The constructor already did. Another version raises UnsupportedVersion.
        """
        reply = self._exchange("hello", {"version": version})
        if version == _wire.PROTOCOL_VERSION:
            try:
                _wire.check_hello(reply)
            except TransportError as e:
                raise self._drop(e) from None
        return reply

    def status(self) -> Reply:
        """The daemon's state: ``backend``, ``iommu``, ``interrupt_remapping``,
        ``grants`` (a count), ``policy``, ``rules``, ``policy_loaded``,
        ``version``, ``enforce``, ``state_ok``."""
        return self._exchange("status", {})

    def list(self) -> Reply:
        """Grants and assignable devices: ``grants`` (objects as :meth:`Grant.from_json`
        reads), ``assignable`` (``device``, ``vendor``, ``device_id``, ``class``,
        ``driver``), ``grant_count``, ``assignable_count`` and ``truncated``
        (the reply fits 64 KiB: assignable devices are left out first)."""
        return self._exchange("list", {})

    def assign(self, domain: "str | int", device: str, *, rdm_relaxed: bool = False) -> Grant:
        """Assign ``device`` (a BDF, ``SSSS:BB:DD.F`` or ``BB:DD.F``) to ``domain``
        (a name, or a domid as an int).

        On return the hypervisor has assigned the device and the grant is on
        disk: only now may the toolstack add the device to the device model or
        pcifront, and if that fails it must call :meth:`release`.
        ``rdm_relaxed`` asks for the relaxed reserved-device-memory policy; the
        rule may keep it strict (see ``Grant.rdm_policy``).
        """
        args = _wire.target_args(domain, device, rdm_relaxed)
        reply = self._exchange("assign", args)
        g = reply.get("grant")
        if not isinstance(g, dict):
            raise ProtocolError(errno.EPROTO, 'assign reply has no "grant" object')
        return Grant.from_json(g, args.get("domid"))

    def release(self, domain: "str | int", device: str) -> Reply:
        """Release a grant: the daemon deassigns the device, back into quarantine.

        Allowed to the uid that got the grant and to admins. Returns
        ``{"device", "domid"}``.
        """
        return self._exchange("release", _wire.target_args(domain, device))

    def explain(self, domain: "str | int", device: str, *,
                rdm_relaxed: bool = False) -> Explanation:
        """What :meth:`assign` would decide, check by check, changing nothing.

        A deny is a result (``allow`` is False), not an exception; its
        ``refusal()`` is the exception assign would raise.
        """
        reply = self._exchange("explain", _wire.target_args(domain, device, rdm_relaxed))
        return Explanation.from_json(reply)

    def owner(self, device: str) -> Owner:
        """Whether ``device`` is assigned, to which domain, and whether passguard granted it."""
        return Owner.from_json(self._exchange("owner", {"device": device}), device)

    def prepare(self, device: str) -> Reply:
        """Unbind the dom0 driver, bind pciback and quarantine the device.

        Admins, and clients of a rule with ``managed = true``. Returns
        ``device``, ``driver``, ``quarantined``, ``already_prepared`` and
        ``previous_driver``.
        """
        return self._exchange("prepare", {"device": device})

    def unprepare(self, device: str) -> Reply:
        """Take a quarantined device back and rebind its original dom0 driver (admins)."""
        return self._exchange("unprepare", {"device": device})

    def reload(self) -> Reply:
        """Make the daemon re-read its policy (admins): ``{"policy": PATH, "rules": N}``.

        An invalid policy raises PolicyInvalid with ``file:line`` in the
        message, and the old policy stays in force.
        """
        return self._exchange("reload", {})

    def assign_many(self, domain: "str | int", devices: Sequence[str], *,
                    rdm_relaxed: bool = False) -> List[Grant]:
        """Assign several devices to ``domain``, all or none (pg_assign_many()).

        Every check runs for every device, then each is assigned; when one is
        refused, those assigned before it go back into quarantine and the
        exception's ``reply["device"]`` names it. Each device's whole IOMMU
        group must be among ``devices`` (GroupConflict names what is missing).
        Returns the grants in the order of ``devices``.
        """
        args = _wire.devices_args(domain, devices, rdm_relaxed)
        reply = self._exchange("assign", args)
        grants = reply.get("grants")
        if not isinstance(grants, list) or len(grants) != len(devices) or \
                not all(isinstance(g, dict) for g in grants):
            raise ProtocolError(errno.EPROTO, 'assign reply has no "grants" array')
        return [Grant.from_json(g, args.get("domid")) for g in grants]

    def explain_many(self, domain: "str | int", devices: Sequence[str], *,
                     rdm_relaxed: bool = False) -> Explanation:
        """What :meth:`assign_many` would decide: ``devices`` holds each device's
        explanation as far as the checks went, ``device`` the one that failed."""
        reply = self._exchange("explain", _wire.devices_args(domain, devices, rdm_relaxed))
        return Explanation.from_json(reply)

    def untaint(self, device: str) -> Reply:
        """Let a device whose reset failed go to any domain again (admins).

        Returns ``{"device", "was_tainted"}`` (and the taint's ``reason``).
        """
        return self._exchange("untaint", {"device": device})

    def watch(self) -> "Watch":
        """The daemon's event stream, on a connection of its own: an iterator of
        :class:`~passguard.Event`, one per decision, as they happen.

        Admins and the policy's ``watchers`` may watch (else NotAuthorized,
        raised here). Iterating blocks until the next event. A watcher that
        reads too slowly is dropped by the daemon: its last event is
        ``"dropped"``, after which the iteration ends. When the daemon goes
        away the iteration raises TransportError (ECONNRESET). Close it, or
        use it as a context manager, to stop watching; this client stays
        usable meanwhile.
        """
        return Watch(self.path, self.timeout)


class Watch:
    """An event stream of passguardd (:meth:`Client.watch`): an iterator of events."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        c = Client(path, timeout=timeout)
        try:
            c.call("watch")
        except BaseException:
            c.close()
            raise
        # The connection is the stream's from now on; events may have come with the reply.
        self._sock: Optional[socket.socket] = c._sock
        self._buf = c._buf
        c._sock = None
        self._done = False
        if self._sock is not None:
            self._sock.settimeout(None)

    def fileno(self) -> int:
        """The socket, to wait for with select() or poll(); -1 once closed."""
        return self._sock.fileno() if self._sock is not None else -1

    def pending(self) -> bool:
        """Whether an event was read already and waits here: next() returns it
        without blocking. select() on fileno() does not see it, so wait on the
        socket only when this is False."""
        return self._buf.has_line()

    def close(self) -> None:
        """Stop watching. Calling it again does nothing."""
        s, self._sock = self._sock, None
        self._done = True
        if s is not None:
            s.close()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        while True:
            if self._done or self._sock is None:
                raise StopIteration
            try:
                event = Event.from_buffer(self._buf)
            except TransportError:
                self.close()
                raise
            if event is not None:
                if event.event == "dropped":
                    self.close()  # the daemon closes it after this line
                return event
            try:
                chunk = self._sock.recv(self._buf.room())
            except OSError as e:
                self.close()
                raise TransportError(e.errno or errno.EIO,
                                     f"cannot read an event: {e.strerror or e}") from None
            if not chunk:
                self.close()
                raise TransportError(errno.ECONNRESET, "the daemon ended the event stream")
            self._buf.feed(chunk)

    def __repr__(self) -> str:
        return f"<passguard.Watch {'closed' if self._sock is None else 'open'}>"


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    return left
