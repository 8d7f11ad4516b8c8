"""Staff sign-in sessions: HMAC-signed cookies, CSRF tokens and the key that signs both.

A session is a signed token in an HttpOnly, SameSite=Strict cookie (Secure over https): user id, expiry, a random
nonce and a fingerprint of the password hash. It is checked against the database on every request, so a disabled
account, a changed password or a changed role takes effect at once, and several ``voicebot serve`` processes with
the same key accept each other's sessions without a session table. Signing out forgets the nonce in this process
and deletes the cookie.

CSRF: every POST form carries a token. Signed in, it is an HMAC of the session's nonce; on the sign-in form (no
session yet) it is a random value that must equal the ``vb_csrf`` cookie (double submit; SameSite=Strict keeps
other sites from sending either).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from voicebot.settings import Settings

SESSION_COOKIE = "vb_sitzung"
CSRF_COOKIE = "vb_csrf"
MIN_SECRET_BYTES = 32


class SessionSecretError(ValueError):
    """The signing key cannot be used or made (one line saying what to fix)."""


def load_secret(settings: Settings) -> bytes:
    """``http.session_secret``, else the key file (made on first start, mode 0600, 32 random bytes as hex)."""
    configured = settings.http.session_secret
    if configured is not None:
        value = configured.get_secret_value().encode()
        if len(value) < MIN_SECRET_BYTES:
            raise SessionSecretError(f"http.session_secret must have at least {MIN_SECRET_BYTES} characters")
        return value
    path = settings.paths.session_secret_file
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it just now
        return _read_key(path)
    except OSError as error:
        raise SessionSecretError(f"cannot create the session key {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    if path.stat().st_mode & 0o077:  # readable by others: sessions could be forged by any local user
        raise SessionSecretError(f"the session key {path} must be readable by its owner only (chmod 600)")
    value = path.read_text(encoding="ascii").strip().encode()
    if len(value) < MIN_SECRET_BYTES:
        raise SessionSecretError(f"the session key {path} is too short; delete it to have a new one made")
    return value


@dataclass(frozen=True)
class SessionToken:
    user_id: int
    expires: int
    nonce: str
    password_fingerprint: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session tokens and CSRF tokens with one key."""

    def __init__(self, secret: bytes, max_age_s: int) -> None:
        self._secret = secret
        self.max_age_s = max_age_s
        self._ended: dict[str, int] = {}  # nonce → expiry: signed out in this process
        self._lock = threading.Lock()

    def _mac(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._secret, f"{purpose}|{text}".encode(), hashlib.sha256).digest())

    def fingerprint(self, password_hash: str) -> str:
        return self._mac("password", password_hash)[:16]

    def issue(self, user_id: int, password_hash: str) -> str:
        expires = int(time.time()) + self.max_age_s
        body = f"{user_id}.{expires}.{secrets.token_urlsafe(16)}.{self.fingerprint(password_hash)}"
        payload = _b64(body.encode())
        return f"{payload}.{self._mac('session', payload)}"

    def read(self, token: str | None) -> SessionToken | None:
        """The token's content if it is ours, unexpired and not signed out; None otherwise."""
        if not token or len(token) > 512 or token.count(".") != 1:
            return None
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            user_id, expires, nonce, fingerprint = _unb64(payload).decode().split(".")
            parsed = SessionToken(int(user_id), int(expires), nonce, fingerprint)
        except ValueError:
            return None
        if parsed.expires < time.time():
            return None
        with self._lock:
            if parsed.nonce in self._ended:
                return None
        return parsed

    def end(self, session: SessionToken) -> None:
        now = time.time()
        with self._lock:
            self._ended = {nonce: until for nonce, until in self._ended.items() if until >= now}  # bounded
            self._ended[session.nonce] = session.expires

    def csrf_token(self, session: SessionToken) -> str:
        return self._mac("csrf", session.nonce)

    def csrf_ok(self, session: SessionToken, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(str(submitted), self.csrf_token(session))


def new_form_token() -> str:
    return secrets.token_urlsafe(24)


def form_token_ok(cookie: str | None, submitted: str | None) -> bool:
    return bool(cookie) and bool(submitted) and hmac.compare_digest(str(cookie), str(submitted))


class SignInThrottle:
    """Locks sign-in for a user name or a source address after ``max_failures`` wrong passwords within
    ``lockout_s`` (guessing passwords online stays slow), for ``lockout_s`` after the last one. Bounded: at most
    ``max_keys`` names and addresses are remembered (the oldest are forgotten first)."""

    def __init__(self, max_failures: int, lockout_s: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._max_keys = max_keys
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.lockout_s]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def locked(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(key, now)) >= self.max_failures for key in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                self._failures.pop(key, None)  # re-inserted last: dict order is the order of last failure
                self._failures[key] = [*times, now][-self.max_failures :]
            while len(self._failures) > self._max_keys:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
