"""Where the bot rings a member of staff (``staff_users.phone_uri``) and which staff groups they take
(``staff_users.groups``): the checks the CLI (``voicebot users add|set``) and the console's forms share, and the
SIP URI a ``tel:`` number is dialled at (decision 0860). No argon2 here: the call path imports :func:`dial_uri`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence


class StaffSettingError(ValueError):
    """A phone address or group list that cannot be used (one line in German saying what to fix)."""


MAX_PHONE_URI_CHARS = 256  # the column's size
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])"
# RFC 3261 user part without ';' and '?' (no header or parameter tricks before the '@'), host, port, parameters;
# no URI headers ('?...'): a phone address is where to ring, not what to send.
_SIP_URI = re.compile(
    rf"(?P<scheme>sips?):(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,/%]+)@)?(?P<host>{_HOST})"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<params>(?:;[A-Za-z0-9\-_.!~*'%]+(?:=[A-Za-z0-9\-_.!~*'%\[\]:]+)?)*)",
    re.IGNORECASE,
)
# RFC 3966 without parameters: a global number (+ and digits) or a local one, visual separators allowed.
_TEL_URI = re.compile(r"tel:(?P<number>\+?[0-9][0-9().-]*)", re.IGNORECASE)
MIN_TEL_DIGITS = 3
MAX_TEL_DIGITS = 20


def check_phone_uri(text: str, *, registrar: str | None) -> str:
    """The address the bot rings when this person accepts a caller, as given; "" for none. ``sip:``/``sips:`` with
    a host (``sip:anna@192.0.2.10:5062``), or ``tel:`` with digits (``tel:+49301234567``), which the bot dials via
    the PBX it registers at (``sip.registrar``; without one there is nobody to dial a number). One line in German
    saying what to fix otherwise."""
    uri = text.strip()
    if not uri:
        return ""
    if len(uri) > MAX_PHONE_URI_CHARS:
        raise StaffSettingError(f"Telefonadresse zu lang: höchstens {MAX_PHONE_URI_CHARS} Zeichen")
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in uri):
        raise StaffSettingError("Telefonadresse: ohne Leerzeichen, Zeilenumbrüche oder Sonderzeichen")
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme in ("sip", "sips"):
        match = _SIP_URI.fullmatch(uri)
        if match is None:
            raise StaffSettingError(
                "Telefonadresse: eine SIP-Adresse wie sip:anna@192.0.2.10 oder sip:201@pbx.musterstadt.de "
                "(Name@Rechner, Port und Parameter erlaubt, keine Header mit '?')"
            )
        port = match.group("port")
        if port is not None and not 1 <= int(port) <= 65535:
            raise StaffSettingError(f"Telefonadresse: Port {port} gibt es nicht (1 bis 65535)")
        return uri
    if scheme == "tel":
        match = _TEL_URI.fullmatch(uri)
        digits = sum(c.isdigit() for c in match.group("number")) if match else 0
        if match is None or not MIN_TEL_DIGITS <= digits <= MAX_TEL_DIGITS:
            raise StaffSettingError(
                f"Telefonadresse: eine Rufnummer wie tel:+49301234567 ({MIN_TEL_DIGITS} bis {MAX_TEL_DIGITS} "
                "Ziffern; + am Anfang, - . ( ) als Trenner erlaubt)"
            )
        if not registrar:
            raise StaffSettingError(
                "Telefonadresse: tel:-Rufnummern wählt die Telefonanlage, bei der sich der Bot anmeldet "
                "(sip.registrar ist nicht eingestellt); bitte eine sip:-Adresse angeben"
            )
        return uri
    raise StaffSettingError(
        "Telefonadresse: sie beginnt mit sip:, sips: oder tel: (z. B. sip:anna@192.0.2.10)"
    )


def dial_uri(phone_uri: str, registrar: str | None) -> str:
    """The SIP URI the bot's INVITE goes to: a ``sip:``/``sips:`` address as it is; a ``tel:`` number as
    ``sip:NUMBER@registrar;user=phone`` (RFC 3261 19.1.6), for the PBX to dial. ValueError without a registrar."""
    if not phone_uri.lower().startswith("tel:"):
        return phone_uri
    if not registrar:
        raise ValueError(f"{phone_uri!r} needs sip.registrar: the PBX dials the number")
    number = "".join(c for c in phone_uri[4:] if c.isdigit() or c == "+")
    target = registrar.strip()
    if target.lower().startswith(("sip:", "sips:")):
        scheme, _, target = target.partition(":")
    else:
        scheme = "sip"
    host = target.split(";", 1)[0].split("@")[-1]
    return f"{scheme.lower()}:{number}@{host};user=phone"


def check_groups(names: Iterable[str], configured: Sequence[str]) -> list[str]:
    """Group names as configured (``handoff.groups``), matched without regard to case, each once. An unknown
    name is refused: a typo would leave the member of staff silently without the callers they expect."""
    by_key = {name.casefold(): name for name in configured}
    chosen: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        found = by_key.get(name.casefold())
        if found is None:
            known = ", ".join(configured) if configured else "keine – handoff.groups ist leer"
            raise StaffSettingError(f"Gruppe {name!r} gibt es nicht (eingerichtet: {known})")
        if found not in chosen:
            chosen.append(found)
    if not chosen:
        raise StaffSettingError("Bitte mindestens eine Gruppe angeben (oder alle Gruppen wählen)")
    return chosen
