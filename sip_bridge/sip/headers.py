"""Extra header fields the application asks for on the requests it originates (an INVITE, a REFER), checked here
so that no caller of the library can break the message or take over a field the user agent owns.

- :func:`checked_headers`: names must be RFC 3261 tokens and not a field the UA writes itself (Via, From, To,
  Call-ID, CSeq, Contact, Route, Refer-To, auth, body fields ...); values are one line of printable text (no CR,
  LF, NUL or other control character: no header injection), at most :data:`MAX_VALUE_CHARS` characters, at most
  :data:`MAX_EXTRA_HEADERS` fields.
- :func:`uri_with_headers`: header fields embedded in a SIP URI (``sip:staff@pbx?User-to-User=...``, RFC 3261
  19.1.1 and 25.1), each name and value %-escaped: how a REFER asks the transferee to put them on the INVITE it
  sends (RFC 3515 2.1; RFC 7433 4.1 for User-to-User).
- :func:`user_to_user`: an RFC 7433 ``User-to-User`` value (hex-encoded data with its ``encoding``, ``purpose``
  and ``content`` parameters); :func:`call_info`: an RFC 3261 20.9 ``Call-Info`` value (``<URL>;purpose=info``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .message import URI, is_token

MAX_EXTRA_HEADERS = 8
MAX_VALUE_CHARS = 1024
MAX_UUI_OCTETS = (
    128  # RFC 7434 5: ISDN carries at most 128 octets of user information (with the discriminator)
)

# Fields the user agent writes (or that frame the message): an application never sets them through ``headers``.
PROTECTED = frozenset(
    name.lower()
    for name in [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Content-Length",
        "Content-Type",
        "Content-Encoding",
        "Refer-To",
        "Referred-By",
        "Event",
        "Authorization",
        "Proxy-Authorization",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Allow",
        "Require",
        "Proxy-Require",
        "Supported",
        "User-Agent",
        "Expires",
        # compact forms (RFC 3261 7.3.3, RFC 3515)
        "i",
        "m",
        "l",
        "c",
        "e",
        "f",
        "t",
        "v",
        "r",
        "b",
        "o",
        "k",
    ]
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # CR, LF, NUL, TAB and every other control character
# RFC 3261 25.1: hvalue/hname characters that stay as they are; everything else is %-escaped.
_HEADER_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + "-_.!~*'()" + "[]/?:+$"
)
_HEX = re.compile(r"[0-9A-Fa-f]*")


def checked_headers(headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """``headers`` as (name, value) pairs after the checks of the module docstring; ValueError names the problem."""
    pairs = list((headers or {}).items())
    if len(pairs) > MAX_EXTRA_HEADERS:
        raise ValueError(f"at most {MAX_EXTRA_HEADERS} extra header fields, not {len(pairs)}")
    checked = []
    for name, value in pairs:
        if not isinstance(name, str) or not is_token(name):
            raise ValueError(f"header name {name!r} is not a token")
        if name.lower() in PROTECTED:
            raise ValueError(f"header {name} is written by the user agent itself")
        checked.append((name, checked_value(value)))
    return checked


def checked_value(value: str) -> str:
    """One line of text for a header value (surrounding blanks removed); ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("a header value is text")
    if _CONTROL.search(value):
        raise ValueError("a header value must not contain CR, LF or other control characters")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ValueError("a header value must be valid UTF-8 text")
    value = value.strip(" ")
    if not value:
        raise ValueError("empty header value")
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"header value longer than {MAX_VALUE_CHARS} characters")
    return value


def escape_header_part(text: str) -> str:
    """``text`` as an RFC 3261 ``hname``/``hvalue``: unreserved and hnv-unreserved characters kept, every other
    byte of its UTF-8 form %XX-escaped (``;`` → ``%3B``, ``=`` → ``%3D``, ``<`` → ``%3C``, ``&`` → ``%26``)."""
    return "".join(
        ch if ch in _HEADER_SAFE else "".join(f"%{byte:02X}" for byte in ch.encode("utf-8")) for ch in text
    )


def uri_with_headers(uri: str, headers: Mapping[str, str] | None) -> str:
    """The SIP URI ``uri`` with ``headers`` (checked as by :func:`checked_headers`) appended as its ``?name=value``
    part, joined with ``&`` to headers it already has. Raises ValueError for a URI that is not SIP."""
    parsed = URI.parse(uri)
    if not parsed.is_sip:
        raise ValueError(f"not a SIP URI: {uri!r}")
    pairs = checked_headers(headers)
    if not pairs:
        return uri
    embedded = "&".join(f"{escape_header_part(name)}={escape_header_part(value)}" for name, value in pairs)
    return f"{uri}{'&' if parsed.headers else '?'}{embedded}"


def user_to_user(
    data: bytes,
    *,
    purpose: str | None = None,
    content: str | None = None,
) -> str:
    """An RFC 7433 ``User-to-User`` value carrying ``data`` hex-encoded: ``0461...;encoding=hex;purpose=...``.

    ``purpose`` names the UUI package (RFC 7433 4.2; absent means ``isdn-uui``), ``content`` its content type."""
    if not data:
        raise ValueError("User-to-User data is empty")
    if len(data) > MAX_UUI_OCTETS:
        raise ValueError(f"User-to-User data longer than {MAX_UUI_OCTETS} octets")
    value = f"{data.hex()};encoding=hex"
    for param, given in (("purpose", purpose), ("content", content)):
        if given is not None:
            if not is_token(given):
                raise ValueError(f"User-to-User {param} {given!r} is not a token")
            value += f";{param}={given}"
    return value


def parse_user_to_user(value: str) -> tuple[bytes, dict[str, str]]:
    """The data and parameters of a hex-encoded ``User-to-User`` value (what :func:`user_to_user` writes)."""
    data, *params = value.strip().split(";")
    parameters: dict[str, str] = {}
    for param in params:
        name, _, param_value = param.partition("=")
        parameters[name.strip().lower()] = param_value.strip()
    if parameters.get("encoding", "").lower() != "hex" or not _HEX.fullmatch(data) or len(data) % 2:
        raise ValueError(f"not a hex-encoded User-to-User value: {value[:80]!r}")
    return bytes.fromhex(data), parameters


def call_info(url: str, purpose: str = "info") -> str:
    """An RFC 3261 20.9 ``Call-Info`` value: ``<url>;purpose=info`` (``purpose``: info, icon, card or a token)."""
    parsed = URI.parse(checked_value(url))  # an absolute URI without blanks, quotes or angle brackets
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"Call-Info wants an http(s) URL, not {url!r}")
    if not is_token(purpose):
        raise ValueError(f"Call-Info purpose {purpose!r} is not a token")
    return f"<{url.strip()}>;purpose={purpose}"
