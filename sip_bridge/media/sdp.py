"""SDP (RFC 4566) parsing/serialisation and RFC 3264 offer/answer for one audio stream.

Sans-I/O: text in, dataclasses out. The bridge only ever negotiates one audio stream (the call), so the
negotiation picks the first usable ``m=audio`` line and rejects every other stream with port 0, as RFC 3264
requires. Failures raise :class:`SdpError`, which the SIP glue turns into ``488 Not Acceptable Here``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRRORED_DIRECTION: dict[Direction, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
RTP_PROFILES = ("RTP/AVP", "RTP/AVPF")
DEFAULT_PTIME_MS = 20
TELEPHONE_EVENT = "telephone-event"

# RFC 3551 static payload types we may meet without an a=rtpmap line: (encoding, clock rate, channels).
_STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    18: ("G729", 8000, 1),
}
# What the media engine can encode/decode: canonical name -> (RTP clock rate, channels in SDP).
SUPPORTED_CODECS: dict[str, tuple[int, int]] = {
    "PCMU": (8000, 1),
    "PCMA": (8000, 1),
    "G722": (8000, 1),  # RTP clock 8000 by an RFC 3551 mistake; the audio itself is 16 kHz
    "opus": (48000, 2),
}
_STATIC_PT_FOR = {"PCMU": 0, "PCMA": 8, "G722": 9}
_OFFER_DYNAMIC_PT = {"opus": 96}
_OFFER_DTMF_PT = {8000: 101, 48000: 102}
_OPUS_FMTP = "minptime=10;useinbandfec=1"


class SdpError(ValueError):
    """The SDP is malformed or has nothing we can accept (the glue answers 488 Not Acceptable Here)."""


_ASCII_DIGITS = re.compile(r"[0-9]{1,20}")


def _number(text: str, maximum: int, what: str) -> int:
    """ASCII digits only, at most ``maximum`` (``str.isdigit``/``int`` accept "²" and "٣")."""
    if not _ASCII_DIGITS.fullmatch(text) or int(text) > maximum:
        raise SdpError(f"bad {what} {text[:40]!r}")
    return int(text)


@dataclass(frozen=True)
class CodecSpec:
    """One RTP payload format as named in SDP (name is canonical: PCMU, PCMA, G722, opus, telephone-event)."""

    name: str
    payload_type: int
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def rtpmap(self) -> str:
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{suffix}"


@dataclass
class Origin:
    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    address: str = "127.0.0.1"

    def serialize(self) -> str:
        return f"{self.username} {self.session_id} {self.session_version} IN {_addrtype(self.address)} {self.address}"


@dataclass
class MediaDescription:
    """One ``m=`` section with its own ``c=`` (if any) and attributes in order."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        return next((value for key, value in self.attributes if key == name), None)

    def has_attribute(self, name: str) -> bool:
        return any(key == name for key, _ in self.attributes)

    @property
    def direction(self) -> Direction | None:
        return next((d for d in DIRECTIONS if self.has_attribute(d)), None)

    @property
    def ptime_ms(self) -> int | None:
        value = self.attribute("ptime")
        if value is None:
            return None
        try:
            ptime = round(float(value))
        except ValueError as exc:
            raise SdpError(f"bad a=ptime value {value!r}") from exc
        return ptime if 10 <= ptime <= 120 else None

    def codecs(self) -> list[CodecSpec]:
        """The offered payload formats in preference order (unknown static PTs without rtpmap are skipped)."""
        rtpmaps: dict[int, tuple[str, int, int]] = {}
        fmtps: dict[int, str] = {}
        for key, value in self.attributes:
            if key not in ("rtpmap", "fmtp") or not value:
                continue
            pt_text, _, rest = value.partition(" ")
            pt = _number(pt_text, 127, f"a={key} payload type")
            if key == "fmtp":
                fmtps[pt] = rest.strip()
                continue
            parts = rest.strip().split("/")
            if len(parts) < 2:
                raise SdpError(f"bad a=rtpmap line {value[:80]!r}")
            channels = _number(parts[2], 255, "a=rtpmap channels") if len(parts) > 2 else 1
            rtpmaps[pt] = (parts[0], _number(parts[1], 10_000_000, "a=rtpmap clock rate"), channels)
        result = []
        for fmt in self.formats:
            pt = _number(fmt, 127, "RTP payload type")
            mapping = rtpmaps.get(pt) or _STATIC_PAYLOAD_TYPES.get(pt)
            if mapping is None:
                continue
            name, clock_rate, channels = mapping
            result.append(CodecSpec(_canonical(name), pt, clock_rate, channels, fmtps.get(pt)))
        return result

    def serialize(self) -> list[str]:
        lines = [f"m={self.media} {self.port} {self.proto} {' '.join(self.formats)}"]
        if self.connection:
            lines.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        lines += [f"a={key}" if value is None else f"a={key}:{value}" for key, value in self.attributes]
        return lines


