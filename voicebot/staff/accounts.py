"""Staff accounts: password hashing (argon2id, decision 0700) and the checks on names and passwords.

The database keeps only the hash string (algorithm, parameters and salt included), so the parameters can be raised
later: :func:`verify_password` tells when a stored hash should be renewed at the next successful sign-in.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from voicebot.db.models import Role

# RFC 9106's second recommended option (argon2id, t=3, 64 MiB, p=4): ≈ 0.1 s per hash on this 2-core machine,
# small enough for a sign-in, costly for an attacker with a stolen table. Also argon2-cffi's default.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # hashing is deliberately slow: no megabyte passwords
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ROLES = tuple(role.value for role in Role)


class AccountError(ValueError):
    """A name, role or password that cannot be used (one line saying why, in German for the console)."""


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise AccountError(
            "Benutzername: 1 bis 64 Zeichen, Kleinbuchstaben, Ziffern, Punkt, Binde- oder Unterstrich, "
            "am Anfang ein Buchstabe oder eine Ziffer"
        )
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountError(f"Rolle {role!r} gibt es nicht (erlaubt: {', '.join(ROLES)})") from None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"Passwort zu kurz: mindestens {MIN_PASSWORD_LENGTH} Zeichen")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"Passwort zu lang: höchstens {MAX_PASSWORD_LENGTH} Zeichen")
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> tuple[bool, bool]:
    """(the password matches, the hash should be renewed with today's parameters)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False, False
    try:
        _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, _HASHER.check_needs_rehash(stored_hash)


# Verified against when the user name is unknown, so a wrong name takes as long as a wrong password.
DUMMY_HASH = _HASHER.hash("not a password of anyone")
