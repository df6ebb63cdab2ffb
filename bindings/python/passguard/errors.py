# SPDX-License-Identifier: MIT
"""The exceptions of the passguard package.

Two families, as in libpassguard(3), where a call returns a positive
``PG_ERR_*`` code for a refusal and a negative errno for everything else:

* :class:`PassguardError` -- the daemon answered and refused the request. One
  subclass per wire error code (:class:`Busy` for ``busy``, :class:`NoIommu`
  for ``no-iommu``, ...), each carrying ``code``, ``check``, ``rule``,
  ``message`` and ``errno``. The passguard(1) CLI exits 1 for these.
* :class:`TransportError` -- no answer could be had: the daemon is not
  reachable, it closed the connection, it did not answer in time
  (:class:`ReplyTimeout`), or it broke the protocol (:class:`ProtocolError`).
  A subclass of :class:`OSError` with a numeric ``errno``. The CLI exits 3.

The two do not share a base class on purpose: a refusal is an answer, a
transport error is the lack of one. Catch both with
``except (PassguardError, TransportError)``.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "PassguardError", "TransportError", "ProtocolError", "ReplyTimeout",
    "ERROR_CODES", "error_class", "error_number",
    "BadRequest", "UnsupportedVersion", "NotAuthorized", "NoIommu", "NoInterruptRemapping",
    "NoSuchDomain", "DomainDying", "NoSuchDevice", "ProtectedDevice", "NotAssignable",
    "GroupConflict", "Busy", "DomainNoIommu", "Denied", "LimitReached", "ResetFailed",
    "NotAssigned", "HypervisorError", "StateError", "PolicyInvalid", "Internal",
    "IdentityChanged",
]


class PassguardError(Exception):
    """The daemon refused a request.

    Attributes:
        code: the stable wire name of the error (``"busy"``). An error name
            this package does not know is raised as :class:`Internal`, with
            ``code`` ``"internal"`` and the name as sent in ``wire_error``.
        number: the ``PG_ERR_*`` number of libpassguard(3) (``busy`` is 12).
        message: the daemon's explanation, in words.
        check: the ``explain`` check that failed (``"free"``), or None.
        rule: the policy rule involved (``"gpus-to-render"``, ``"default"``),
            or None.
        errno: the hypervisor's answer as a symbolic name (``"EBUSY"``) when
            the hypervisor was asked, else None. Never a number: errno
            numbers do not go on the wire.
        wire_error: the error name exactly as the daemon sent it.
        reply: the whole reply object, for fields added in later versions.
    """

    code: str = ""
    number: int = 0
    description: str = ""

    def __init__(self, message: str = "", *, check: Optional[str] = None,
                 rule: Optional[str] = None, errno: Optional[str] = None,
                 wire_error: Optional[str] = None,
                 reply: Optional[Mapping[str, Any]] = None) -> None:
        self.message = message or self.description
        self.check = check
        self.rule = rule
        self.errno = errno
        self.wire_error = wire_error if wire_error is not None else self.code
        self.reply: Mapping[str, Any] = dict(reply) if reply is not None else {}
        super().__init__(self.message)

    def __str__(self) -> str:
        """``busy: <message> (check: free, rule: r, errno: EBUSY)``, as passguard(1) prints it."""
        head = self.code
        if self.wire_error != self.code:
            head = f"{self.code} (the daemon sent the unknown error code {self.wire_error!r})"
        extra = [f"{k}: {v}" for k, v in
                 (("check", self.check), ("rule", self.rule), ("errno", self.errno)) if v]
        text = f"{head}: {self.message}"
        return f"{text} ({', '.join(extra)})" if extra else text

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
                f"check={self.check!r}, rule={self.rule!r}, errno={self.errno!r})")


class TransportError(OSError):
    """The request could not be made or answered.

    ``errno`` is a number from the errno module, as libpassguard's negative
    returns: ENOENT or ECONNREFUSED (no daemon at the socket), ENAMETOOLONG,
    ECONNRESET or EPIPE (the daemon closed the connection), ENOTCONN (the
    connection was dropped after an earlier error), and those of the
    subclasses. After a transport error the connection is closed; make a new
    client.
    """

    def __init__(self, errnum: int, message: str) -> None:
        super().__init__(errnum, message)
        self.message = message

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        return f"{self.message} [{name}]"


class ProtocolError(TransportError):
    """The daemon's reply broke the wire protocol.

    A reply that is not one JSON object on one line, longer than 64 KiB
    (``errno`` EMSGSIZE), with an ``id`` other than the request's, without a
    boolean ``ok``, or with fields of the wrong type (EPROTO).
    """


class ReplyTimeout(TransportError, TimeoutError):
    """No complete reply within the client's timeout (``errno`` ETIMEDOUT)."""


# One class per wire code, in the order of the wire protocol's table. The
# number is libpassguard's PG_ERR_*; the table is append-only.
class BadRequest(PassguardError):
    """``bad-request``: the request is malformed."""
    code, number, description = "bad-request", 1, "the request is malformed"