@dataclass
class SessionDescription:
    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: str | None = None
    timing: str = "0 0"
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        session = cls()
        current: MediaDescription | None = None
        seen_version = False
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"bad SDP line {line[:60]!r}")
            kind, value = line[0], line[2:]
            if kind == "v":
                if value.strip() != "0":
                    raise SdpError(f"unsupported SDP version {value!r}")
                seen_version = True
            elif kind == "o":
                session.origin = _parse_origin(value)
            elif kind == "s":
                session.session_name = value
            elif kind == "t":
                session.timing = value
            elif kind == "c":
                address = _parse_connection(value)
                if current is None:
                    session.connection = address
                else:
                    current.connection = address
            elif kind == "m":
                parts = value.split()
                if len(parts) < 4:
                    raise SdpError(f"bad m= line {value[:80]!r}")
                port = _number(parts[1].split("/")[0], 65535, "m= port")
                current = MediaDescription(parts[0], port, parts[2], parts[3:])
                session.media.append(current)
            elif kind == "a":
                name, sep, attr_value = value.partition(":")
                target = session.attributes if current is None else current.attributes
                target.append((name, attr_value if sep else None))
            # b=, i=, u=, e=, p=, k=, z=, r= are legal and irrelevant here.
        if not seen_version or not session.media:
            raise SdpError("SDP without v= line or without any m= line")
        return session

    def serialize(self) -> str:
        lines = ["v=0", f"o={self.origin.serialize()}", f"s={self.session_name}"]
        if self.connection:
            lines.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        lines.append(f"t={self.timing}")
        lines += [f"a={key}" if value is None else f"a={key}:{value}" for key, value in self.attributes]
        for media in self.media:
            lines += media.serialize()
        return "\r\n".join(lines) + "\r\n"

    def media_connection(self, media: MediaDescription) -> str:
        address = media.connection or self.connection
        if not address:
            raise SdpError("no c= line for the audio stream")
        return address

    def direction_of(self, media: MediaDescription) -> Direction:
        """The stream's direction; a c=0.0.0.0 offer is the RFC 2543 way to put a call on hold."""
        direction = media.direction or self._session_direction() or "sendrecv"
        if self.media_connection(media) in ("0.0.0.0", "::") and direction == "sendrecv":
            return "sendonly"
        return direction

    def _session_direction(self) -> Direction | None:
        return next((d for d in DIRECTIONS if any(key == d for key, _ in self.attributes)), None)


@dataclass(frozen=True)
class NegotiatedMedia:
    """What both sides agreed on: everything the RTP endpoint needs to run the call's audio."""

    codec: CodecSpec
    dtmf_payload_type: int | None
    ptime_ms: int
    direction: Direction  # OUR direction: sendrecv, sendonly (we only send), recvonly, inactive
    remote_host: str
    remote_port: int
    dtmf_clock_rate: int | None = None  # None: the codec's clock (RFC 4733's rule)

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly") and self.remote_port != 0

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


