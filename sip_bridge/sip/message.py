"""SIP message model (RFC 3261 section 7, 19, 20, 25): requests, responses, headers, URIs, name-addr, Via.

Values are kept as the text that was received (so a response copies Via/From/To/Call-ID/CSeq byte for byte, as
RFC 3261 8.2.6.2 asks) and parsed on demand by the small typed helpers below. Every helper raises
:class:`SipSyntaxError` on bad input; the parser turns that into a 400 where a response can be built.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote

_Parsed = TypeVar("_Parsed")

SIP_VERSION = "SIP/2.0"
MAGIC_COOKIE = "z9hG4bK"

# RFC 3261 7.3.3 + IANA: compact form -> canonical name.
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
}
_CANONICAL = {
    name.lower(): name
    for name in [
        "Via",
        "Max-Forwards",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Record-Route",
        "Route",
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Retry-After",
        "User-Agent",
        "Server",
        "Subject",
        "Expires",
        "Min-Expires",
        "Date",
        "Event",
        "Allow-Events",
        "Subscription-State",
        "Refer-To",
        "Referred-By",
        "Session-Expires",
        "Reason",
        "Warning",
        "WWW-Authenticate",
        "Authorization",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Authentication-Info",
        "Timestamp",
    ]
}
# Headers that may be combined into one comma-separated line (RFC 3261 7.3.1). Only these are split on commas.
LIST_HEADERS = frozenset(
    name.lower()
    for name in [
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Allow-Events",
        "In-Reply-To",
        "Content-Encoding",
    ]
)
# Headers that must appear at most once (RFC 4475 3.3.9 multi01, 3.3.8 mcl01).
SINGLE_HEADERS = frozenset(
    name.lower()
    for name in ["From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type", "Expires"]
)

TOKEN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


class SipSyntaxError(ValueError):
    """A message or header value that RFC 3261's grammar does not allow."""


MAX_NUMBER_DIGITS = 10  # every number we read (CSeq, Content-Length, Expires, ...) fits in 10 ASCII digits
MAX_CALL_ID_LENGTH = 256
# RFC 3261 25.1: callid = word [ "@" word ]; word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`"
# / "'" / "~" / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(f"{_WORD}(?:@{_WORD})?")
_ASCII_DIGITS = re.compile(r"[0-9]+")
# A raw NUL is only legal as a quoted-pair (RFC 3261 25.1, RFC 4475 3.1.1.2); bytes that are not UTF-8 arrive as
# lone surrogates (the parser decodes with surrogateescape).
_FORBIDDEN_TEXT = re.compile(r"(?<!\\)\x00|[\udc80-\udcff]")


