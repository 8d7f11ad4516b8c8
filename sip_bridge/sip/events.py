"""Events the sans-I/O :class:`~sip_bridge.sip.useragent.UserAgent` reports to the call glue.

Every event names the call by its SIP Call-ID (``call_id``), the handle the glue passes back to the UA's
call-control methods. Events are plain frozen dataclasses so the glue can ``match`` on them.
"""

from __future__ import annotations

from dataclasses import dataclass

Address = tuple[str, int]


@dataclass(frozen=True)
class Event:
    """Base class of all UA events."""


@dataclass(frozen=True)
class IncomingCall(Event):
    """A new INVITE passed policy and auth; 100 Trying is already sent. Answer with ``answer()`` or ``reject()``."""

    call_id: str
    from_uri: str
    from_display: str | None
    to_uri: str
    remote_addr: Address
    transport: str
    sdp: bytes  # the offer (empty when the INVITE had no body: then our 200 carries the offer)


@dataclass(frozen=True)
class CallConfirmed(Event):
    """The ACK for our 2xx arrived: media may flow both ways."""

    call_id: str
    sdp: bytes = b""  # the answer, when the INVITE carried no offer


@dataclass(frozen=True)
class CallEnded(Event):
    """The call is gone. ``reason``: bye_remote, bye_local, cancel, rejected, ack_timeout, timeout, failed."""

    call_id: str
    reason: str
    code: int | None = None


@dataclass(frozen=True)
class ReInvite(Event):
    """An in-dialog INVITE (hold/unhold, session refresh). Reply with ``answer_reinvite()`` or ``reject()``."""

    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class ReInviteAnswered(Event):
    """Our ``reinvite()`` got a 2xx (ACK already sent)."""

    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class ReInviteFailed(Event):
    call_id: str
    code: int


@dataclass(frozen=True)
class ReferAccepted(Event):
    """202 Accepted for our REFER; the outcome follows as TransferSucceeded/TransferFailed."""

    call_id: str


@dataclass(frozen=True)
class TransferSucceeded(Event):
    """A NOTIFY sipfrag reported a 2xx from the transfer target."""

    call_id: str


@dataclass(frozen=True)
class TransferFailed(Event):
    """REFER refused (405/501/603/...), timed out (408), or the NOTIFY sipfrag reported a failure."""

    call_id: str
    code: int
    reason: str = ""


@dataclass(frozen=True)
class OutboundCallProgress(Event):
    """A provisional response (180/183) to our ``invite()``."""

    call_id: str
    code: int
    sdp: bytes = b""


@dataclass(frozen=True)
class OutboundCallAnswered(Event):
    """2xx to our ``invite()``; ACK already sent."""

    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class OutboundCallFailed(Event):
    """Final non-2xx (ACK already sent) or timeout (code 408) for our ``invite()``."""

    call_id: str
    code: int
    reason: str = ""


@dataclass(frozen=True)
class Registered(Event):
    """The registrar accepted us; a refresh is scheduled before ``expires_s`` runs out."""

    expires_s: int


@dataclass(frozen=True)
class RegistrationFailed(Event):
    code: int
    reason: str = ""


@dataclass(frozen=True)
class DtmfInfo(Event):
    """A SIP INFO with ``application/dtmf-relay`` (``Signal=5``/``Duration=160``)."""

    call_id: str
    digit: str
    duration_ms: int
