"""HTTP digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 7616): MD5 / SHA-256, qop=auth or none.

Client side: answer a 401/407 challenge (MD5, SHA-256, with or without qop). Server side
(:class:`DigestChallenger`): challenge inbound INVITEs with SHA-256 first and MD5 second (RFC 8760), opaque
single-use-per-``nc`` nonces that expire, ``qop=auth`` and the Request-URI required, and a lockout after repeated
wrong answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import struct
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class DigestVerdict:
    """What to answer an INVITE: accept it, challenge it (401, ``stale`` when only the nonce was the problem), or
    refuse it for ``retry_after_s`` seconds (503) because of too many wrong answers."""

    accepted: bool
    stale: bool = False
    retry_after_s: int = 0


@dataclass
class _Nonce:
    issued: float
    highest_nc: int = 0


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


SERVER_ALGORITHMS = ("SHA-256", "MD5")  # offered in this order by default (RFC 8760: strongest first)
_UNKNOWN_USER = "\x00unknown"  # one failure bucket for every username that is not ours


class DigestChallenger:
    """Server side digest for inbound requests; nothing here reads a clock (``now`` is passed in).

    - Nonces are opaque: an HMAC of a per-process random key over the issue time and random bytes; the issue time
      is kept in a bounded table (``max_nonces``; the oldest are forgotten first), never sent.
    - A nonce lives ``nonce_ttl_s``; each use must carry a higher ``nc`` than the last one seen for it, so a
      replayed Authorization header does not open a second call. A right answer with an expired, unknown or used
      nonce gets a new challenge with ``stale=true`` (the client retries without asking anyone).
    - Only ``qop=auth`` answers (no RFC 2069 digests) whose ``uri`` is the Request-URI, with an offered algorithm
      (``algorithms``: SHA-256 then MD5; a client that reads only the first challenge and knows only MD5, such as
      SIPp 3.6, needs ``("MD5",)``).
    - Guessing: after ``max_failures`` wrong answers within ``failure_window_s`` for our username (or for all
      other usernames together) that username is refused for ``lockout_s`` (503 + Retry-After), whatever the
      source, except sources the caller marks as not lockable (trusted trunks; their failures still count).
    """

    def __init__(
        self,
        realm: str,
        username: str,
        password: str,
        nonce_ttl_s: float = 300.0,
        *,
        max_failures: int = 10,
        failure_window_s: float = 60.0,
        lockout_s: float = 300.0,
        max_nonces: int = 4096,
        algorithms: Sequence[str] = SERVER_ALGORITHMS,
    ) -> None:
        self.realm = realm
        self.username = username
        self.password = password
        self.nonce_ttl_s = nonce_ttl_s
        self.max_failures = max_failures
        self.failure_window_s = failure_window_s
        self.lockout_s = lockout_s
        self.max_nonces = max_nonces
        self.algorithms = tuple(a.upper() for a in algorithms)
        if not self.algorithms or not set(self.algorithms) <= set(SERVER_ALGORITHMS):
            raise ValueError(f"digest algorithms must be some of {SERVER_ALGORITHMS}, not {algorithms!r}")
        self._key = os.urandom(32)
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()
        self._failures: dict[str, _Failures] = {}

    # -- challenges ----------------------------------------------------------------------------------

    def _new_nonce(self, now: float) -> str:
        material = struct.pack(">d", now) + os.urandom(16)
        nonce = base64.urlsafe_b64encode(hmac.digest(self._key, material, "sha256")[:24]).decode("ascii")
        self._forget_old_nonces(now)
        self._nonces[nonce] = _Nonce(issued=now)
        return nonce

    def _forget_old_nonces(self, now: float) -> None:
        while self._nonces:
            oldest = next(iter(self._nonces.values()))
            if now - oldest.issued <= self.nonce_ttl_s and len(self._nonces) < self.max_nonces:
                break
            self._nonces.popitem(last=False)

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """WWW-Authenticate values for a 401: one fresh nonce, offered with each algorithm (SHA-256, then MD5)."""
        nonce = self._new_nonce(now)
        suffix = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={algorithm}, qop="auth"{suffix}'
            for algorithm in self.algorithms
        ]

    # -- answers -------------------------------------------------------------------------------------

    def check(
        self, authorization: str | None, method: str, request_uri: str, now: float, *, lockable: bool = True
    ) -> DigestVerdict:
        """Judge the Authorization header of a request (``method`` ``request_uri``) received at ``now``."""
        if not authorization:
            return DigestVerdict(False)
        try:
            scheme, params = parse_challenge(authorization)
        except SipSyntaxError:
            return DigestVerdict(False)
        if scheme != "digest":
            return DigestVerdict(False)
        bucket = self._failures.get(self._bucket(params.get("username", "")))
        if lockable and bucket is not None and bucket.locked_until > now:
            return DigestVerdict(False, retry_after_s=max(1, math.ceil(bucket.locked_until - now)))
        if not self._right_answer(params, method, request_uri):
            self._count_failure(params.get("username", ""), now)
            return DigestVerdict(False)
        entry = self._nonces.get(params["nonce"])
        nc = int(params["nc"], 16)
        if entry is None or now - entry.issued > self.nonce_ttl_s or nc <= entry.highest_nc:
            # the right password with an unusable nonce (expired, unknown or replayed): retry with a fresh one
            return DigestVerdict(False, stale=True)
        entry.highest_nc = nc
        return DigestVerdict(True)

    def verify(
        self, authorization: str | None, method: str, request_uri: str, now: float, *, lockable: bool = True
    ) -> bool:
        """True when ``authorization`` is accepted (a shorthand of :meth:`check`)."""
        return self.check(authorization, method, request_uri, now, lockable=lockable).accepted

    def _right_answer(self, params: dict[str, str], method: str, request_uri: str) -> bool:
        """The answer is well formed (qop=auth, nc, cnonce, our realm/username/algorithms, the Request-URI) and
        its response is the digest of our password."""
        algorithm = params.get("algorithm", "MD5")
        nc = params.get("nc", "")
        if (
            params.get("qop") != "auth"
            or len(nc) != 8
            or any(ch not in "0123456789abcdefABCDEF" for ch in nc)
            or not params.get("cnonce")
            or not params.get("nonce")
            or params.get("uri") != request_uri
            or params.get("realm") != self.realm
            or not hmac.compare_digest(params.get("username", "").encode(), self.username.encode())
            or algorithm.upper() not in self.algorithms
        ):
            return False
        expected = digest_response(
            username=self.username,
            password=self.password,
            realm=self.realm,
            nonce=params["nonce"],
            method=method,
            uri=request_uri,
            algorithm=algorithm,
            qop="auth",
            nc=nc,
            cnonce=params["cnonce"],
        )
        return hmac.compare_digest(expected.encode(), params.get("response", "").lower().encode())

    # -- guessing limit ------------------------------------------------------------------------------

    def _bucket(self, username: str) -> str:
        return self.username if username == self.username else _UNKNOWN_USER

    def _count_failure(self, username: str, now: float) -> None:
        bucket = self._failures.setdefault(self._bucket(username), _Failures())
        bucket.times.append(now)
        while bucket.times and bucket.times[0] <= now - self.failure_window_s:
            bucket.times.popleft()
        if len(bucket.times) >= self.max_failures:
            bucket.locked_until = now + self.lockout_s
            bucket.times.clear()