def parse_number(text: str, *, max_digits: int = MAX_NUMBER_DIGITS, maximum: int | None = None) -> int:
    """A non-negative decimal of ASCII digits only, at most ``max_digits`` long and at most ``maximum``.

    ``str.isdigit``/``int`` are not enough: they accept "٣" (Arabic-Indic three) and "²", and ``int`` raises a
    plain ValueError for thousands of digits.
    """
    text = text.strip(" \t")
    if len(text) > max_digits or not _ASCII_DIGITS.fullmatch(text):
        raise SipSyntaxError(f"not a number of at most {max_digits} digits: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SipSyntaxError(f"number too large: {text!r}")
    return value


def is_valid_call_id(text: str) -> bool:
    """RFC 3261 ``callid`` syntax, at most 256 characters (the Call-ID names calls in logs and records)."""
    return len(text) <= MAX_CALL_ID_LENGTH and _CALL_ID.fullmatch(text) is not None


def has_forbidden_characters(text: str) -> bool:
    """A NUL outside a quoted-pair, or bytes that were not UTF-8 (RFC 3261 7.3.1: header text is UTF-8)."""
    return _FORBIDDEN_TEXT.search(text) is not None


@functools.lru_cache(maxsize=1024)
def canonical_name(name: str) -> str:
    """``v`` -> ``Via``, ``cseq`` -> ``CSeq``; unknown names keep their spelling."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on ``separator`` except inside quoted strings and ``<...>`` (header lists, parameters)."""
    if '"' not in text and "<" not in text:
        return text.split(separator)  # the common case, without the character loop
    parts: list[str] = []
    current: list[str] = []
    in_quotes = escaped = False
    depth = 0
    for ch in text:
        if in_quotes:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
            continue
        if ch == '"':
            in_quotes = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if in_quotes:
        raise SipSyntaxError(f"unbalanced quotes in {text!r}")
    parts.append("".join(current))
    return parts


class Headers:
    """Ordered, case-insensitive multi-dict of header lines; compact names are stored canonical."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str, str]] = []  # (canonical name, lower-case name, value)
        for name, value in items or []:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        name = canonical_name(name)
        self._items.append((name, name.lower(), value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` by one line, keeping the position of the first."""
        name = canonical_name(name)
        lower = name.lower()
        for index, item in enumerate(self._items):
            if item[1] == lower:
                self._items[index] = (name, lower, value)
                self._items = [item for i, item in enumerate(self._items) if i <= index or item[1] != lower]
                return
        self._items.append((name, lower, value))

    def replace_first(self, name: str, value: str) -> None:
        """Replace the first line of ``name`` (e.g. the top Via line), leaving the others."""
        lower = canonical_name(name).lower()
        for index, item in enumerate(self._items):
            if item[1] == lower:
                self._items[index] = (item[0], lower, value)
                return
        raise KeyError(name)

    def remove(self, name: str) -> None:
        lower = canonical_name(name).lower()
        self._items = [item for item in self._items if item[1] != lower]

    def get(self, name: str, default: str | None = None) -> str | None:
        lower = canonical_name(name).lower()
        for _, existing, value in self._items:
            if existing == lower:
                return value
        return default

    def lines(self, name: str) -> list[str]:
        """Every header line of ``name`` as received (not split on commas)."""
        lower = canonical_name(name).lower()
        return [value for _, existing, value in self._items if existing == lower]

    def values(self, name: str) -> list[str]:
        """All values of a list header (comma-split outside quotes and brackets), stripped."""
        lines = self.lines(name)
        if canonical_name(name).lower() not in LIST_HEADERS:
            return [line.strip() for line in lines]
        return [part.strip() for line in lines for part in split_outside_quotes(line, ",")]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([(name, value) for name, _, value in self._items])

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone


def _parse_params(text: str, *, decode: bool = False) -> dict[str, str | None]:
    """``;a=1;b`` (leading ``;`` included) -> {"a": "1", "b": None}; names lower-cased."""
    params: dict[str, str | None] = {}
    if not text.strip():
        return params
    pieces = split_outside_quotes(text, ";")
    if pieces[0].strip():
        raise SipSyntaxError(f"garbage before parameters: {text!r}")
    for piece in pieces[1:]:
        name, eq, value = piece.partition("=")
        name = name.strip()
        if not name:
            raise SipSyntaxError(f"empty parameter in {text!r}")
        if decode:
            name = unquote(name, errors="surrogateescape")
        elif not is_token(name):
            raise SipSyntaxError(f"bad parameter name {name!r}")
        if eq:
            value = value.strip()
            if not value:
                raise SipSyntaxError(f"parameter {name!r} has an empty value")
            params[name.lower()] = unquote(value, errors="surrogateescape") if decode else value
        else:
            params[name.lower()] = None
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.+)$", re.DOTALL)
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?\.?)(?::([0-9]{1,5}))?$")
_URI_UNRESERVED_USER = set("-_.!~*'()&=+$,;?/") | set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%"
)


