# SPDX-License-Identifier: MIT
"""Wire protocol version 1, without I/O: shared by the blocking and the asyncio client.

Each message is one JSON object on one line ending in ``\\n``, at most 64 KiB
with the newline. A request is ``{"op": NAME, "id": N, ...}``; its reply
echoes ``id`` and holds ``"ok": true`` and the result, or ``"ok": false`` with
``error``, ``message`` and, where they apply, ``check``, ``rule`` and
``errno``. A refusal of no request in particular (a connection limit, a line
the daemon could not read) comes with ``"id": null`` and the daemon closes the
connection after it.

Replies are parsed as strictly as libpassguard parses them (client/wire.c,
client/reply.c): one JSON object, no NUL byte, no duplicate key, no NaN, an
integer ``id``, a boolean ``ok``, a string ``error`` in a refusal, and
string-or-null ``message``, ``check``, ``rule`` and ``errno``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import PassguardError, ProtocolError, TransportError, error_class

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_PATH = "/run/passguard/passguard.sock"
#: The largest message, its newline included (PG_WIRE_MAX_MESSAGE).
MAX_MESSAGE = 64 * 1024
#: Seconds a call waits for its reply by default; None waits for ever.
DEFAULT_TIMEOUT = 30.0
# sockaddr_un.sun_path, the terminating NUL included.
_SUN_PATH_MAX = 108


def socket_path(path: "Optional[os.PathLike[str] | str]" = None) -> str:
    """The socket to connect to, as pg_connect() picks it.

    ``path`` when given; else ``$PASSGUARD_SOCKET`` when it is set, not empty,
    and the process runs with its real ids (as secure_getenv(3)); else
    ``/run/passguard/passguard.sock``. A path too long for an AF_UNIX address
    raises :class:`TransportError` (ENAMETOOLONG).
    """
    if path is not None:
        p = os.fspath(path)
    else:
        env = os.environ.get("PASSGUARD_SOCKET")
        trusted = os.getuid() == os.geteuid() and os.getgid() == os.getegid()
        p = env if env and trusted else DEFAULT_SOCKET_PATH
    if len(os.fsencode(p)) >= _SUN_PATH_MAX:
        raise TransportError(errno.ENAMETOOLONG, f"socket path too long: {p}")
    return p


def _reject_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    obj: Dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def encode_request(op: str, request_id: int, args: Dict[str, Any]) -> bytes:
    """One request line. Arguments that are None are left out.

    Raises ValueError when the message would exceed 64 KiB (nothing is sent
    then, and the connection stays usable), or when ``args`` holds ``op`` or
    ``id``.
    """
    if "op" in args or "id" in args:
        raise ValueError('"op" and "id" are chosen by the client')
    msg: Dict[str, Any] = {"op": op, "id": request_id}
    msg.update((k, v) for k, v in args.items() if v is not None)
    line = json.dumps(msg, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    data = line.encode("ascii") + b"\n"
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"request longer than {MAX_MESSAGE} bytes")
    return data


class LineBuffer:
    """Bytes from the socket in, complete lines out, never more than 64 KiB held."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def pop_line(self) -> Optional[bytes]:
        """The next complete line without its newline, or None when there is none yet.

        Raises :class:`ProtocolError` (EMSGSIZE) when 64 KiB have arrived without
        a newline: a reply can never be that long.
        """
        nl = self._buf.find(b"\n", 0, MAX_MESSAGE)
        if nl >= 0:
            line = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            return line
        if len(self._buf) >= MAX_MESSAGE:
            raise ProtocolError(errno.EMSGSIZE,
                                f"reply longer than {MAX_MESSAGE} bytes from the daemon")
        return None

    def room(self) -> int:
        """How many bytes may be read before a line must have ended."""
        return max(MAX_MESSAGE - len(self._buf), 0)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __len__(self) -> int:
        return len(self._buf)

    def has_line(self) -> bool:
        """Whether a complete line is held (pop_line() returns it)."""
        return self._buf.find(b"\n", 0, MAX_MESSAGE) >= 0


def pending_line(sock: socket.socket, buf: LineBuffer) -> Optional[bytes]:
    """After a failed send: a line the daemon left before it closed, without waiting.

    The daemon refuses a connection over its limits with one line (limit-reached,
    ``"id": null``) and closes it; a client that sends meanwhile gets EPIPE or
    ECONNRESET, and the refusal is still in the socket, to be read. None when
    there is no complete line. Leaves the socket non-blocking.
    """
    try:
        sock.setblocking(False)
        while True:
            line = buf.pop_line()
            if line is not None:
                return line
            chunk = sock.recv(buf.room())
            if not chunk:
                return None
            buf.feed(chunk)
    except (OSError, ProtocolError):
        return None


