"""HTTP digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 7616): MD5 / SHA-256, qop=auth or none.

Client side: answer a 401/407 challenge. Server side: challenge inbound INVITEs with a nonce that is an HMAC of
a timestamp of the caller's clock (stateless: no table of nonces to grow) and check the response.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .message import SipSyntaxError, split_outside_quotes

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """``Digest realm="x", nonce="y"`` -> ("digest", {"realm": "x", "nonce": "y"})."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for part in split_outside_quotes(rest, ","):
        name, eq, raw = part.strip().partition("=")
        if not name.strip():
            continue
        if not eq:
            raise SipSyntaxError(f"bad auth parameter {part!r}")
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[name.strip().lower()] = raw
    return scheme.lower(), params


def _hash(algorithm: str, text: str) -> str:
    factory = _HASHES.get(algorithm.upper().removesuffix("-SESS"))
    if factory is None:
        raise SipSyntaxError(f"unsupported digest algorithm {algorithm!r}")
    return factory(text.encode("utf-8")).hexdigest()


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
) -> str:
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop:
        return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")


def authorization_header(
    challenge: dict[str, str], *, username: str, password: str, method: str, uri: str, nc: int = 1
) -> str:
    """The Authorization/Proxy-Authorization value answering ``challenge`` (params of a Digest challenge)."""
    algorithm = challenge.get("algorithm", "MD5")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    cnonce = os.urandom(8).hex() if qop else ""
    nc_text = f"{nc:08x}"
    response = digest_response(
        username=username,
        password=password,
        realm=challenge.get("realm", ""),
        nonce=challenge.get("nonce", ""),
        method=method,
        uri=uri,
        algorithm=algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
    )
    parts = [
        f'username="{username}"',
        f'realm="{challenge.get("realm", "")}"',
        f'nonce="{challenge.get("nonce", "")}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)


class DigestChallenger:
    """Server side for inbound requests: stateless HMAC nonces valid for ``nonce_ttl_s``."""

    def __init__(self, realm: str, username: str, password: str, nonce_ttl_s: float = 300.0) -> None:
        self.realm = realm
        self.username = username
        self.password = password
        self.nonce_ttl_s = nonce_ttl_s
        self._key = os.urandom(16)

    def _nonce(self, issued: int) -> str:
        mac = hmac.new(self._key, str(issued).encode(), hashlib.sha256).hexdigest()[:24]
        return f"{issued:x}.{mac}"

    def challenge(self, now: float) -> str:
        issued = max(0, int(now))
        return f'Digest realm="{self.realm}", nonce="{self._nonce(issued)}", algorithm=MD5, qop="auth"'

    def verify(self, authorization: str | None, method: str, now: float) -> bool:
        """True when ``authorization`` answers one of our fresh nonces with the right credentials."""
        if not authorization:
            return False
        try:
            scheme, params = parse_challenge(authorization)
            issued_hex, _, _ = params.get("nonce", "").partition(".")
            issued = int(issued_hex, 16)
        except (SipSyntaxError, ValueError):
            return False
        current = now
        if scheme != "digest" or params.get("nonce") != self._nonce(issued):
            return False
        if not 0 <= current - issued <= self.nonce_ttl_s:
            return False
        if params.get("username") != self.username or params.get("realm") != self.realm:
            return False
        try:
            expected = digest_response(
                username=self.username,
                password=self.password,
                realm=self.realm,
                nonce=params["nonce"],
                method=method,
                uri=params.get("uri", ""),
                algorithm=params.get("algorithm", "MD5"),
                qop=params.get("qop"),
                nc=params.get("nc", ""),
                cnonce=params.get("cnonce", ""),
            )
        except SipSyntaxError:
            return False
        return hmac.compare_digest(expected, params.get("response", ""))
