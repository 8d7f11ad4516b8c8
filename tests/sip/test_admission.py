"""Admission of inbound INVITEs through the sans-I/O UA (manual clock): trusted trunks and the per-source rate,
503 always with Retry-After."""

from __future__ import annotations

from sip_bridge.sip import events as ev
from sip_bridge.sip.message import Response
from voicebot.settings import SipSettings

from .helpers import SDP_OFFER, Harness, sip_request

TRUNK = ("192.0.2.10", 5060)
UNKNOWN = ("127.0.0.1", 5099)


def invite(n: int, *, extra: str = "") -> bytes:
    return sip_request("INVITE", call_id=f"call-{n}", branch=f"z9hG4bK-{n}", body=SDP_OFFER, extra=extra)


def first_status(harness: Harness, data: bytes, source: tuple[str, int] = UNKNOWN) -> Response:
    sent = harness.feed(data, source=source)
    assert sent and isinstance(sent[0], Response)
    return sent[0]


def test_a_burst_from_a_trusted_trunk_is_not_rate_limited_but_one_from_elsewhere_is() -> None:
    settings = SipSettings(
        invites_per_source_per_minute=3,
        max_calls=50,
        allowed_networks=["127.0.0.0/8", "192.0.2.0/24"],
        trusted_networks=["192.0.2.0/28"],
    )
    harness = Harness(settings)
    trunk = [first_status(harness, invite(n), TRUNK).status for n in range(10)]
    assert trunk == [100] * 10
    unknown = [first_status(harness, invite(100 + n), UNKNOWN) for n in range(5)]
    assert [m.status for m in unknown] == [100, 100, 100, 503, 503]
    assert unknown[-1].headers.get("Retry-After") == str(settings.retry_after_s)


def test_a_trusted_trunk_is_still_bounded_by_max_calls() -> None:
    settings = SipSettings(
        max_calls=2, retry_after_s=9, allowed_networks=[], trusted_networks=["192.0.2.0/24"]
    )
    harness = Harness(settings)
    statuses = [first_status(harness, invite(n), TRUNK) for n in range(3)]
    assert [(m.status, m.headers.get("Retry-After")) for m in statuses] == [
        (100, None),
        (100, None),
        (503, "9"),
    ]


def test_a_503_from_the_application_carries_retry_after() -> None:
    harness = Harness(SipSettings(retry_after_s=12))
    harness.feed(invite(1))
    (call,) = harness.ua.next_events()
    assert isinstance(call, ev.IncomingCall)
    harness.ua.reject(call.call_id, 503, "Service Unavailable")
    (final,) = harness.drain()
    assert (final.status, final.headers.get("Retry-After")) == (503, "12")
