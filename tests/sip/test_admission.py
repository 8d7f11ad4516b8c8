"""Admission of inbound INVITEs through the sans-I/O UA (manual clock): trusted trunks and the per-source rate,
503 always with Retry-After, and the digest rules as a caller sees them; our own digest answers to a PBX."""

from __future__ import annotations

from sip_bridge.sip import events as ev
from sip_bridge.sip.auth import DigestChallenger, authorization_header, parse_challenge
from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.message import REASONS, Request, Response
from voicebot.settings import SipSettings
from voicebot.telephony.config import media_peer_policy

from .helpers import SDP_OFFER, Harness, response_to, sip_request

TRUNK = ("192.0.2.10", 5060)
UNKNOWN = ("127.0.0.1", 5099)
URI = "sip:hotline@127.0.0.1:5060"


def invite(n: int, *, extra: str = "") -> bytes:
    return sip_request("INVITE", call_id=f"call-{n}", branch=f"z9hG4bK-{n}", body=SDP_OFFER, extra=extra)


def first_status(harness: Harness, data: bytes, source: tuple[str, int] = UNKNOWN) -> Response:
    sent = harness.feed(data, source=source)
    assert sent and isinstance(sent[0], Response)
    return sent[0]


def test_a_burst_from_a_trusted_trunk_is_not_rate_limited_but_one_from_elsewhere_is() -> None:
    settings = UserAgentConfig(
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
    settings = UserAgentConfig(
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
    harness = Harness(UserAgentConfig(retry_after_s=12))
    harness.feed(invite(1))
    (call,) = harness.ua.next_events()
    assert isinstance(call, ev.IncomingCall)
    harness.ua.reject(call.call_id, 503, "Service Unavailable")
    (final,) = harness.drain()
    assert (final.status, final.headers.get("Retry-After")) == (503, "12")


def auth_harness(**overrides: object) -> Harness:
    settings = UserAgentConfig(
        inbound_realm="rathaus",
        inbound_username="pbx",
        inbound_password="geheim",
        inbound_auth_max_failures=5,
        invites_per_source_per_minute=1000,
        **overrides,  # type: ignore[arg-type]
    )
    return Harness(settings)


def challenge_of(response: Response) -> dict[str, str]:
    return parse_challenge(response.headers.lines("WWW-Authenticate")[0])[1]


def test_the_401_offers_sha256_then_md5() -> None:
    harness = auth_harness()
    challenge = first_status(harness, invite(1))
    assert challenge.status == 401
    algorithms = [parse_challenge(v)[1]["algorithm"] for v in challenge.headers.lines("WWW-Authenticate")]
    assert algorithms == ["SHA-256", "MD5"]


def test_a_replayed_authorization_does_not_open_a_second_call() -> None:
    harness = auth_harness()
    params = challenge_of(first_status(harness, invite(1)))
    header = authorization_header(params, username="pbx", password="geheim", method="INVITE", uri=URI)
    assert first_status(harness, invite(2, extra=f"Authorization: {header}\r\n")).status == 100
    harness.clock.now += 5
    replay = first_status(harness, invite(3, extra=f"Authorization: {header}\r\n"))
    assert replay.status == 401 and challenge_of(replay).get("stale") == "true"
    assert [type(e) for e in harness.ua.next_events()] == [ev.IncomingCall]


def test_an_answer_for_another_uri_or_without_qop_is_refused() -> None:
    harness = auth_harness()
    params = challenge_of(first_status(harness, invite(1)))
    other = authorization_header(params, username="pbx", password="geheim", method="INVITE", uri="sip:x@y")
    assert first_status(harness, invite(2, extra=f"Authorization: {other}\r\n")).status == 401
    no_qop = {k: v for k, v in params.items() if k != "qop"}
    rfc2069 = authorization_header(no_qop, username="pbx", password="geheim", method="INVITE", uri=URI)
    assert first_status(harness, invite(3, extra=f"Authorization: {rfc2069}\r\n")).status == 401
    assert harness.ua.next_events() == []


def test_guesses_from_rotating_sources_end_in_a_lockout_with_retry_after() -> None:
    harness = auth_harness(trusted_networks=["192.0.2.0/24"], allowed_networks=[])
    statuses = []
    for n in range(8):
        source = (f"198.51.100.{n + 1}", 5060)
        params = challenge_of(first_status(harness, invite(2 * n), source))
        guess = authorization_header(params, username="pbx", password=f"guess{n}", method="INVITE", uri=URI)
        statuses.append(first_status(harness, invite(2 * n + 1, extra=f"Authorization: {guess}\r\n"), source))
    assert [m.status for m in statuses] == [401] * 5 + [503] * 3
    assert statuses[-1].headers.get("Retry-After") == "300"
    params = challenge_of(first_status(harness, invite(50), TRUNK))  # the trunk is not locked out
    right = authorization_header(params, username="pbx", password="geheim", method="INVITE", uri=URI)
    assert first_status(harness, invite(51, extra=f"Authorization: {right}\r\n"), TRUNK).status == 100


def test_our_digest_answers_a_pbx_offering_sha256_and_one_offering_md5() -> None:
    for offered, expected in ((None, "SHA-256"), ("MD5", "MD5")):
        harness = Harness(UserAgentConfig(auth_username="hotline", auth_password="pw"))
        pbx = DigestChallenger("pbx", "hotline", "pw")
        harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
        first = harness.drain()[0]
        challenges = pbx.challenges(harness.clock.now)
        if offered is not None:
            challenges = [c for c in challenges if f"algorithm={offered}," in c]
        extra = "".join(f"Proxy-Authenticate: {c}\r\n" for c in challenges)
        sent = harness.feed(response_to(first, 407, "Proxy Authentication Required", extra=extra))
        (retry,) = [m for m in sent if isinstance(m, Request) and m.method == "INVITE"]
        authorization = retry.headers.get("Proxy-Authorization") or ""
        assert f"algorithm={expected}" in authorization
        assert pbx.verify(authorization, "INVITE", retry.uri, harness.clock.now)


def test_every_refusal_carries_the_standard_reason_phrase_only() -> None:
    """The phrase must not tell a guesser which limit hit (lockout, rate, busy): the detail is in our log."""
    refusals: list[Response] = []
    rated = Harness(UserAgentConfig(invites_per_source_per_minute=1, max_calls=50))
    first_status(rated, invite(1))
    refusals.append(first_status(rated, invite(2)))  # per-source rate
    busy = Harness(UserAgentConfig(max_calls=1))
    first_status(busy, invite(1))
    refusals.append(first_status(busy, invite(2)))  # max_calls
    locked = auth_harness()
    for n in range(7):
        params = challenge_of(first_status(locked, invite(2 * n)))
        guess = authorization_header(params, username="pbx", password="falsch", method="INVITE", uri=URI)
        last = first_status(locked, invite(2 * n + 1, extra=f"Authorization: {guess}\r\n"))
    refusals.append(last)  # digest lockout
    dialog = Harness()
    dialog.feed(invite(1))
    (call,) = dialog.ua.next_events()
    assert isinstance(call, ev.IncomingCall)
    dialog.ua.answer(call.call_id, SDP_OFFER)
    tag = dialog.drain()[-1].to.tag
    reinvite = sip_request(
        "INVITE", call_id="call-1", branch="z9hG4bK-re", cseq=3, to_tag=tag, body=SDP_OFFER
    )
    dialog.feed(sip_request("ACK", call_id="call-1", branch="z9hG4bK-ack", to_tag=tag))
    dialog.feed(reinvite)
    dialog.ua.next_events()
    refusals += [m for m in dialog.run_timers_until(11.0) if m.status == 500][:1]  # no answer from media
    dialog.feed(sip_request("ACK", call_id="call-1", branch="z9hG4bK-re", cseq=3, to_tag=tag))
    old = sip_request("INVITE", call_id="call-1", branch="z9hG4bK-old", cseq=2, to_tag=tag, body=SDP_OFFER)
    refusals.append(first_status(dialog, old))  # CSeq out of order
    assert [m.status for m in refusals] == [503, 503, 503, 500, 500]
    assert [m.reason for m in refusals] == [REASONS[m.status] for m in refusals]


def test_a_trusted_trunk_outside_allowed_networks_is_let_in_and_an_empty_list_still_admits_all() -> None:
    settings = UserAgentConfig(allowed_networks=["10.0.0.0/8"], trusted_networks=["192.0.2.0/28"])
    assert first_status(Harness(settings), invite(1), TRUNK).status == 100
    assert first_status(Harness(settings), invite(1), UNKNOWN).status == 403
    everyone = UserAgentConfig(allowed_networks=[], trusted_networks=["192.0.2.0/28"])
    assert everyone.admitted_networks == ()
    assert first_status(Harness(everyone), invite(1), UNKNOWN).status == 100


def test_the_rtp_allow_list_defaults_to_the_networks_sip_admits() -> None:
    trunk_only_trusted = SipSettings(allowed_networks=["10.0.0.0/8"], trusted_networks=["192.0.2.10/32"])
    assert media_peer_policy(trunk_only_trusted).allowed_networks == ("10.0.0.0/8", "192.0.2.10/32")
    assert (
        media_peer_policy(
            SipSettings(allowed_networks=[], trusted_networks=["192.0.2.10/32"])
        ).allowed_networks
        == ()
    )
    direct = SipSettings(trusted_networks=["192.0.2.10/32"], rtp_allowed_networks=["198.51.100.0/24"])
    assert media_peer_policy(direct).allowed_networks == ("198.51.100.0/24",)
