"""Strict RFC 3261 parser: datagram parsing, TCP stream framing by Content-Length, and request validation.

Why our own parser (see docs/decisions/0300-sip-parser.md): the torture suite (RFC 4475) needs exact 400/505
decisions, a parse that survives odd-but-valid input (folding, compact forms, escapes, UTF-8), and stream framing
for TCP; the available library neither frames streams nor rejects most invalid messages.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .message import (
    SINGLE_HEADERS,
    CSeq,
    Headers,
    NameAddr,
    Request,
    Response,
    SipSyntaxError,
    canonical_name,
    has_forbidden_characters,
    is_token,
    is_valid_call_id,
    parse_number,
)

MAX_MESSAGE_BYTES = 65535
_VERSION = re.compile(r"^SIP/([0-9]{1,3})\.([0-9]{1,3})$")  # [0-9], not \d: \d also matches "٣"
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([0-9]{3}) (.*)$", re.DOTALL)


class ParseError(Exception):
    """A message that cannot be accepted. ``status`` is the response to send (400/505) when ``request`` is set.

    ``reason`` is the detail for the log; it may quote the peer's text, so it never goes into a reply.
    """

    def __init__(self, reason: str, status: int = 400, request: Request | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.request = request


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = data.find(separator)
        if index >= 0:
            return data[:index], data[index + len(separator) :]
    return data.rstrip(b"\r\n"), b""  # datagram without the empty line: the headers end with the datagram


def _unfold(head: str) -> list[str]:
    """Header lines with continuation lines (leading SP/HT) joined by one space (RFC 3261 7.3.1)."""
    lines: list[str] = []
    for raw in re.split(r"\r?\n", head):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] = lines[-1].rstrip() + " " + raw.strip()
        else:
            lines.append(raw)
    return lines


def _parse_head(head_bytes: bytes) -> Request | Response:
    head = head_bytes.decode("utf-8", errors="surrogateescape").lstrip("\r\n")
    lines = _unfold(head)
    if not lines or not lines[0]:
        raise ParseError("empty message")
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip(" \t")
        if not colon or not is_token(name):
            raise ParseError(f"bad header line {line[:60]!r}")
        headers.add(name, value.strip())
    start = lines[0]
    if start.startswith("SIP/"):
        version = start.split(" ", 1)[0]
        if version != "SIP/2.0":
            raise ParseError(f"unsupported version {version!r}", 505)
        match = _STATUS_LINE.match(start)
        if not match or not 100 <= int(match.group(1)) <= 699:
            raise ParseError(f"bad status line {start[:60]!r}")
        return Response(headers=headers, status=int(match.group(1)), reason=match.group(2))
    parts = start.split(" ")
    request = Request(headers=headers, method=parts[0], uri=parts[1] if len(parts) > 1 else "")
    if len(parts) != 3 or not all(parts) or not is_token(parts[0]):
        raise ParseError(f"bad request line {start[:80]!r}", 400, request)
    if parts[2] != "SIP/2.0":
        status = 505 if _VERSION.match(parts[2]) else 400
        raise ParseError(f"unsupported version {parts[2]!r}", status, request)
    return request


def _content_length(message: Request | Response) -> int | None:
    values = message.headers.lines("Content-Length")
    if not values:
        return None
    if len(values) > 1:
        raise ParseError(
            "more than one Content-Length", 400, message if isinstance(message, Request) else None
        )
    try:
        return parse_number(values[0])
    except SipSyntaxError as exc:
        raise ParseError(str(exc), 400, message if isinstance(message, Request) else None) from None


def parse_datagram(data: bytes) -> Request | Response:
    """One UDP datagram -> message. A datagram carries exactly one message (RFC 3261 18.3)."""
    head, rest = _split_head(data)
    message = _parse_head(head)
    length = _content_length(message)
    if length is None:
        message.body = rest
    elif length > len(rest):
        raise ParseError(
            f"Content-Length {length} exceeds the {len(rest)} body bytes",
            400,
            message if isinstance(message, Request) else None,
        )
    else:
        message.body = rest[:length]
    return message


@dataclass
class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length; CRLFs between messages are skipped, and each run
    of them holding a double CRLF counts as one RFC 5626 keep-alive ping (the UA answers it with a CRLF pong)."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    _buffer: bytes = b""
    framed: int = 0  # messages cut so far (the transport's idle timeout watches it)
    keepalives: int = 0  # double-CRLF pings seen between messages (they count as activity too)

    @property
    def pending_bytes(self) -> int:
        """Bytes of a message that is not complete yet (the transport's read timeout runs while > 0)."""
        return len(self._buffer.lstrip(b"\r\n"))

    def _skip_keepalives(self) -> None:
        """Drop the CRLFs before the next message, counting a ping among them; while nothing else has come yet,
        the last three bytes are kept, so a ping split across TCP segments is still seen."""
        rest = self._buffer.lstrip(b"\r\n")
        lead = self._buffer[: len(self._buffer) - len(rest)]
        if b"\r\n\r\n" in lead:
            self.keepalives += 1
            self._buffer = rest
        elif rest:
            self._buffer = rest
        else:
            self._buffer = lead[-3:]

    def feed(self, data: bytes) -> list[Request | Response]:
        """Messages completed by ``data``. Raises ParseError when the stream cannot be framed any more."""
        self._buffer += data
        messages: list[Request | Response] = []
        while True:
            self._skip_keepalives()
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_message_bytes:
                    raise ParseError("header section too large")
                return messages
            message = _parse_head(self._buffer[:end])
            length = _content_length(message)
            length = length or 0  # RFC 3261 18.3: mandatory on streams; absent means no body
            if end + 4 + length > self.max_message_bytes:
                raise ParseError("message too large", 413, message if isinstance(message, Request) else None)
            if len(self._buffer) < end + 4 + length:
                return messages
            message.body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            messages.append(message)
            self.framed += 1


def validate_request(request: Request) -> tuple[int, str] | None:
    """RFC 3261 syntax rules a UAS enforces before it looks at the request: None or (status, detail).

    The detail is for the log only (it may quote the peer); the reply carries the fixed reason phrase.
    """
    headers = request.headers
    counts = Counter(name.lower() for name, _ in headers)
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not counts[name.lower()]:
            return 400, f"Missing {name}"
    for name in SINGLE_HEADERS:
        if counts[name] > 1:
            return 400, f"Duplicate {canonical_name(name)}"
    if has_forbidden_characters("\n".join(f"{name}:{value}" for name, value in headers)):
        return 400, "NUL or non-UTF-8 bytes in a header"
    if has_forbidden_characters(request.uri):
        return 400, "NUL or non-UTF-8 bytes in the Request-URI"
    if not is_valid_call_id(request.call_id):
        return 400, f"Bad Call-ID {request.call_id[:40]!r}"
    try:
        if not request.vias:
            return 400, "Missing Via"
        from_, to = request.from_, request.to
        cseq = CSeq.parse(headers.get("CSeq") or "")
        for contact in headers.values("Contact"):
            if contact != "*":
                NameAddr.parse(contact)
        for name in ("Route", "Record-Route"):
            for value in headers.values(name):
                NameAddr.parse(value)
        uri = request.request_uri
        max_forwards = headers.get("Max-Forwards")
        if max_forwards is not None:
            parse_number(max_forwards, maximum=255)
        expires = headers.get("Expires")
        if expires is not None:
            parse_number(expires)
    except SipSyntaxError as exc:
        return 400, _short(str(exc))
    del from_, to
    if uri.is_sip and uri.headers is not None:
        return 400, "Request-URI must not carry headers"
    if cseq.method != request.method:
        return 400, "CSeq method does not match the request method"
    date = headers.get("Date")
    if date is not None and not date.rstrip().endswith("GMT"):
        return 400, "Date must be in GMT"
    return None


def validate_response(response: Response) -> str | None:
    """What makes a response unusable before a transaction sees it: None or the detail for the log."""
    if has_forbidden_characters("\n".join(f"{name}:{value}" for name, value in response.headers)):
        return "NUL or non-UTF-8 bytes in a header"
    try:
        if len(response.vias) != 1:
            return "response with more than one Via"  # RFC 3261 8.1.3.3
        response.cseq  # noqa: B018 - parse what the transaction user will read
        response.from_  # noqa: B018
        response.to  # noqa: B018
        response.contacts  # noqa: B018
    except SipSyntaxError as exc:
        return _short(str(exc))
    if not is_valid_call_id(response.call_id):
        return "bad Call-ID"
    return None


def _short(text: str) -> str:
    """A log detail stays one short printable line."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:80]
