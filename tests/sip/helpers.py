"""Test helpers: a manual clock and a tiny scripted SIP peer that writes requests the way sipp/baresip do."""

from __future__ import annotations

from dataclasses import dataclass, field

from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.message import Request, Response
from sip_bridge.sip.parser import parse_datagram
from sip_bridge.sip.useragent import UserAgent

PEER = ("127.0.0.1", 5099)
SDP_OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
SDP_ANSWER = (
    b"v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n"
)


@dataclass
class ManualClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A UserAgent on 127.0.0.1:5060 with a manual clock; ``sent`` collects parsed outgoing messages, ``pongs``
    the CRLF answers to TCP keep-alives."""

    settings: UserAgentConfig = field(default_factory=UserAgentConfig)
    clock: ManualClock = field(default_factory=ManualClock)
    ua: UserAgent = field(init=False)
    sent: list[tuple[Request | Response, tuple[str, int], str]] = field(default_factory=list)
    pongs: list[tuple[tuple[str, int], str]] = field(default_factory=list)  # CRLF keep-alive answers sent

    def __post_init__(self) -> None:
        self.ua = UserAgent(self.settings, local_host="127.0.0.1", local_port=5060, clock=self.clock)

    def feed(self, data: bytes | str, source: tuple[str, int] = PEER, transport: str = "udp") -> list:
        raw = data.encode() if isinstance(data, str) else data
        self.ua.receive(raw, source, transport)
        return self.drain()

    def drain(self) -> list:
        out = []
        for item in self.ua.outgoing():
            if item.data == b"\r\n":
                self.pongs.append((item.dest, item.transport))
                continue
            message = parse_datagram(item.data)
            self.sent.append((message, item.dest, item.transport))
            out.append(message)
        return out

    def advance(self, seconds: float) -> list:
        self.clock.now += seconds
        self.ua.handle_timers(self.clock.now)
        return self.drain()

    def run_timers_until(self, seconds: float, step: float = 0.25) -> list:
        out = []
        end = self.clock.now + seconds
        while self.clock.now < end:
            out += self.advance(step)
        return out


def sip_request(
    method: str,
    *,
    call_id: str = "call-1@127.0.0.1",
    branch: str = "z9hG4bK-test-1",
    cseq: int = 1,
    from_tag: str = "peer-tag",
    to_tag: str | None = None,
    uri: str = "sip:hotline@127.0.0.1:5060",
    body: bytes = b"",
    content_type: str = "application/sdp",
    extra: str = "",
    cseq_method: str | None = None,
    via_host: str = "127.0.0.1:5099",
) -> bytes:
    to = "<sip:hotline@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host};branch={branch};rport\r\n"
        f'From: "Bürger" <sip:caller@127.0.0.1>;tag={from_tag}\r\n'
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Max-Forwards: 70\r\n"
        "Contact: <sip:caller@127.0.0.1:5099>\r\n"
        f"{extra}"
    )
    if body:
        head += f"Content-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def response_to(
    request: Request,
    status: int,
    reason: str = "OK",
    *,
    to_tag: str | None = "remote-tag",
    extra: str = "",
    body: bytes = b"",
    content_type: str = "application/sdp",
) -> bytes:
    """A response a peer would send to one of OUR requests."""
    lines = [f"SIP/2.0 {status} {reason}"]
    for value in request.headers.lines("Via"):
        lines.append(f"Via: {value}")
    lines.append(f"From: {request.headers.get('From')}")
    to = request.headers.get("To") or ""
    if to_tag and ";tag=" not in to and status > 100:
        to += f";tag={to_tag}"
    lines.append(f"To: {to}")
    lines.append(f"Call-ID: {request.call_id}")
    lines.append(f"CSeq: {request.headers.get('CSeq')}")
    if status < 300 and request.method in ("INVITE", "SUBSCRIBE", "REFER") and status > 100:
        lines.append("Contact: <sip:peer@127.0.0.1:5099>")
    if extra:
        lines.extend(extra.rstrip("\r\n").split("\r\n"))
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
