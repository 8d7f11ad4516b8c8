"""The offer check accepts what real browsers send (the layouts differ) and says why it refuses the rest."""

from __future__ import annotations

import pytest

from voicebot.web.offer_sdp import OfferSdpError, check_offer_sdp

FINGERPRINT = "sha-256 " + ":".join(f"{byte:02X}" for byte in range(32))

# Firefox's layout: fingerprint at session level, ICE credentials per media section, long hex ones.
SESSION_LEVEL_FINGERPRINT = (
    "v=0\r\no=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    f"a=fingerprint:{FINGERPRINT}\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\nc=IN IP4 0.0.0.0\r\na=sendrecv\r\n"
    "a=ice-pwd:0123456789abcdef0123456789abcdef\r\na=ice-ufrag:89abcdef\r\na=mid:0\r\n"
    "a=rtpmap:109 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=setup:actpass\r\n"
)

# Chrome's layout: everything per media section, a data channel section after the audio.
MEDIA_LEVEL_EVERYTHING = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:Ab+/\r\n"
    "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n"
    f"a=fingerprint:{FINGERPRINT}\r\na=setup:actpass\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
)


@pytest.mark.parametrize(
    "sdp",
    [
        SESSION_LEVEL_FINGERPRINT,
        MEDIA_LEVEL_EVERYTHING,
        MEDIA_LEVEL_EVERYTHING.replace(" 111 0\r\n", " 0\r\n"),  # static PCMU, no rtpmap needed
        MEDIA_LEVEL_EVERYTHING.replace("\r\n", "\n"),  # bare LF line ends
        MEDIA_LEVEL_EVERYTHING.replace("m=audio 9 ", "m=audio 65535/1 "),
    ],
    ids=["firefox-layout", "chrome-layout", "static-pcmu", "lf", "port-count"],
)
def test_browser_layouts_are_accepted(sdp: str) -> None:
    check_offer_sdp(sdp)


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        ("", "keine Audiospur"),
        (MEDIA_LEVEL_EVERYTHING.replace("m=audio 9 ", "m=audio 0 "), "keine Audiospur"),
        (MEDIA_LEVEL_EVERYTHING.replace("m=audio 9 ", "m=video 9 "), "keine Audiospur"),
        (MEDIA_LEVEL_EVERYTHING.replace(" 111 0\r\n", " 111 13\r\n").replace("opus", "x-opus"), "Codec"),
        (MEDIA_LEVEL_EVERYTHING.replace("m=application 9 ", "m=application 1e3 "), "Port"),
        (MEDIA_LEVEL_EVERYTHING.replace("m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "m=audio 9"), "unvollständig"),
        (MEDIA_LEVEL_EVERYTHING.replace("ice-ufrag:Ab+/", "ice-ufrag:A b"), "ungültig"),
        (MEDIA_LEVEL_EVERYTHING.replace("ice-pwd:abcdefghijklmnopqrstuvwx", "ice-pwd:short"), "ungültig"),
        (MEDIA_LEVEL_EVERYTHING.replace(FINGERPRINT, "md5 00:11"), "Fingerabdruck ist ungültig"),
        (MEDIA_LEVEL_EVERYTHING + "m=audio 9 RTP/AVP 0\r\n" * 20, "zu viele"),
    ],
    ids=[
        "empty",
        "port-0",
        "no-audio",
        "codec",
        "port-letters",
        "short-m-line",
        "ufrag",
        "pwd",
        "md5",
        "sections",
    ],
)
def test_unusable_offers_say_why(sdp: str, reason: str) -> None:
    with pytest.raises(OfferSdpError, match=reason):
        check_offer_sdp(sdp)