class LocalSdpSession:
    """Our side's o= line: a stable session id and a version that rises whenever our description changes."""

    def __init__(self, address: str, username: str = "voicebot", session_id: int | None = None) -> None:
        self.address = address
        self.username = username
        self.session_id = session_id if session_id is not None else random.randrange(1, 2**31)
        self.version = self.session_id
        self._last_body: str | None = None

    def stamp(self, description: SessionDescription) -> SessionDescription:
        """Fill in the origin, bumping the version only if anything else changed (RFC 3264 section 8)."""
        description.origin = Origin(self.username, self.session_id, 0, self.address)
        body = description.serialize()
        if self._last_body is not None and body != self._last_body:
            self.version += 1
        self._last_body = body
        description.origin = replace(description.origin, session_version=self.version)
        return description


def answer_offer(
    offer: SessionDescription,
    *,
    local_host: str,
    local_port: int,
    allowed_codecs: Sequence[str],
    session: LocalSdpSession,
    ptime_ms: int | None = None,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer: the caller's first listed codec that we support and allow wins.

    ``ptime_ms`` forces our packet time; by default the caller's ``a=ptime`` is honoured (else 20 ms).
    """
    allowed = [_canonical(name) for name in allowed_codecs]
    answer = SessionDescription(connection=local_host)
    negotiated: NegotiatedMedia | None = None
    for media in offer.media:
        if (
            negotiated is not None
            or media.media != "audio"
            or media.proto not in RTP_PROFILES
            or media.port == 0
        ):
            answer.media.append(MediaDescription(media.media, 0, media.proto, media.formats[:1]))
            continue
        offered = media.codecs()
        codec = next((c for c in offered if c.name in allowed and _supported(c)), None)
        if codec is None:
            answer.media.append(MediaDescription(media.media, 0, media.proto, media.formats[:1]))
            continue
        dtmf = _pick_telephone_event(offered, codec)
        offer_direction = offer.direction_of(media)
        our_direction = _MIRRORED_DIRECTION[offer_direction]
        ptime = ptime_ms or media.ptime_ms or DEFAULT_PTIME_MS
        negotiated = NegotiatedMedia(
            codec=codec,
            dtmf_payload_type=dtmf.payload_type if dtmf else None,
            dtmf_clock_rate=dtmf.clock_rate if dtmf else None,
            ptime_ms=ptime,
            direction=our_direction,
            remote_host=offer.media_connection(media),
            remote_port=media.port,
        )
        answer.media.append(_audio_media(local_port, media.proto, [codec], dtmf, ptime, our_direction))
    if negotiated is None:
        offered_names = sorted({c.name for m in offer.media if m.media == "audio" for c in _safe_codecs(m)})
        raise SdpError(f"no common audio codec: offered {offered_names}, we allow {allowed}")
    return session.stamp(answer), negotiated


def build_offer(
    *,
    local_host: str,
    local_port: int,
    codecs: Sequence[str],
    session: LocalSdpSession,
    ptime_ms: int = DEFAULT_PTIME_MS,
    direction: Direction = "sendrecv",
    dtmf: bool = True,
) -> SessionDescription:
    """An offer listing ``codecs`` in our preference order (used for the B2BUA leg to staff and re-INVITEs)."""
    specs = [_local_codec(name) for name in codecs]
    if not specs:
        raise SdpError("no codec to offer")
    events = []
    if dtmf:
        for clock_rate in sorted({spec.clock_rate for spec in specs}):
            events.append(CodecSpec(TELEPHONE_EVENT, _OFFER_DTMF_PT[clock_rate], clock_rate, 1, "0-16"))
    offer = SessionDescription(connection=local_host)
    offer.media.append(_audio_media(local_port, "RTP/AVP", specs, None, ptime_ms, direction, events))
    return session.stamp(offer)


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Read the peer's answer to our offer: the first codec in the answer that we offered."""
    ours = {(c.name, c.clock_rate) for m in offer.media for c in m.codecs()}
    for media in answer.media:
        if media.media != "audio" or media.port == 0:
            continue
        codecs = media.codecs()
        codec = next((c for c in codecs if (c.name, c.clock_rate) in ours and _supported(c)), None)
        if codec is None:
            continue
        dtmf = _pick_telephone_event(codecs, codec)
        our_offer_media = offer.media[0]
        offered_direction = offer.direction_of(our_offer_media)
        answered = answer.direction_of(media)
        direction = _combine_directions(offered_direction, _MIRRORED_DIRECTION[answered])
        return NegotiatedMedia(
            codec=codec,
            dtmf_payload_type=dtmf.payload_type if dtmf else None,
            dtmf_clock_rate=dtmf.clock_rate if dtmf else None,
            ptime_ms=media.ptime_ms or our_offer_media.ptime_ms or DEFAULT_PTIME_MS,
            direction=direction,
            remote_host=answer.media_connection(media),
            remote_port=media.port,
        )
    raise SdpError("the answer accepts none of the offered audio codecs")


def _audio_media(
    port: int,
    proto: str,
    codecs: Sequence[CodecSpec],
    dtmf: CodecSpec | None,
    ptime_ms: int,
    direction: Direction,
    events: Sequence[CodecSpec] = (),
) -> MediaDescription:
    all_codecs = [*codecs, *([dtmf] if dtmf else []), *events]
    media = MediaDescription("audio", port, proto, [str(c.payload_type) for c in all_codecs])
    for codec in all_codecs:
        media.attributes.append(("rtpmap", codec.rtpmap))
        fmtp = codec.fmtp
        if codec.name == TELEPHONE_EVENT:
            fmtp = "0-16"
        elif codec.name == "opus":
            fmtp = _OPUS_FMTP
        if fmtp:
            media.attributes.append(("fmtp", f"{codec.payload_type} {fmtp}"))
    media.attributes.append(("ptime", str(ptime_ms)))
    media.attributes.append((direction, None))
    return media


def _pick_telephone_event(offered: Sequence[CodecSpec], codec: CodecSpec) -> CodecSpec | None:
    """The telephone-event at the codec's clock (RFC 4733); else any offered one, as some phones pair an
    8 kHz telephone-event with Opus and would otherwise lose their keypad."""
    events = [c for c in offered if c.name == TELEPHONE_EVENT]
    return next((c for c in events if c.clock_rate == codec.clock_rate), events[0] if events else None)


def _combine_directions(ours: Direction, allowed_by_peer: Direction) -> Direction:
    send = ours in ("sendrecv", "sendonly") and allowed_by_peer in ("sendrecv", "sendonly")
    receive = ours in ("sendrecv", "recvonly") and allowed_by_peer in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (send, receive), "inactive"
    )  # type: ignore[return-value]


