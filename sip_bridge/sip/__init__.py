"""SIP signalling for the phone line: a sans-I/O user agent (``UserAgent``) plus thin asyncio transports.

Configuration: ``config.UserAgentConfig`` (a frozen dataclass; the application builds it from its settings).
Layers, bottom up: ``message`` (model), ``parser`` (datagrams, TCP framing, validation), ``transaction``
(RFC 3261 17 with explicit clock), ``dialog``, ``auth`` (digest), ``policy`` (allow-list, rate limits),
``core``/``uac``/``useragent`` (the UA: shared plumbing, what we originate, and the public class with the server
side; the API the call glue uses is in ``useragent``'s docstring), ``transport`` (asyncio UDP/TCP ``SipEndpoint``).
"""

from .config import UserAgentConfig
from .events import (
    CallConfirmed,
    CallEnded,
    DtmfInfo,
    Event,
    IncomingCall,
    OutboundCallAnswered,
    OutboundCallFailed,
    OutboundCallProgress,
    ReferAccepted,
    Registered,
    RegistrationFailed,
    ReInvite,
    ReInviteAnswered,
    ReInviteFailed,
    TransferFailed,
    TransferSucceeded,
)
from .useragent import Outgoing, UserAgent

__all__ = [
    "CallConfirmed",
    "CallEnded",
    "DtmfInfo",
    "Event",
    "IncomingCall",
    "OutboundCallAnswered",
    "OutboundCallFailed",
    "OutboundCallProgress",
    "Outgoing",
    "ReInvite",
    "ReInviteAnswered",
    "ReInviteFailed",
    "ReferAccepted",
    "Registered",
    "RegistrationFailed",
    "TransferFailed",
    "TransferSucceeded",
    "UserAgent",
    "UserAgentConfig",
]
