"""A draining user agent (graceful shutdown) and a full one: what a caller and a load balancer's OPTIONS probe see,
while the calls already in progress go on."""

from __future__ import annotations

from sip_bridge.sip import events as ev
from sip_bridge.sip.config import UserAgentConfig

from .helpers import SDP_OFFER, Harness, sip_request


def _invite(n: int) -> bytes:
    return sip_request("INVITE", call_id=f"call-{n}@127.0.0.1", branch=f"z9hG4bK-inv-{n}", body=SDP_OFFER)


def _options(n: int) -> bytes:
    return sip_request("OPTIONS", call_id=f"probe-{n}@127.0.0.1", branch=f"z9hG4bK-opt-{n}")


def test_draining_refuses_new_calls_and_probes_with_503_and_keeps_the_running_call() -> None:
    harness = Harness(UserAgentConfig(retry_after_s=7))
    (ok,) = harness.feed(_options(1))
    assert (ok.status, ok.headers.get("Retry-After")) == (200, None)
    harness.feed(_invite(1))
    (incoming,) = harness.ua.next_events()
    assert isinstance(incoming, ev.IncomingCall)
    harness.ua.answer(incoming.call_id, b"v=0\r\n")
    harness.drain()

    harness.ua.draining = True
    (refused,) = harness.feed(_invite(2))
    (probe,) = harness.feed(_options(2))
    assert (refused.status, refused.headers.get("Retry-After")) == (503, "7")
    assert (probe.status, probe.headers.get("Retry-After")) == (503, "7")
    assert "INVITE" in (probe.headers.get("Allow") or "")  # still a full OPTIONS answer
    assert harness.ua.next_events() == []  # the application never hears of the refused call
    assert harness.ua.active_calls() == [incoming.call_id]  # the running call is untouched

    harness.ua.hangup(incoming.call_id)
    (bye,) = harness.drain()
    assert bye.method == "BYE"


def test_a_full_user_agent_answers_options_with_503_until_a_line_is_free() -> None:
    harness = Harness(UserAgentConfig(max_calls=1, retry_after_s=5))
    harness.feed(_invite(1))
    (incoming,) = harness.ua.next_events()
    (probe,) = harness.feed(_options(1))
    assert (probe.status, probe.headers.get("Retry-After")) == (503, "5")
    harness.ua.reject(incoming.call_id, 486)
    harness.drain()
    (probe,) = harness.feed(_options(2))
    assert probe.status == 200