@dataclass
class URI:
    """A SIP/SIPS URI (parsed parts) or any other absolute URI (``opaque`` only, e.g. ``tel:``, ``http:``)."""

    scheme: str
    user: str | None = None  # percent-decoded
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)  # percent-decoded, names lower-case
    headers: str | None = None  # raw text after "?"
    opaque: str | None = None  # the part after "scheme:" for non-SIP schemes
    raw: str = ""

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    @property
    def transport(self) -> str:
        return (self.params.get("transport") or "udp").lower()

    def __str__(self) -> str:
        if self.raw:
            return self.raw
        if not self.is_sip:
            return f"{self.scheme}:{self.opaque}"
        text = f"{self.scheme}:"
        if self.user is not None:
            text += _escape_user(self.user) + (f":{self.password}" if self.password is not None else "") + "@"
        text += self.host + (f":{self.port}" if self.port else "") + _format_params(self.params)
        if self.headers:
            text += "?" + self.headers
        return text

    @classmethod
    def parse(cls, text: str) -> URI:
        text = text.strip()
        match = _SCHEME.match(text)
        if not match or any(ch in text for ch in ' \t<>"\r\n'):
            raise SipSyntaxError(f"not an absolute URI: {text!r}")
        scheme, rest = match.group(1).lower(), match.group(2)
        if scheme not in ("sip", "sips"):
            return cls(scheme=scheme, opaque=rest, raw=text)
        userinfo, at, hostpart = rest.rpartition("@")
        user = password = None
        if at:
            if not userinfo:
                raise SipSyntaxError(f"empty user part in {text!r}")
            if any(ch not in _URI_UNRESERVED_USER and ch != ":" for ch in userinfo):
                raise SipSyntaxError(f"bad character in user part of {text!r}")
            raw_user, colon, raw_password = userinfo.partition(":")
            user = unquote(raw_user, errors="surrogateescape")
            password = unquote(raw_password, errors="surrogateescape") if colon else None
        hostpart, question, headers = hostpart.partition("?")
        hostport, semicolon, param_text = hostpart.partition(";")
        host_match = _HOST.match(hostport)
        if not host_match:
            raise SipSyntaxError(f"bad host in {text!r}")
        port = int(host_match.group(2)) if host_match.group(2) else None
        if port is not None and not 0 < port < 65536:
            raise SipSyntaxError(f"bad port in {text!r}")
        params = _parse_params(";" + param_text, decode=True) if semicolon else {}
        return cls(
            scheme=scheme,
            user=user,
            password=password,
            host=host_match.group(1).lower(),
            port=port,
            params=params,
            headers=headers if question else None,
            raw=text,
        )


def _escape_user(user: str) -> str:
    return "".join(
        ch if ch in _URI_UNRESERVED_USER and ch not in "%;?" else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in user
    )


def _parse_quoted(text: str) -> tuple[str, str]:
    """``"a \\"b\\"" rest`` -> ('a "b"', ' rest'); text starts at the opening quote."""
    out: list[str] = []
    index = 1
    while index < len(text):
        ch = text[index]
        if ch == "\\":
            if index + 1 >= len(text):
                break
            out.append(text[index + 1])
            index += 2
            continue
        if ch == '"':
            return "".join(out), text[index + 1 :]
        out.append(ch)
        index += 1
    raise SipSyntaxError(f"unterminated quoted string: {text!r}")


@dataclass
class NameAddr:
    """From/To/Contact/Route value: optional display name, URI, header parameters (``tag``, ``expires``...)."""

    uri: URI
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = ""
        if self.display_name:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{_format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if not text:
            raise SipSyntaxError("empty address")
        display: str | None = None
        rest = text
        if rest.startswith('"'):
            display, rest = _parse_quoted(rest)
            rest = rest.lstrip()
            if not rest.startswith("<"):
                raise SipSyntaxError(f"quoted display name without <uri>: {text!r}")
        if "<" in rest:
            before, _, after = rest.partition("<")
            if display is None:
                words = before.split()
                if any(not is_token(word) for word in words):
                    raise SipSyntaxError(f"display name must be tokens or quoted: {text!r}")
                display = " ".join(words) or None
            elif before.strip():
                raise SipSyntaxError(f"text between display name and <uri>: {text!r}")
            uri_text, closing, param_text = after.partition(">")
            if not closing:
                raise SipSyntaxError(f"missing '>' in {text!r}")
            if uri_text != uri_text.strip():
                raise SipSyntaxError(f"whitespace inside <...> in {text!r}")
            uri = URI.parse(uri_text)
            return cls(uri=uri, display_name=display, params=_parse_params(param_text))
        # addr-spec form: parameters after the URI belong to the header, and a URI with "?" must be bracketed.
        uri_text, semicolon, param_text = rest.partition(";")
        uri_text = uri_text.strip()
        if any(ch in uri_text for ch in " \t,?"):
            raise SipSyntaxError(f"addr-spec with spaces, commas or headers must use <...>: {text!r}")
        uri = URI.parse(uri_text)
        params = _parse_params(";" + param_text) if semicolon else {}
        return cls(uri=uri, params=params)


_VIA = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^\s;]+)\s*(;.*)?$", re.DOTALL)


