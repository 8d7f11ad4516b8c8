"""Way 1 of reaching staff (issue 10): the town's PBX has its own queue (hunt group, ACD), and the hand-off carries a
reference to the bot's summary of the call.

When a transfer starts, the caller gets a queue entry of mode ``pbx`` with an unguessable ``reference``
(:func:`new_reference`, 24 URL-safe characters from 18 random bytes). The transfer sends it along in two header
fields (:func:`handoff_headers`):

- ``Call-Info: <{http.console_url}/konsole/anruf/{reference}>;purpose=info`` (RFC 3261 20.9): the link a phone or
  agent desktop shows; the console page behind it needs a signed-in member of staff.
- ``User-to-User: 04...;encoding=hex;purpose=isdn-uui;content=isdn-uui`` (RFC 7433, package of RFC 7434): the
  reference as ISDN user-user information, protocol discriminator 0x04 (IA5 characters) followed by the
  reference's ASCII bytes, hex-encoded. A PBX passes this on to ISDN/QSIG phones and contact-centre software reads
  it (Asterisk ``PJSIP_HEADER(read,User-to-User)``, FreeSWITCH ``sip_h_User-to-User``).

On a REFER both fields go on the REFER itself: the REFER goes to the PBX or trunk that brought the call, which
reads the transferor's headers there (Asterisk ``GET_TRANSFERRER_DATA``, FreeSWITCH ``sip_h_`` variables of the
REFER). RFC 7433 4.1 also allows them escaped into the Refer-To URI, for a transferee that copies URI headers onto
the INVITE it sends (RFC 3261 19.1.5); that is opt-in (``sip.refer_to_headers``), because a transferee that does not
(baresip 1.0, seen in our interop test) puts them into its INVITE's Request-URI, where a PBX may refuse the call.
On the bot's own INVITE to staff (the bridge when REFER is refused) they are plain header fields. The entry becomes ``answered`` when the PBX took the call (REFER succeeded, or staff answered the
bridged INVITE) and ``abandoned`` when the transfer failed or the caller hung up first (decision 0830).

The database work here blocks: the transfer calls it from a worker thread.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from loguru import logger
from sqlalchemy.exc import IntegrityError

from sip_bridge.sip.headers import call_info, parse_user_to_user, user_to_user
from voicebot.db.models import QueueStatus
from voicebot.db.repository import Repository
from voicebot.records import CallRecordStore
from voicebot.settings import Settings

REFERENCE_BYTES = 18  # 144 random bits → 24 characters (the column holds 32)
UUI_PURPOSE = "isdn-uui"  # RFC 7434: the one registered UUI package; PBXs and ISDN gateways pass it on
IA5_DISCRIMINATOR = b"\x04"  # Q.931 user-user protocol discriminator: IA5 (ASCII) characters follow
CONSOLE_CALL_PATH = "/konsole/anruf/"


def new_reference() -> str:
    return secrets.token_urlsafe(REFERENCE_BYTES)


def summary_url(settings: Settings, reference: str) -> str:
    """The console page of this hand-off's summary."""
    return f"{settings.http.console_url()}{CONSOLE_CALL_PATH}{reference}"


def handoff_headers(settings: Settings, reference: str) -> dict[str, str]:
    """The Call-Info and User-to-User header values that carry ``reference`` (see the module docstring)."""
    data = IA5_DISCRIMINATOR + reference.encode("ascii")
    return {
        "Call-Info": call_info(summary_url(settings, reference)),
        "User-to-User": user_to_user(data, purpose=UUI_PURPOSE, content=UUI_PURPOSE),
    }


def reference_from_user_to_user(value: str) -> str | None:
    """The reference in a User-to-User value written by :func:`handoff_headers` (what a PBX script would read);
    None for any other value."""
    try:
        data, params = parse_user_to_user(value)
    except ValueError:
        return None
    if params.get("purpose", UUI_PURPOSE) != UUI_PURPOSE or not data.startswith(IA5_DISCRIMINATOR):
        return None
    try:
        return data[1:].decode("ascii")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class PbxEntry:
    entry_id: int
    reference: str
    headers: dict[str, str]


class PbxHandoffs:
    """The queue entries of PBX hand-offs, for :class:`~voicebot.telephony.transfer.Transfer`."""

    def __init__(
        self, settings: Settings, repository: Repository, records: CallRecordStore | None = None
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.records = records  # flushed once if the call's row is not written yet (the entry refers to it)

    def open(self, call_id: str, group: str, reason: str, caller_number: str) -> PbxEntry:
        """A waiting entry for this transfer, with its reference and the header values that carry it."""
        for attempt in range(2):
            reference = new_reference()
            try:
                entry = self.repository.enqueue_pbx(
                    call_id, group, reason, reference=reference, caller_number=caller_number
                )
            except IntegrityError:
                # The call's own row is written by the record store's thread and may still be on its way.
                if attempt or self.records is None:
                    raise
                logger.info(f"{call_id}: call record not written yet; flushing before the queue entry")
                self.records.flush(timeout_s=2.0)
                continue
            return PbxEntry(entry.id, reference, handoff_headers(self.settings, reference))
        raise AssertionError("unreachable")

    def answered(self, entry_id: int) -> bool:
        return self.repository.answered_by_pbx(entry_id)

    def ended(self, entry_id: int) -> bool:
        return self.repository.end_wait(entry_id, QueueStatus.ABANDONED)