class UnsupportedVersion(PassguardError):
    """``unsupported-version``: the protocol version is not supported."""
    code, number, description = ("unsupported-version", 2,
                                 "the protocol version is not supported")


class NotAuthorized(PassguardError):
    """``not-authorized``: the client is unknown to the policy, or not allowed this operation."""
    code, number, description = ("not-authorized", 3,
                                 "the client is not authorised for this operation")


class NoIommu(PassguardError):
    """``no-iommu``: the host has no working IOMMU; nothing can be assigned."""
    code, number, description = "no-iommu", 4, "the host has no working IOMMU"


class NoInterruptRemapping(PassguardError):
    """``no-interrupt-remapping``: the policy requires it and the host does not confirm it."""
    code, number, description = ("no-interrupt-remapping", 5,
                                 "the host does not confirm interrupt remapping")


class NoSuchDomain(PassguardError):
    """``no-such-domain``: no such domain, or it is dom0 or DOMID_IO."""
    code, number, description = "no-such-domain", 6, "no such domain"


class DomainDying(PassguardError):
    """``domain-dying``: the domain is being destroyed."""
    code, number, description = "domain-dying", 7, "the domain is dying"


class NoSuchDevice(PassguardError):
    """``no-such-device``: no such PCI device."""
    code, number, description = "no-such-device", 8, "no such PCI device"


class ProtectedDevice(PassguardError):
    """``protected-device``: the device is protected by policy."""
    code, number, description = "protected-device", 9, "the device is protected by policy"


class NotAssignable(PassguardError):
    """``not-assignable``: the device is not bound to pciback and quarantined (see prepare)."""
    code, number, description = ("not-assignable", 10,
                                 "the device is not bound to pciback and quarantined")


class GroupConflict(PassguardError):
    """``group-conflict``: another device of its IOMMU group belongs to another domain."""
    code, number, description = ("group-conflict", 11,
                                 "another device of its group belongs to another domain")


class Busy(PassguardError):
    """``busy``: the device is already assigned."""
    code, number, description = "busy", 12, "the device is already assigned"


class DomainNoIommu(PassguardError):
    """``domain-no-iommu``: the domain was created without an IOMMU context."""
    code, number, description = ("domain-no-iommu", 13,
                                 "the domain was created without an IOMMU context")


class Denied(PassguardError):
    """``denied``: the policy denies it."""
    code, number, description = "denied", 14, "the policy denies it"


class LimitReached(PassguardError):
    """``limit-reached``: a device limit of the rule, or a connection limit of the daemon."""
    code, number, description = ("limit-reached", 15,
                                 "the domain has reached its device limit")


class ResetFailed(PassguardError):
    """``reset-failed``: the device could not be reset as its rule requires."""
    code, number, description = "reset-failed", 16, "the device could not be reset"


class NotAssigned(PassguardError):
    """``not-assigned``: release of something that is not granted."""
    code, number, description = "not-assigned", 17, "no such grant"


class HypervisorError(PassguardError):
    """``hypervisor-error``: the hypervisor's call failed; ``errno`` says how."""
    code, number, description = "hypervisor-error", 18, "the hypervisor call failed"


class StateError(PassguardError):
    """``state-error``: the grant store could not be written; nothing changed."""
    code, number, description = ("state-error", 19,
                                 "the grant store could not be written")


class PolicyInvalid(PassguardError):
    """``policy-invalid``: the policy file is invalid (reload); the message has file:line."""
    code, number, description = "policy-invalid", 20, "the policy file is invalid"


class Internal(PassguardError):
    """``internal``: a bug in the daemon, or an error name this package does not know."""
    code, number, description = "internal", 21, "internal error"


class IdentityChanged(PassguardError):
    """``identity-changed``: the device at that address is not the one recorded there.

    Its ids, class, serial number or PCI path differ from what passguard
    recorded when it prepared the device (the message says what changed).
    """
    code, number, description = ("identity-changed", 22,
                                 "the device at that address is not the one recorded there")


#: Wire name -> exception class, in PG_ERR_* order.
ERROR_CODES: Dict[str, Type[PassguardError]] = {
    cls.code: cls for cls in (
        BadRequest, UnsupportedVersion, NotAuthorized, NoIommu, NoInterruptRemapping,
        NoSuchDomain, DomainDying, NoSuchDevice, ProtectedDevice, NotAssignable,
        GroupConflict, Busy, DomainNoIommu, Denied, LimitReached, ResetFailed,
        NotAssigned, HypervisorError, StateError, PolicyInvalid, Internal, IdentityChanged)
}


def error_class(code: str) -> Type[PassguardError]:
    """The exception class of a wire error name; :class:`Internal` for an unknown one."""
    return ERROR_CODES.get(code, Internal)


def error_number(code: str) -> int:
    """The ``PG_ERR_*`` number of a wire error name (as ``pg_error_from_name``), or -EINVAL."""
    cls = ERROR_CODES.get(code)
    return cls.number if cls else -_errno.EINVAL
