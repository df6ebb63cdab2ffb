# SPDX-License-Identifier: MIT
"""Typed results of assign, explain and owner, and the events of watch.

Each keeps the whole reply in ``reply`` (without ``id`` and ``ok``), so that
fields a later daemon adds are not lost. Missing fields read as None, as
libpassguard's accessors read them as NULL.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from . import _wire
from .errors import PassguardError, ProtocolError, error_class


def _str(obj: Mapping[str, Any], key: str) -> Optional[str]:
    v = obj.get(key)
    return v if isinstance(v, str) else None


def _int(obj: Mapping[str, Any], key: str) -> Optional[int]:
    v = obj.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _bool(obj: Mapping[str, Any], key: str) -> Optional[bool]:
    v = obj.get(key)
    return v if isinstance(v, bool) else None


@dataclass(frozen=True)
class Grant:
    """A device granted to a domain: the hypervisor assigned it and the grant is on disk."""

    device: str
    """The device, normalised to ``SSSS:BB:DD.F``."""
    domid: int
    domain: Optional[str]
    """The domain's name when it was granted."""
    domain_uuid: Optional[str]
    """The grant is bound to this UUID: a reused domid never inherits it."""
    rule: Optional[str]
    """The policy rule that allowed it."""
    rdm_policy: Optional[str]
    """``"strict"`` or ``"relaxed"``: the reserved-device-memory policy in force."""
    client_uid: Optional[int] = None
    time: Optional[int] = None
    """When it was granted, in seconds since the epoch."""
    reply: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], domid: Optional[int] = None) -> "Grant":
        """A grant object of the wire protocol (assign's ``grant``, list's ``grants[]``)."""
        device = _str(obj, "device")
        d = _int(obj, "domid")
        if device is None or (d is None and domid is None):
            raise ProtocolError(_errno.EPROTO, "grant has no \"device\" or \"domid\"")
        return cls(device=device, domid=d if d is not None else int(domid or 0),
                   domain=_str(obj, "domain"), domain_uuid=_str(obj, "domain_uuid"),
                   rule=_str(obj, "rule"), rdm_policy=_str(obj, "rdm_policy"),
                   client_uid=_int(obj, "client_uid"), time=_int(obj, "time"),
                   reply=dict(obj))


@dataclass(frozen=True)
class Check:
    """One check of ``explain``, in the order the checks ran."""

    check: str
    """``request``, ``client``, ``iommu``, ... ``policy``, ``limit``, ``reset``."""
    result: str
    """``"pass"``, ``"fail"`` or ``"skip"``."""
    detail: str


@dataclass(frozen=True)
class Explanation:
    """What ``assign`` would decide, and why; nothing was changed."""

    allow: bool
    rule: Optional[str]
    """The rule that decided (``"default"`` for the implicit deny), or None when
    the policy was not reached."""
    checks: Tuple[Check, ...]
    message: Optional[str]
    error: Optional[str]
    """For a deny: the error code assign would be refused with."""
    check: Optional[str]
    """For a deny: the check that failed (the last one in ``checks``)."""
    errno: Optional[str]
    rdm_policy: Optional[str]
    """For an allow: the rdm policy the grant would get."""
    reply: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    device: Optional[str] = None
    """Several devices asked: for a deny, the device that failed."""
    devices: Tuple["Explanation", ...] = ()
    """Several devices asked: each device's explanation, as far as the checks went."""

    @property
    def decision(self) -> str:
        """``"allow"`` or ``"deny"``."""
        return "allow" if self.allow else "deny"

    def refusal(self) -> Optional[PassguardError]:
        """For a deny, the exception ``assign`` would raise; None for an allow."""
        if self.allow:
            return None
        code = self.error or "internal"
        return error_class(code)(self.message or "", check=self.check, rule=self.rule,
                                 errno=self.errno, wire_error=code, reply=self.reply)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Explanation":
        decision = obj.get("decision")
        if decision not in ("allow", "deny"):
            raise ProtocolError(_errno.EPROTO, 'explain reply has no valid "decision"')
        raw = obj.get("checks")
        checks = []
        for c in raw if isinstance(raw, list) else ():
            if isinstance(c, dict):
                checks.append(Check(_str(c, "check") or "", _str(c, "result") or "",
                                    _str(c, "detail") or ""))
        raw_devices = obj.get("devices")
        devices = tuple(cls.from_json(d) for d in
                        (raw_devices if isinstance(raw_devices, list) else ())
                        if isinstance(d, dict))
        return cls(allow=decision == "allow", rule=_str(obj, "rule"), checks=tuple(checks),
                   message=_str(obj, "message"), error=_str(obj, "error"),
                   check=_str(obj, "check") or None, errno=_str(obj, "errno"),
                   rdm_policy=_str(obj, "rdm_policy"), reply=dict(obj),
                   device=_str(obj, "device"), devices=devices)


