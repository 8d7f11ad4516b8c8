"""Checks a browser's SDP offer before any peer connection exists (pure: text in, a German error out).

aiortc accepts a lot: an offer without DTLS fingerprint, without ICE credentials or with codecs it cannot use
still produced an answer and a peer connection that held resources until it timed out. This module says no first,
with a message the page can show, so that a rejected offer costs nothing but parsing a bounded string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# What aiortc can decode and encode for audio; telephone-event, CN, red etc. may come along but are not enough.
USABLE_AUDIO_CODECS = frozenset({"opus", "g722", "pcmu", "pcma"})
STATIC_USABLE_PAYLOAD_TYPES = frozenset({0, 8, 9})  # PCMU, PCMA, G722 need no rtpmap line (RFC 3551)
MAX_MEDIA_SECTIONS = 16  # a browser sends audio, maybe video and a data channel; more is not a call

_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")  # RFC 8839 ice-char
_FINGERPRINT = re.compile(
    r"(sha-1|sha-224|sha-256|sha-384|sha-512) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){15,63})"
)
_RTPMAP = re.compile(r"([0-9]{1,3}) ([A-Za-z0-9._-]{1,32})/[0-9]{1,6}(?:/[0-9]{1,2})?")


class OfferSdpError(ValueError):
    """The offer cannot become a call; ``str(error)`` is the German reason for the caller's page."""


@dataclass
class _Section:
    """Attributes of the session part or of one m= section."""

    media: str = ""
    port: int = -1
    formats: list[str] = field(default_factory=list)
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name)
        return values[0] if values else None


def check_offer_sdp(sdp: str) -> None:
    """Raise :class:`OfferSdpError` unless ``sdp`` is an offer a browser call can be built from.

    Required: ``v=0`` first; every m= line with a port of ASCII digits in 0..65535; an audio section with a
    port other than 0 that offers opus, G.722, PCMU or PCMA; ICE credentials (``ice-ufrag``/``ice-pwd``, RFC 8839
    syntax) and a DTLS ``fingerprint`` for it, at session level or in that section.
    """
    session, sections = _parse(sdp)
    audio = [s for s in sections if s.media == "audio" and s.port != 0]
    if not audio:
        raise OfferSdpError("Das SDP-Angebot enthält keine Audiospur.")
    usable = [s for s in audio if _has_usable_codec(s)]
    if not usable:
        raise OfferSdpError(
            "Das SDP-Angebot ist nicht verwendbar: kein unterstützter Audio-Codec (Opus, G.722, PCMU, PCMA)."
        )
    section = usable[0]
    ufrag = section.first("ice-ufrag") or session.first("ice-ufrag")
    pwd = section.first("ice-pwd") or session.first("ice-pwd")
    if ufrag is None or pwd is None:
        raise OfferSdpError(
            "Das SDP-Angebot ist nicht verwendbar: ICE-Zugangsdaten (ice-ufrag/ice-pwd) fehlen."
        )
    if not (4 <= len(ufrag) <= 256 and _ICE_CHARS.fullmatch(ufrag)) or not (
        22 <= len(pwd) <= 256 and _ICE_CHARS.fullmatch(pwd)
    ):
        raise OfferSdpError("Das SDP-Angebot ist nicht verwendbar: ICE-Zugangsdaten sind ungültig.")
    fingerprints = section.attributes.get("fingerprint") or session.attributes.get("fingerprint") or []
    if not fingerprints:
        raise OfferSdpError("Das SDP-Angebot ist nicht verwendbar: der DTLS-Fingerabdruck fehlt.")
    if not all(_FINGERPRINT.fullmatch(value.strip()) for value in fingerprints):
        raise OfferSdpError("Das SDP-Angebot ist nicht verwendbar: der DTLS-Fingerabdruck ist ungültig.")


def _parse(sdp: str) -> tuple[_Section, list[_Section]]:
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0].strip() != "v=0":
        raise OfferSdpError("Das SDP-Angebot enthält keine Audiospur.")
    session = _Section()
    sections: list[_Section] = []
    current = session
    for line in lines[1:]:
        if line.startswith("m="):
            if len(sections) >= MAX_MEDIA_SECTIONS:
                raise OfferSdpError("Das SDP-Angebot ist nicht verwendbar: zu viele Medienspuren.")
            current = _media_section(line[2:])
            sections.append(current)
        elif line.startswith("a="):
            name, _, value = line[2:].partition(":")
            current.attributes.setdefault(name.strip().lower(), []).append(value)
    return session, sections


def _media_section(description: str) -> _Section:
    """``<media> <port>[/<count>] <proto> <fmt> ...`` with a port that is ASCII digits, at most 65535."""
    parts = description.split(" ")
    if len(parts) < 4:
        raise OfferSdpError("Das SDP-Angebot ist nicht verwendbar: eine Medienzeile (m=) ist unvollständig.")
    port_text = parts[1].partition("/")[0]
    if not (_ascii_digits(port_text, 5) and int(port_text) <= 65535):
        raise OfferSdpError(
            "Das SDP-Angebot ist nicht verwendbar: ungültiger Port in einer Medienzeile (m=)."
        )
    return _Section(media=parts[0], port=int(port_text), formats=parts[3:])


def _has_usable_codec(section: _Section) -> bool:
    offered = {int(f) for f in section.formats if _ascii_digits(f, 3) and int(f) <= 127}
    if offered & STATIC_USABLE_PAYLOAD_TYPES:
        return True
    for value in section.attributes.get("rtpmap", []):
        match = _RTPMAP.fullmatch(value.strip())
        if match and int(match[1]) in offered and match[2].lower() in USABLE_AUDIO_CODECS:
            return True
    return False


def _ascii_digits(text: str, max_length: int) -> bool:
    """Only 0-9 (``str.isdigit`` would accept '²' or Arabic-Indic digits), and short enough for ``int``."""
    return 0 < len(text) <= max_length and all("0" <= char <= "9" for char in text)
