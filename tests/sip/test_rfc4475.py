"""RFC 4475 torture messages (read from ../shared/conformance/rfc4475, never copied) through the real UA.

What each group gets is the conformance README's table; where the RFC names a registrar's or proxy's answer we
answer as the user agent we are (noted per file below).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sip_bridge.sip import IncomingCall
from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.message import Request, Response
from sip_bridge.sip.parser import ParseError, StreamFramer, parse_datagram

from .helpers import Harness

TORTURE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "rfc4475"
SOURCE = ("127.0.0.1", 5070)  # inside the default allow-list

# file -> expected status of our single answer; None = dropped (nothing sent); "call" = 100 Trying + IncomingCall
VALID = {
    "wsinv": 481,  # its To carries a tag: a re-INVITE for a dialog we do not have
    "intmeth": 501,  # unknown method
    "esc01": "call",
    "escnull": 405,  # REGISTER to a UA
    "esc02": 501,  # RE%47IST%45R is not REGISTER
    "lwsdisp": 200,
    "longreq": "call",
    "dblreq": 405,  # one datagram = one message: only the REGISTER counts
    "semiuri": 200,
    "transports": 200,
    "mpart01": 405,  # MESSAGE is not for us
    "unreason": None,  # responses nobody asked for
    "noreason": None,
}
INVALID = {
    **dict.fromkeys(
        [
            "badinv01",
            "clerr",
            "ncl",
            "scalar02",
            "quotbal",
            "ltgtruri",
            "lwsruri",
            "lwsstart",
            "trws",
            "escruri",
            "baddate",
            "regbadct",
            "badaspec",
            "baddn",
            "mismatch01",
            "mismatch02",
        ],
        400,
    ),
    "badvers": 505,
    "scalarlg": None,  # malformed responses are dropped
    "bigcode": None,
}
APPLICATION = {
    "insuf": 400,
    "unkscm": 416,
    "novelsc": 416,
    "unksm2": 400,  # REGISTER whose To is not a SIP AOR
    "bext01": 420,
    "invut": 415,
    "regaut01": 405,  # the RFC's 401 is a registrar's answer; a UA refuses REGISTER
    "multi01": 400,
    "mcl01": 400,
    "bcast": None,  # response with two Vias: discarded (RFC 3261 8.1.3.3)
    "zeromf": 200,  # an endpoint processes Max-Forwards: 0 normally (RFC 4475 3.3.11)
    "cparam01": 405,
    "cparam02": 405,
    "regescrt": 405,
    "sdp01": 406,
}
EXPECTED = {**VALID, **INVALID, **APPLICATION, "badbranch": 200, "inv2543": "call"}


def load(name: str) -> bytes:
    return (TORTURE_DIR / f"{name}.dat").read_bytes()


def test_table_covers_all_49_files() -> None:
    on_disk = {path.stem for path in TORTURE_DIR.glob("*.dat")}
    assert len(on_disk) == 49
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message_gets_the_expected_answer(name: str) -> None:
    harness = Harness(UserAgentConfig())
    sent = harness.feed(load(name), SOURCE)
    events = harness.ua.next_events()
    expected = EXPECTED[name]
    if expected is None:
        assert sent == [] and events == []
    elif expected == "call":
        assert [m.status for m in sent if isinstance(m, Response)] == [100]
        assert len(events) == 1 and isinstance(events[0], IncomingCall)
        assert harness.ua.active_calls() == [events[0].call_id]
    else:
        assert len(sent) == 1, sent
        response = sent[0]
        assert isinstance(response, Response) and response.status == expected, (
            response.status,
            response.reason,
        )
        assert events == []
        assert harness.ua.active_calls() == []  # never a half-built call or dialog
    # every answer can be parsed back and goes to the source address (no rport: source IP, Via port)
    for message in sent:
        parse_datagram(message.to_bytes())
    # the UA is left with nothing pending except the transaction absorbing retransmissions
    harness.run_timers_until(40.0, step=2.0)
    assert harness.ua.next_timer_deadline() is None or harness.ua.active_calls()


def test_application_layer_answers_carry_the_headers_the_rfc_asks_for() -> None:
    bext = Harness().feed(load("bext01"), SOURCE)[0]
    assert bext.headers.get("Unsupported") == "nothingSupportsThis, nothingSupportsThisEither"
    invut = Harness().feed(load("invut"), SOURCE)[0]
    assert "application/sdp" in (invut.headers.get("Accept") or "")
    sdp01 = Harness().feed(load("sdp01"), SOURCE)[0]
    assert sdp01.headers.get("Accept") == "application/sdp"
    for name in ("escnull", "regaut01"):
        assert "INVITE" in (Harness().feed(load(name), SOURCE)[0].headers.get("Allow") or "")


def test_valid_messages_parse_to_the_values_the_rfc_explains() -> None:
    wsinv = parse_datagram(load("wsinv"))
    assert isinstance(wsinv, Request) and wsinv.method == "INVITE"
    assert wsinv.to.tag == "1918181833n"
    assert wsinv.from_.display_name == 'J Rosenberg \\"' and wsinv.from_.tag == "98asjd8"
    assert wsinv.headers.get("Max-Forwards") == "0068"
    assert (wsinv.cseq.number, wsinv.cseq.method) == (9, "INVITE")
    vias = wsinv.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    contact = wsinv.contacts[0]
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert wsinv.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert wsinv.headers.get("Subject") == ""
    assert len(wsinv.body) == 150

    intmeth = parse_datagram(load("intmeth"))
    assert isinstance(intmeth, Request) and intmeth.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert intmeth.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert intmeth.request_uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert intmeth.from_.display_name == "token1~` token2'+_ token3*%!.-"

    esc01 = parse_datagram(load("esc01"))
    assert isinstance(esc01, Request)
    assert esc01.request_uri.user == "sips:user@example.com"
    assert esc01.to.uri.user == "user"
    assert esc01.from_.uri.user == "I have spaces"
    assert esc01.contacts[0].uri.params == {"lr": None, "name": "value%41"}
    assert esc01.call_id == "esc01.239409asdfakjkn23onasd0-3234"

    escnull = parse_datagram(load("escnull"))
    assert escnull.to.uri.user == "null-\x00-null" and len(escnull.contacts) == 2

    esc02 = parse_datagram(load("esc02"))
    assert isinstance(esc02, Request) and esc02.method == "RE%47IST%45R"
    assert esc02.to.display_name == "%Z%45" and len(esc02.contacts) == 2  # C%6Fntact is another header

    assert parse_datagram(load("lwsdisp")).from_.display_name == "caller"

    longreq = parse_datagram(load("longreq"))
    assert len(longreq.vias) == 34 and longreq.to.uri.port == 6000
    assert longreq.call_id.startswith("longreq.one") and longreq.call_id.endswith("longcallid")

    semiuri = parse_datagram(load("semiuri"))
    assert isinstance(semiuri, Request) and semiuri.request_uri.user == "user;par=u@example.net"
    assert semiuri.request_uri.host == "example.com" and len(semiuri.headers.values("Accept")) == 6

    transports = parse_datagram(load("transports"))
    assert [v.transport for v in transports.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]

    mpart01 = parse_datagram(load("mpart01"))
    assert mpart01.content_type == "multipart/mixed" and len(mpart01.body) == 553

    unreason = parse_datagram(load("unreason"))
    assert (
        isinstance(unreason, Response)
        and unreason.status == 200
        and unreason.reason.startswith("= 2**3 * 5**2")
    )
    noreason = parse_datagram(load("noreason"))
    assert isinstance(noreason, Response) and noreason.status == 100 and noreason.reason == ""

    dblreq = parse_datagram(load("dblreq"))
    assert isinstance(dblreq, Request) and dblreq.method == "REGISTER" and dblreq.body == b""


def test_contact_parameters_versus_uri_parameters() -> None:
    cparam01 = parse_datagram(load("cparam01")).contacts[0]
    assert cparam01.params == {"unknownparam": None} and cparam01.uri.params == {}
    cparam02 = parse_datagram(load("cparam02")).contacts[0]
    assert cparam02.params == {} and cparam02.uri.params == {"unknownparam": None}
    regescrt = parse_datagram(load("regescrt")).contacts[0]
    assert regescrt.uri.headers == "Route=%3Csip:sip.example.com%3E"


def test_stream_framing_splits_dblreq_into_its_two_requests() -> None:
    framer = StreamFramer()
    data = load("dblreq")
    messages: list[Request | Response] = []
    with pytest.raises(
        ParseError
    ):  # the INVITE's Content-Length leaves "C\r\n\r\n" behind: garbage on a stream
        for i in range(0, len(data), 7):
            messages += framer.feed(data[i : i + 7])
    assert [m.method for m in messages if isinstance(m, Request)] == ["REGISTER", "INVITE"]
    assert len(messages[1].body) == 150


def test_badbranch_retransmission_is_matched_to_its_transaction() -> None:
    harness = Harness()
    first = harness.feed(load("badbranch"), SOURCE)
    second = harness.feed(load("badbranch"), SOURCE)
    assert [m.status for m in first] == [200] and [m.status for m in second] == [200]
    assert first[0].to.tag == second[0].to.tag  # the same response resent, not a new one


def test_inv2543_call_can_be_answered_and_acknowledged_without_branch_or_tags() -> None:
    harness = Harness()
    harness.feed(load("inv2543"), SOURCE)
    call = harness.ua.next_events()[0]
    assert isinstance(call, IncomingCall) and call.sdp.startswith(b"v=0")
    harness.ua.answer(call.call_id, b"v=0\r\n")
    final = harness.drain()[-1]
    assert final.status == 200
    ack = (
        load("inv2543")
        .split(b"\r\n\r\n")[0]
        .replace(b"INVITE sip:", b"ACK sip:")
        .replace(b"56 INVITE", b"56 ACK")
    )
    ack = ack.replace(
        b"To: sip:+16505552222@ss1.example.net;user=phone", f"To: {final.headers.get('To')}".encode()
    )
    ack = ack.replace(b"Content-Type: application/sdp", b"Content-Length: 0") + b"\r\n\r\n"
    assert harness.feed(ack, SOURCE) == []
    assert [type(e).__name__ for e in harness.ua.next_events()] == ["CallConfirmed"]


def test_every_torture_message_survives_stream_framing() -> None:
    """Over TCP the same bytes must never crash the UA either (framing errors close the stream)."""
    for name in sorted(EXPECTED):
        harness = Harness()
        harness.feed(load(name), SOURCE, transport="tcp")
        harness.ua.connection_lost(SOURCE)
