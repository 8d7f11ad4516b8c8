"""Extra header fields on the requests the UA originates (a PBX hand-off's Call-Info and User-to-User): built,
escaped into a Refer-To URI, checked against injection, and parsed back from the bytes on the wire."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from sip_bridge.sip.headers import (
    call_info,
    checked_headers,
    escape_header_part,
    parse_user_to_user,
    uri_with_headers,
    user_to_user,
)
from sip_bridge.sip.message import URI

from .helpers import SDP_OFFER, Harness
from .test_useragent import CALL, established

UUI = user_to_user(b"\x04abc", purpose="isdn-uui", content="isdn-uui")
INFO = call_info("https://rathaus.example/konsole/anruf/abc")


def test_user_to_user_and_call_info_values() -> None:
    assert UUI == "04616263;encoding=hex;purpose=isdn-uui;content=isdn-uui"
    assert parse_user_to_user(UUI) == (
        b"\x04abc",
        {"encoding": "hex", "purpose": "isdn-uui", "content": "isdn-uui"},
    )
    assert INFO == "<https://rathaus.example/konsole/anruf/abc>;purpose=info"
    with pytest.raises(ValueError, match="empty"):
        user_to_user(b"")
    with pytest.raises(ValueError, match="128 octets"):
        user_to_user(b"x" * 129)
    with pytest.raises(ValueError, match="token"):
        user_to_user(b"x", purpose="a b")
    for bad in ("javascript:alert(1)", "https://a.example/x>;purpose=icon", "https://a.example/\r\nVia: x"):
        with pytest.raises(ValueError):
            call_info(bad)
    with pytest.raises(ValueError, match="hex"):
        parse_user_to_user("zz;encoding=hex")


def test_headers_embedded_in_a_uri_are_escaped_and_come_back_unchanged() -> None:
    assert escape_header_part("a;b=c&d <e>") == "a%3Bb%3Dc%26d%20%3Ce%3E"
    target = uri_with_headers("sip:queue@pbx.example:5060", {"User-to-User": UUI, "Call-Info": INFO})
    parsed = URI.parse(target)
    assert parsed.host == "pbx.example" and parsed.port == 5060 and parsed.params == {}
    assert parsed.headers is not None
    embedded = dict(part.split("=", 1) for part in parsed.headers.split("&"))
    assert {name: unquote(value) for name, value in embedded.items()} == {
        "User-to-User": UUI,
        "Call-Info": INFO,
    }
    assert not any(ch in parsed.headers for ch in ";<> ")  # nothing that ends the URI or starts a parameter
    # A URI that already carries headers gets the new ones joined with "&".
    assert uri_with_headers("sip:q@pbx?X-A=1", {"X-B": "2"}) == "sip:q@pbx?X-A=1&X-B=2"
    assert uri_with_headers("sip:q@pbx", None) == "sip:q@pbx"
    with pytest.raises(ValueError, match="not a SIP URI"):
        uri_with_headers("tel:+4930123", {"X-B": "2"})


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"User-to-User": "abc\r\nVia: SIP/2.0/UDP evil"}, "control characters"),
        ({"User-to-User": "abc\nX: y"}, "control characters"),
        ({"X-Ref": "a\x00b"}, "control characters"),
        ({"X-Ref": ""}, "empty"),
        ({"X-Ref": "x" * 1025}, "longer than 1024"),
        ({"Via": "SIP/2.0/UDP 10.0.0.1"}, "written by the user agent"),
        ({"call-id": "other@host"}, "written by the user agent"),
        ({"v": "SIP/2.0/UDP 10.0.0.1"}, "written by the user agent"),
        ({"Content-Length": "0"}, "written by the user agent"),
        ({"Bad Name": "x"}, "not a token"),
        ({"X-Ref:": "x"}, "not a token"),
        ({f"X-{n}": "x" for n in range(9)}, "at most 8"),
    ],
)
def test_bad_extra_headers_are_refused_before_anything_is_sent(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        checked_headers(headers)
    harness = Harness()
    with pytest.raises(ValueError, match=problem):
        harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER, headers=headers)
    assert harness.drain() == [] and harness.ua.active_calls() == []
    established(harness)
    for refer_headers in ({"headers": headers}, {"target_headers": headers}):
        with pytest.raises(ValueError, match=problem):
            harness.ua.refer(CALL, "sip:staff@127.0.0.1:5070", **refer_headers)  # type: ignore[arg-type]
        assert harness.drain() == []
    assert harness.ua.next_events() == []  # no transfer started: no TransferFailed either


def test_invite_and_refer_carry_the_extra_headers_on_the_wire() -> None:
    harness = Harness()
    headers = {"Call-Info": INFO, "User-to-User": UUI}
    harness.ua.invite("sip:staff@127.0.0.1:5070", SDP_OFFER, headers=headers)
    (invite,) = harness.drain()  # parsed back from the bytes the UA sends
    assert invite.headers.get("Call-Info") == INFO and invite.headers.get("User-to-User") == UUI
    assert invite.body == SDP_OFFER and invite.headers.get("Content-Type") == "application/sdp"

    harness = Harness()
    established(harness)
    harness.ua.refer(CALL, "sip:queue@127.0.0.1:5070", headers=headers, target_headers=headers)
    (refer,) = harness.drain()
    assert refer.headers.get("User-to-User") == UUI and refer.headers.get("Call-Info") == INFO
    refer_to = refer.headers.get("Refer-To") or ""
    assert refer_to.startswith("<sip:queue@127.0.0.1:5070?") and refer_to.endswith(">")
    target = URI.parse(refer_to[1:-1])
    assert target.headers is not None
    embedded = {k: unquote(v) for k, v in (p.split("=", 1) for p in target.headers.split("&"))}
    assert embedded == headers
    assert harness.ua.next_events() == []
