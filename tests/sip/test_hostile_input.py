"""Hostile input through the sans-I/O UA (issue 15): unusable reply addresses, numbers, Call-IDs, reason phrases,
the Server header, and an OPTIONS flood that must not grow any table."""

from __future__ import annotations

import pytest

from sip_bridge.sip import events as ev
from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.message import Response
from sip_bridge.sip.parser import parse_datagram

from .helpers import PEER, SDP_OFFER, Harness, response_to, sip_request

OUTSIDER = ("198.51.100.7", 5060)  # outside the default allow-list (loopback only)


def without_rport(data: bytes) -> bytes:
    return data.replace(b";rport", b"", 1)


def only_response(sent: list) -> Response:
    assert len(sent) == 1, sent
    response = sent[0]
    assert isinstance(response, Response)
    return response


# -- item 1: a reply never goes to an address that cannot be sent to ---------------------------------------------


@pytest.mark.parametrize(
    "via_host", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:٥٠٦٠", "127.0.0.1:" + "9" * 40]
)
def test_via_naming_an_unusable_port_is_answered_at_the_source_or_not_at_all(via_host: str) -> None:
    harness = Harness()
    harness.ua.receive(without_rport(sip_request("OPTIONS", via_host=via_host)), PEER, "udp")
    out = harness.ua.outgoing()
    assert all(0 < item.dest[1] < 65536 and item.dest[0] == PEER[0] for item in out), out
    assert [parse_datagram(item.data).status for item in out] in ([], [400])  # type: ignore[union-attr]
    # the UA keeps working for the next request
    assert only_response(harness.feed(sip_request("OPTIONS", branch="z9hG4bK-next"))).status == 200


# -- item 3: ASCII digits only, bounded length, 400 Bad Request -----------------------------------------------------

HUGE = "9" * 5000
BAD_NUMBERS = [
    ("CSeq", "٣ OPTIONS"),  # Arabic-Indic three: str.isdigit() and int() accept it
    ("CSeq", "² OPTIONS"),  # superscript two: isdigit() says yes, int() raises
    ("CSeq", f"{HUGE} OPTIONS"),  # int() refuses more than 4300 digits with ValueError
    ("CSeq", "2147483648 OPTIONS"),  # RFC 3261 8.1.1.5: less than 2**31
    ("Content-Length", "٣"),
    ("Content-Length", "²"),
    ("Content-Length", HUGE),
    ("Content-Length", "0" * 11),
    ("Max-Forwards", "٧٠"),
    ("Max-Forwards", "²"),
    ("Max-Forwards", HUGE),
    ("Max-Forwards", "256"),
    ("Expires", "٣"),
    ("Expires", HUGE),
]


@pytest.mark.parametrize(("name", "value"), BAD_NUMBERS, ids=[f"{n}-{v[:6]}" for n, v in BAD_NUMBERS])
def test_bad_numbers_get_400_bad_request(name: str, value: str) -> None:
    harness = Harness()
    request = sip_request("OPTIONS")
    start = request.index(f"\r\n{name}:".encode()) if f"\r\n{name}:".encode() in request else -1
    if start >= 0:
        end = request.index(b"\r\n", start + 2)
        request = request[: start + 2] + f"{name}: {value}".encode() + request[end:]
    else:
        request = request.replace(b"\r\n\r\n", f"\r\n{name}: {value}\r\n\r\n".encode(), 1)
    response = only_response(harness.feed(request))
    assert (response.status, response.reason) == (400, "Bad Request")
    assert harness.ua.next_events() == []


def test_status_codes_are_ascii_digits() -> None:
    harness = Harness(UserAgentConfig(registrar="sip:127.0.0.1:5080"))
    harness.ua.register()
    register = harness.drain()[0]
    harness.feed(response_to(register, 200).replace(b"SIP/2.0 200", "SIP/2.0 ٢٠٠".encode(), 1))
    assert harness.ua.next_events() == []  # dropped, not read as 200
    harness.feed(response_to(register, 200, extra="Expires: ²\r\n"))  # a junk Expires is not a crash either
    assert [type(e) for e in harness.ua.next_events()] == [ev.Registered]


def test_dtmf_info_duration_with_unicode_digits_is_not_a_crash() -> None:
    harness = Harness()
    harness.feed(sip_request("INVITE", body=SDP_OFFER))
    call_id = harness.ua.next_events()[0].call_id  # type: ignore[attr-defined]
    harness.ua.answer(call_id, SDP_OFFER)
    tag = harness.drain()[-1].to.tag
    harness.feed(sip_request("ACK", branch="z9hG4bK-ack", to_tag=tag))
    harness.ua.next_events()
    info = sip_request(
        "INFO",
        branch="z9hG4bK-i",
        cseq=2,
        to_tag=tag,
        body="Signal=5\r\nDuration=²\r\n".encode(),
        content_type="application/dtmf-relay",
    )
    assert only_response(harness.feed(info)).status == 200
    assert harness.ua.next_events() == [ev.DtmfInfo(call_id, "5", 0)]


# -- item 3: Call-ID and header bytes ---------------------------------------------------------------------------

BAD_CALL_IDS = [b"x" * 300, b"abc\x00def", b"abc\xffdef", b"two words", b"a;b", b"a@b@c", b"\xc3\xa4rger"]


@pytest.mark.parametrize("call_id", BAD_CALL_IDS, ids=range(len(BAD_CALL_IDS)))
def test_bad_call_ids_get_400(call_id: bytes) -> None:
    harness = Harness()
    request = sip_request("INVITE", body=SDP_OFFER).replace(b"call-1@127.0.0.1", call_id, 1)
    response = only_response(harness.feed(request))
    assert (response.status, response.reason) == (400, "Bad Request")
    assert harness.ua.next_events() == [] and harness.ua.active_calls() == []