def _local_codec(name: str) -> CodecSpec:
    canonical = _canonical(name)
    if canonical not in SUPPORTED_CODECS:
        raise SdpError(f"unsupported codec {name!r}; supported: {sorted(SUPPORTED_CODECS)}")
    clock_rate, channels = SUPPORTED_CODECS[canonical]
    pt = _STATIC_PT_FOR.get(canonical, _OFFER_DYNAMIC_PT.get(canonical, 96))
    return CodecSpec(canonical, pt, clock_rate, channels, _OPUS_FMTP if canonical == "opus" else None)


def _supported(codec: CodecSpec) -> bool:
    expected = SUPPORTED_CODECS.get(codec.name)
    return expected is not None and expected[0] == codec.clock_rate


def _safe_codecs(media: MediaDescription) -> list[CodecSpec]:
    try:
        return media.codecs()
    except SdpError:
        return []


def _canonical(name: str) -> str:
    upper = name.upper()
    if upper in ("PCMU", "PCMA", "G722"):
        return upper
    if upper == "OPUS":
        return "opus"
    if upper == "TELEPHONE-EVENT":
        return TELEPHONE_EVENT
    return name


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _parse_connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value!r}")
    return parts[2].split("/")[0]  # drop multicast TTL/count


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"bad o= line {value!r}")
    # Some UAs put non-numeric ids here; they only matter for our own o= line, so be lenient.
    session_id = int(parts[1]) if _ASCII_DIGITS.fullmatch(parts[1]) else 0
    version = int(parts[2]) if _ASCII_DIGITS.fullmatch(parts[2]) else 0
    return Origin(parts[0], session_id, version, parts[5])