@dataclass(frozen=True)
class Owner:
    """Who holds a device, by the hypervisor, and whether passguard granted it."""

    device: str
    assigned: bool
    """Assigned to a guest (not to dom0, not quarantined)."""
    domid: Optional[int]
    """The guest's domid when assigned, else None."""
    domain: Optional[str]
    granted: bool
    """passguard holds a grant for it."""
    quarantined: Optional[bool]
    driver: Optional[str]
    """The dom0 driver it is bound to (``"pciback"``), or None."""
    grant: Optional[Grant]
    tainted: bool = False
    """Its reset failed: it goes to no other domain until an admin untaints it
    (``reply["taint"]`` says why)."""
    reply: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], device: str) -> "Owner":
        assigned = _bool(obj, "assigned")
        if assigned is None:
            raise ProtocolError(_errno.EPROTO, 'owner reply has no boolean "assigned"')
        g = obj.get("grant")
        return cls(device=_str(obj, "device") or device, assigned=assigned,
                   domid=_int(obj, "domid"), domain=_str(obj, "domain"),
                   granted=_bool(obj, "granted") is True, quarantined=_bool(obj, "quarantined"),
                   driver=_str(obj, "driver"),
                   grant=Grant.from_json(g) if isinstance(g, dict) else None,
                   tainted=_bool(obj, "tainted") is True, reply=dict(obj))


@dataclass(frozen=True)
class Event:
    """One event of the daemon's stream (:meth:`passguard.Client.watch`).

    Built by the daemon from the audit record of a decision, so the stream
    and the journal never disagree. ``event`` is the record's kind:
    ``grant``, ``refuse``, ``release``, ``domain-gone`` (a grant released
    because its domain died), ``unmanaged`` (an assignment passguard did not
    make), ``reconcile``, ``prepare``, ``reload``, ``identity`` (a device that
    is not the one recorded at its address), ``taint``; and ``dropped``, the
    last event of a watcher that read too slowly. Fields the record does not
    have are None.
    """

    event: str
    time: int
    """When, in seconds since the epoch."""
    op: Optional[str] = None
    device: Optional[str] = None
    domid: Optional[int] = None
    domain: Optional[str] = None
    uuid: Optional[str] = None
    client_uid: Optional[int] = None
    client_pid: Optional[int] = None
    client_unit: Optional[str] = None
    rule: Optional[str] = None
    decision: Optional[str] = None
    """``"granted"``, ``"refused"``, ``"released"``, ``"unmanaged"``, ``"tainted"``, ..."""
    error: Optional[str] = None
    """The wire error code of a refusal (``"busy"``)."""
    message: Optional[str] = None
    reply: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_buffer(cls, buf: "_wire.LineBuffer") -> Optional["Event"]:
        """The next whole event line held in buf, or None when there is none yet.
        TransportError for a line that is not an event."""
        line = buf.pop_line()
        return cls.from_json(_wire.parse_event(line)) if line is not None else None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Event":
        """An event line's object; ProtocolError when it has no string ``event``."""
        kind = _str(obj, "event")
        if kind is None:
            raise ProtocolError(_errno.EPROTO, 'event has no string "event"')
        return cls(event=kind, time=_int(obj, "time") or 0, op=_str(obj, "op"),
                   device=_str(obj, "device"), domid=_int(obj, "domid"),
                   domain=_str(obj, "domain"), uuid=_str(obj, "uuid"),
                   client_uid=_int(obj, "client_uid"), client_pid=_int(obj, "client_pid"),
                   client_unit=_str(obj, "client_unit"), rule=_str(obj, "rule"),
                   decision=_str(obj, "decision"), error=_str(obj, "error"),
                   message=_str(obj, "message"), reply=dict(obj))


#: A reply object without ``id`` and ``ok`` (status, list, prepare, ...).
Reply = Dict[str, Any]
