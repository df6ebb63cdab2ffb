# SPDX-License-Identifier: MIT
"""passguard: ask passguardd, the Xen PCI passthrough mediator, for devices.

A pure-Python client of the passguard wire protocol (version 1) with the
semantics of libpassguard(3): one exception class per error code of the
protocol, a blocking :class:`Client` and an asyncio :class:`AsyncClient`.

    >>> import passguard
    >>> with passguard.Client() as pg:                       # doctest: +SKIP
    ...     grant = pg.assign("render-1", "0000:03:00.0")
    ...     # only now add the device to the device model; release it if that fails

A refusal raises a :class:`PassguardError` subclass (:class:`Busy`,
:class:`Denied`, ...) carrying ``code``, ``check``, ``rule``, ``message`` and
``errno``; an unreachable daemon or a broken reply raises
:class:`TransportError`. See passguard-python(3).

The daemon's event stream comes from :meth:`Client.watch` (an iterator of
:class:`Event`) and :meth:`AsyncClient.watch` (an async iterator), each on a
connection of its own, so that the request/reply clients and their id
matching stay as they are.
"""

from .aio import AsyncClient, AsyncWatch
from .client import Client, Watch
from .errors import (ERROR_CODES, BadRequest, Busy, Denied, DomainDying, DomainNoIommu,
                     GroupConflict, HypervisorError, IdentityChanged, Internal, LimitReached,
                     NoInterruptRemapping,
                     NoIommu, NoSuchDevice, NoSuchDomain, NotAssignable, NotAssigned,
                     NotAuthorized, PassguardError, PolicyInvalid, ProtectedDevice, ProtocolError,
                     ReplyTimeout, ResetFailed, StateError, TransportError, UnsupportedVersion,
                     error_class, error_number)
from ._wire import DEFAULT_SOCKET_PATH, DEFAULT_TIMEOUT, MAX_MESSAGE, PROTOCOL_VERSION, socket_path
from .results import Check, Event, Explanation, Grant, Owner

__version__ = "0.1.0"

# The public names are passguard.X, wherever they are defined (tracebacks and
# reprs say passguard.Busy, not passguard.errors.Busy).
for _cls in (Client, AsyncClient, Watch, AsyncWatch, Grant, Check, Explanation, Owner, Event,
             *ERROR_CODES.values(),
             PassguardError, TransportError, ProtocolError, ReplyTimeout):
    _cls.__module__ = __name__
del _cls

__all__ = [
    "Client", "AsyncClient", "Watch", "AsyncWatch", "Grant", "Check", "Explanation", "Owner",
    "Event",
    "PassguardError", "TransportError", "ProtocolError", "ReplyTimeout",
    "ERROR_CODES", "error_class", "error_number", "socket_path",
    "DEFAULT_SOCKET_PATH", "DEFAULT_TIMEOUT", "MAX_MESSAGE", "PROTOCOL_VERSION",
    "BadRequest", "UnsupportedVersion", "NotAuthorized", "NoIommu", "NoInterruptRemapping",
    "NoSuchDomain", "DomainDying", "NoSuchDevice", "ProtectedDevice", "NotAssignable",
    "GroupConflict", "Busy", "DomainNoIommu", "Denied", "LimitReached", "ResetFailed",
    "NotAssigned", "HypervisorError", "StateError", "PolicyInvalid", "Internal",
    "IdentityChanged",
]
