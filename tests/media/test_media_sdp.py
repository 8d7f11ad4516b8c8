"""SDP offer/answer (RFC 3264) as real phones and PBXs write it."""

from __future__ import annotations

import pytest

from sip_bridge.media.sdp import (
    LocalSdpSession,
    NegotiatedMedia,
    SdpError,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)

ALL = ["opus", "G722", "PCMA", "PCMU"]


def offer_text(
    formats: str,
    attributes: str = "",
    *,
    connection: str = "IN IP4 192.0.2.10",
    port: int = 40000,
) -> str:
    return (
        "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=call\r\n"
        f"c={connection}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{attributes}"
    )


def answer(
    text: str, allowed: list[str] = ALL, session: LocalSdpSession | None = None
) -> tuple[SessionDescription, NegotiatedMedia]:
    return answer_offer(
        SessionDescription.parse(text),
        local_host="198.51.100.5",
        local_port=20000,
        allowed_codecs=allowed,
        session=session or LocalSdpSession("198.51.100.5"),
    )


def test_pcmu_only_offer_without_rtpmap_is_answered_with_pcmu() -> None:
    sdp, media = answer(offer_text("0"))
    assert media.codec.name == "PCMU" and media.codec.payload_type == 0
    assert media.remote_host == "192.0.2.10" and media.remote_port == 40000
    assert media.ptime_ms == 20 and media.direction == "sendrecv" and media.dtmf_payload_type is None
    text = sdp.serialize()
    assert "m=audio 20000 RTP/AVP 0\r\n" in text
    assert "c=IN IP4 198.51.100.5\r\n" in text and "a=sendrecv" in text
    assert SessionDescription.parse(text).media[0].codecs()[0].name == "PCMU"