def test_a_call_id_with_every_word_character_is_fine() -> None:
    word = "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"  # RFC 4475 3.1.1.2
    harness = Harness()
    assert only_response(harness.feed(sip_request("OPTIONS", call_id=word))).status == 200


@pytest.mark.parametrize("value", [b"a\x00b", b"\xff\xfe", b"caf\xe9"])
def test_nul_or_non_utf8_in_any_header_gets_400(value: bytes) -> None:
    harness = Harness()
    request = sip_request("OPTIONS").replace(b"\r\n\r\n", b"\r\nSubject: " + value + b"\r\n\r\n", 1)
    response = only_response(harness.feed(request))
    assert (response.status, response.reason) == (400, "Bad Request")


# -- item 14: fixed reason phrases, configurable Server header ---------------------------------------------------


def test_stateless_400_never_echoes_the_peers_text() -> None:
    harness = Harness()
    request = sip_request("OPTIONS").replace(
        b"OPTIONS sip:hotline@127.0.0.1:5060 ", b"OPTIONS sip:evil<script>alert(1)</script> ", 1
    )
    harness.ua.receive(request, PEER, "udp")
    (out,) = harness.ua.outgoing()
    assert out.data.startswith(b"SIP/2.0 400 Bad Request\r\n")
    assert b"script" not in out.data and b"evil" not in out.data


def test_server_header_defaults_to_a_name_without_version() -> None:
    response = only_response(Harness().feed(sip_request("OPTIONS")))
    assert response.headers.get("Server") == "voicebot"


def test_server_header_is_configurable_and_empty_omits_it() -> None:
    named = Harness(UserAgentConfig(server_header="Rathaus Musterstadt"))
    assert only_response(named.feed(sip_request("OPTIONS"))).headers.get("Server") == "Rathaus Musterstadt"
    named.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    assert named.drain()[0].headers.get("User-Agent") == "Rathaus Musterstadt"
    silent = Harness(UserAgentConfig(server_header=""))
    assert "Server" not in only_response(silent.feed(sip_request("OPTIONS"))).headers
    silent.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER)
    assert "User-Agent" not in silent.drain()[0].headers
    assert "Server" not in only_response(silent.feed(sip_request("FOO", branch="z9hG4bK-foo"))).headers


def test_forbidden_sources_get_no_server_header() -> None:
    harness = Harness()
    response = only_response(harness.feed(sip_request("OPTIONS"), OUTSIDER))
    assert response.status == 403 and "Server" not in response.headers


# -- item 4: an OPTIONS flood keeps every table small --------------------------------------------------------------


def test_forty_thousand_options_from_one_source_keep_the_tables_bounded() -> None:
    harness = Harness()
    largest = 0
    answered = 0
    for n in range(40_000):
        harness.clock.now += 0.002  # 500 requests per second
        harness.ua.receive(sip_request("OPTIONS", branch=f"z9hG4bK-flood-{n}", call_id=f"flood-{n}"), PEER)
        answered += len(harness.ua.outgoing())
        if n % 100 == 0:
            harness.ua.handle_timers(harness.clock.now)
            largest = max(largest, sum(harness.ua.state_sizes().values()))
    assert answered == 40_000  # every one answered, none rate-limited
    assert largest <= 10, harness.ua.state_sizes()


def test_finished_transactions_leave_the_table_on_schedule() -> None:
    harness = Harness()
    harness.feed(sip_request("INVITE", body=SDP_OFFER))
    call_id = harness.ua.next_events()[0].call_id  # type: ignore[attr-defined]
    harness.ua.reject(call_id, 486)
    final = harness.drain()[-1]
    assert final.status == 486 and harness.ua.state_sizes()["server_transactions"] == 1
    harness.feed(sip_request("ACK", to_tag=final.to.tag))  # same branch: ACK for a non-2xx (RFC 3261 17.2.1)
    harness.advance(5.1)  # timer I (T4) ends it
    assert harness.ua.state_sizes()["server_transactions"] == 0
    harness.advance(32.0)  # the ended call is forgotten after 64*T1
    assert harness.ua.state_sizes() == dict.fromkeys(harness.ua.state_sizes(), 0)
    assert harness.ua.next_timer_deadline() is None


def test_a_full_transaction_table_answers_503_without_keeping_more() -> None:
    harness = Harness(UserAgentConfig(max_calls=1, invites_per_source_per_minute=1000))
    harness.ua.max_server_transactions = 3
    answers = []
    for n in range(5):
        invite = sip_request("INVITE", body=SDP_OFFER, branch=f"z9hG4bK-full-{n}", call_id=f"full-{n}")
        answers += [(m.status, m.reason, m.headers.get("Retry-After")) for m in harness.feed(invite)]
        assert harness.ua.state_sizes()["server_transactions"] <= 3
    assert answers == [
        (100, "Trying", None),
        (503, "Service Unavailable", "30"),  # max_calls: a transaction answers (and resends) it
        (503, "Service Unavailable", "30"),
        (503, "Service Unavailable", "30"),  # table full: answered without a transaction
        (503, "Service Unavailable", "30"),
    ]
    # Still answered, statelessly: 503 while the one line is taken (a load balancer's probe sends calls elsewhere).
    probe = only_response(harness.feed(sip_request("OPTIONS", branch="z9hG4bK-opt")))
    assert (probe.status, probe.headers.get("Retry-After")) == (503, "30")
    assert harness.ua.state_sizes()["server_transactions"] <= 3
    harness.advance(33.0)  # the refused INVITEs' transactions end (timer H), the call's stays
    assert harness.ua.state_sizes()["server_transactions"] == 1