def _malformed(why: str) -> ProtocolError:
    return ProtocolError(errno.EPROTO, f"malformed reply from the daemon: {why}")


def parse_message(line: bytes) -> Dict[str, Any]:
    """Parse one line (without its newline) into a JSON object, strictly."""
    if len(line) >= MAX_MESSAGE:
        raise ProtocolError(errno.EMSGSIZE, "message too long")
    if b"\0" in line:
        raise _malformed("message contains a NUL byte")
    try:
        text = line.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_reject_duplicates,
                           parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _malformed("message is not valid UTF-8") from None
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise _malformed(f"message is not valid JSON: {e}") from None
    except RecursionError:
        raise _malformed("message is nested too deeply") from None
    if not isinstance(value, dict):
        raise _malformed("message is not a JSON object")
    return value


def _optional_string(reply: Dict[str, Any], key: str) -> Optional[str]:
    v = reply.get(key)
    if v is None or isinstance(v, str):
        return v
    raise _malformed(f'reply has a non-string "{key}"')


def refusal(reply: Dict[str, Any]) -> PassguardError:
    """The exception for a reply whose ``ok`` is false (already decoded by decode_reply)."""
    code = reply["error"]
    cls = error_class(code)
    return cls(_optional_string(reply, "message") or "",
               check=_optional_string(reply, "check") or None,
               rule=_optional_string(reply, "rule"),
               errno=_optional_string(reply, "errno"),
               wire_error=code, reply=reply)


def decode_reply(line: bytes, request_id: int) -> Tuple[Dict[str, Any], bool]:
    """Check one reply line against the request it answers.

    Returns ``(reply, closing)``: ``closing`` is true for a refusal the daemon
    sent with ``"id": null``, after which it closes the connection. Raises
    :class:`ProtocolError` for a reply of the wrong shape or another request's.
    A refusal is returned, not raised: the caller raises ``refusal(reply)``.
    """
    reply = parse_message(line)
    closing = False
    rid = reply.get("id")
    if rid is None and reply.get("ok") is False and "id" in reply:
        closing = True
    elif not isinstance(rid, int) or isinstance(rid, bool):
        raise _malformed('reply has no integer "id"')
    elif rid != request_id:
        raise ProtocolError(errno.EPROTO,
                            f"reply id {rid} does not match request id {request_id}")
    ok = reply.get("ok")
    if not isinstance(ok, bool):
        raise _malformed('reply has no boolean "ok"')
    if not ok and not isinstance(reply.get("error"), str):
        raise _malformed('refusal has no string "error"')
    for key in ("message", "check", "rule", "errno"):
        _optional_string(reply, key)
    return reply, closing


def result(reply: Dict[str, Any]) -> Dict[str, Any]:
    """A successful reply without its ``id`` and ``ok``."""
    return {k: v for k, v in reply.items() if k not in ("id", "ok")}


def target_args(domain: "str | int", device: str, rdm_relaxed: bool = False) -> Dict[str, Any]:
    """The arguments of assign, release and explain: a domain by name (str) or domid (int)."""
    if not isinstance(device, str):
        raise TypeError("device must be a BDF string such as '0000:03:00.0'")
    args: Dict[str, Any] = {"device": device}
    if isinstance(domain, bool) or not isinstance(domain, (str, int)):
        raise TypeError("domain must be a name (str) or a domid (int)")
    if isinstance(domain, str):
        args["domain"] = domain
    else:
        args["domid"] = domain
    if rdm_relaxed:
        args["rdm_policy"] = "relaxed"
    return args


def devices_args(domain: "str | int", devices: "Sequence[str]",
                 rdm_relaxed: bool = False) -> Dict[str, Any]:
    """The arguments of a multi-device assign or explain: ``devices`` instead of ``device``."""
    if isinstance(devices, str) or not all(isinstance(d, str) for d in devices):
        raise TypeError("devices must be a sequence of BDF strings")
    if not devices:
        raise ValueError("devices must name at least one device")
    args = target_args(domain, devices[0], rdm_relaxed)
    del args["device"]
    args["devices"] = list(devices)
    return args


def parse_event(line: bytes) -> Dict[str, Any]:
    """One event line: a JSON object with a string ``event``, as strictly as a reply."""
    obj = parse_message(line)
    if not isinstance(obj.get("event"), str):
        raise _malformed('event has no string "event"')
    return obj


def check_hello(reply: Dict[str, Any]) -> None:
    """A hello reply must speak our version when it says one (as pg_connect)."""
    v = reply.get("version")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v != PROTOCOL_VERSION):
        raise ProtocolError(errno.EPROTONOSUPPORT,
                            f"the daemon speaks protocol version {v!r}, not {PROTOCOL_VERSION}")