def test_caller_preference_order_wins_among_allowed_codecs() -> None:
    offer = offer_text("8 0 101", "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
    _, media = answer(offer)
    assert media.codec.name == "PCMA"
    _, media = answer(offer, allowed=["PCMU"])
    assert media.codec.name == "PCMU"


def test_g722_keeps_its_8000_rtp_clock() -> None:
    sdp, media = answer(offer_text("9 0", "a=rtpmap:9 G722/8000\r\n"))
    assert media.codec.name == "G722" and media.codec.clock_rate == 8000
    assert "a=rtpmap:9 G722/8000" in sdp.serialize()


def test_opus_with_fmtp_and_telephone_event_payload_type_is_mirrored() -> None:
    offer = offer_text(
        "111 9 0 110 126",
        "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
        "a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\na=ptime:20\r\n",
    )
    sdp, media = answer(offer)
    assert media.codec.name == "opus" and media.codec.payload_type == 111
    assert media.codec.fmtp == "minptime=10;useinbandfec=1"
    assert media.dtmf_payload_type == 110  # the 48 kHz event, matching opus' clock
    text = sdp.serialize()
    assert "m=audio 20000 RTP/AVP 111 110\r\n" in text
    assert "a=rtpmap:111 opus/48000/2" in text and "a=rtpmap:110 telephone-event/48000" in text
    _, g711 = answer(offer, allowed=["PCMU"])
    assert g711.dtmf_payload_type == 126  # with PCMU, the 8 kHz event


def test_callers_ptime_is_honoured() -> None:
    sdp, media = answer(offer_text("8", "a=ptime:30\r\n"))
    assert media.ptime_ms == 30 and "a=ptime:30" in sdp.serialize()


def test_hold_and_unhold_by_direction_attributes() -> None:
    session = LocalSdpSession("198.51.100.5")
    first, media = answer(offer_text("0"), session=session)
    assert media.direction == "sendrecv"
    held, media = answer(offer_text("0", "a=sendonly\r\n"), session=session)
    assert media.direction == "recvonly" and not media.sends and media.receives
    assert "a=recvonly" in held.serialize()
    assert held.origin.session_version == first.origin.session_version + 1
    _, media = answer(offer_text("0", "a=inactive\r\n"), session=session)
    assert media.direction == "inactive" and not media.sends and not media.receives
    resumed, media = answer(offer_text("0"), session=session)
    assert media.direction == "sendrecv"
    # An unchanged answer keeps the version (RFC 3264 section 8).
    again, _ = answer(offer_text("0"), session=session)
    assert again.origin.session_version == resumed.origin.session_version


def test_old_style_hold_with_zero_connection_address() -> None:
    _, media = answer(offer_text("0", connection="IN IP4 0.0.0.0"))
    assert media.direction == "recvonly" and not media.sends


def test_ipv6_connection() -> None:
    _, media = answer(offer_text("0", connection="IN IP6 2001:db8::1"))
    assert media.remote_host == "2001:db8::1"
    six = answer_offer(
        SessionDescription.parse(offer_text("0", connection="IN IP6 2001:db8::1")),
        local_host="::1",
        local_port=20002,
        allowed_codecs=ALL,
        session=LocalSdpSession("::1"),
    )[0].serialize()
    assert "c=IN IP6 ::1" in six and "o=voicebot" in six and "IN IP6 ::1\r\n" in six


def test_no_common_codec_raises_sdp_error() -> None:
    with pytest.raises(SdpError, match="no common audio codec"):
        answer(offer_text("18", "a=rtpmap:18 G729/8000\r\n"))
    with pytest.raises(SdpError):
        answer(offer_text("0"), allowed=["opus"])


def test_malformed_sdp_raises_sdp_error() -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse("this is not sdp")
    with pytest.raises(SdpError):
        SessionDescription.parse("v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n")  # no media
    with pytest.raises(SdpError):
        answer(offer_text("0", "a=rtpmap:0 PCMU\r\n"))  # no clock rate
    with pytest.raises(SdpError):
        answer(offer_text("0", connection="IN IP4"))


def test_video_stream_is_rejected_with_port_zero_and_audio_accepted() -> None:
    text = offer_text("0") + "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
    sdp, media = answer(text)
    assert media.codec.name == "PCMU"
    assert [(m.media, m.port) for m in sdp.media] == [("audio", 20000), ("video", 0)]


def test_offer_then_answer_round_trip_for_the_staff_leg() -> None:
    ours = LocalSdpSession("127.0.0.1")
    offer = build_offer(local_host="127.0.0.1", local_port=20010, codecs=["PCMA", "opus"], session=ours)
    text = offer.serialize()
    assert "m=audio 20010 RTP/AVP 8 96 101 102\r\n" in text
    theirs = LocalSdpSession("127.0.0.2")
    answer_sdp, their_media = answer_offer(
        SessionDescription.parse(text),
        local_host="127.0.0.2",
        local_port=30000,
        allowed_codecs=["opus", "PCMA"],
        session=theirs,
    )
    assert their_media.codec.name == "PCMA"  # our (the offerer's) order is the preference
    media = accept_answer(offer, SessionDescription.parse(answer_sdp.serialize()))
    assert media.codec.name == "PCMA" and media.dtmf_payload_type == 101
    assert (media.remote_host, media.remote_port, media.direction) == ("127.0.0.2", 30000, "sendrecv")
    reoffer = build_offer(
        local_host="127.0.0.1", local_port=20010, codecs=["PCMA"], session=ours, direction="sendonly"
    )
    assert reoffer.origin.session_version == offer.origin.session_version + 1
    assert reoffer.origin.session_id == offer.origin.session_id


def test_opus_with_only_an_8khz_telephone_event_keeps_the_keypad() -> None:
    offer = offer_text("96 101", "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n")
    sdp, media = answer(offer)
    assert media.codec.name == "opus"
    assert (media.dtmf_payload_type, media.dtmf_clock_rate) == (101, 8000)
    assert "a=rtpmap:101 telephone-event/8000" in sdp.serialize()


@pytest.mark.parametrize(
    "port_or_formats",
    [
        ("²", "0"),
        ("٤٠٠٠٠", "0"),
        ("9" * 5000, "0"),
        ("99999999999999999999", "0"),
        ("40000", "²"),
        ("40000", "9" * 5000),
    ],
)
def test_numbers_in_sdp_are_ascii_digits_within_range(port_or_formats: tuple[str, str]) -> None:
    """Issue 15: ``m=audio ²`` raised a plain ValueError (a traceback in the call set-up), "٤" counted as 4."""
    port, formats = port_or_formats
    text = offer_text("0").replace("m=audio 40000 RTP/AVP 0", f"m=audio {port} RTP/AVP {formats}")
    with pytest.raises(SdpError):
        answer(text)
    with pytest.raises(SdpError):
        answer(offer_text("0", "a=rtpmap:0 PCMU/²\r\n"))