@dataclass
class Via:
    """One Via value: transport, sent-by and parameters (branch, received, rport, maddr, ttl)."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def has_rfc3261_branch(self) -> bool:
        branch = self.branch or ""
        return branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE)

    @property
    def sent_by(self) -> str:
        return f"{self.host}:{self.port or 5060}"

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"SIP/2.0/{self.transport.upper()} {self.host}{port}{_format_params(self.params)}"

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA.match(text.strip())
        if not match:
            raise SipSyntaxError(f"bad Via: {text!r}")
        host_match = _HOST.match(match.group(2))
        if not host_match:
            raise SipSyntaxError(f"bad Via sent-by: {text!r}")
        port = int(host_match.group(2)) if host_match.group(2) else None
        if port is not None and not 0 < port < 65536:
            raise SipSyntaxError(f"bad Via port: {text!r}")
        params = _parse_params(re.sub(r"\s*=\s*", "=", match.group(3) or ""))
        for name in ("branch", "received", "maddr"):
            if name in params and params[name] is None:
                raise SipSyntaxError(f"Via parameter {name} needs a value: {text!r}")
        return cls(match.group(1).upper(), host_match.group(1).lower(), port, params)


@dataclass
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not is_token(parts[1]):
            raise SipSyntaxError(f"bad CSeq: {text[:80]!r}")
        return cls(parse_number(parts[0], maximum=2**31 - 1), parts[1])  # RFC 3261 8.1.1.5: below 2**31


@dataclass
class Message:
    """Common part of requests and responses. ``body`` is raw bytes; Content-Length is set on serialization."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    # Parsed header values by (kind, text): the UA reads From/To/Via/CSeq several times per message. Keyed by the
    # text, so a changed header is parsed again; callers must not mutate what the accessors return.
    _parsed: dict[tuple[str, str], object] = field(default_factory=dict, repr=False, compare=False)

    def _memo(self, kind: str, text: str, parse: Callable[[str], _Parsed]) -> _Parsed:
        key = (kind, text)
        value = self._parsed.get(key)
        if value is None:
            value = parse(text)
            self._parsed[key] = value
        return value  # type: ignore[return-value]

    # -- typed accessors (raise SipSyntaxError when the header is missing or malformed) --
    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipSyntaxError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return self._memo("cseq", self._required("CSeq"), CSeq.parse)

    @property
    def from_(self) -> NameAddr:
        return self._memo("addr", self._required("From"), NameAddr.parse)

    @property
    def to(self) -> NameAddr:
        return self._memo("addr", self._required("To"), NameAddr.parse)

    @property
    def vias(self) -> list[Via]:
        return [self._memo("via", value, Via.parse) for value in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.values("Via")
        if not values:
            raise SipSyntaxError("missing Via header")
        return self._memo("via", values[0], Via.parse)

    @property
    def contacts(self) -> list[NameAddr]:
        return [
            self._memo("addr", value, NameAddr.parse)
            for value in self.headers.values("Contact")
            if value != "*"
        ]

    @property
    def content_type(self) -> str:
        value = self.headers.get("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        lines = [self._start_line()]
        lines.extend(f"{name}: {value}" for name, value in self.headers if name != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", errors="surrogateescape") + self.body


@dataclass
class Request(Message):
    method: str = "OPTIONS"
    uri: str = ""

    @property
    def request_uri(self) -> URI:
        return self._memo("uri", self.uri, URI.parse)

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass
class Response(Message):
    status: int = 200
    reason: str = "OK"

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
    603: "Decline",
}


def build_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response copying Via/From/To/Call-ID/CSeq from the request (RFC 3261 8.2.6.2); adds a To tag if asked."""
    headers = Headers()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.lines(name):
            headers.add(name, value)
    to_value = headers.get("To")
    if to_tag and to_value is not None and status != 100:
        try:
            if NameAddr.parse(to_value).tag is None:
                headers.set("To", f"{to_value.strip()};tag={to_tag}")
        except SipSyntaxError:
            pass
    if status == 100 and "Timestamp" in request.headers:
        headers.add("Timestamp", request.headers.get("Timestamp") or "")
    return Response(headers=headers, status=status, reason=reason or REASONS.get(status, "Unknown"))
