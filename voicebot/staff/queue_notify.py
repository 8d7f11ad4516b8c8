"""Staff accepts a caller of the bot's own queue: what the console calls (decision 0800).

:func:`accept` marks the waiting entry ``offered`` to the member of staff (``Repository.offer``, a conditional
update, so two members of staff cannot both take one caller) and tells the process that holds the caller at once:
on PostgreSQL with ``NOTIFY voicebot_queue`` (every ``voicebot serve`` sharing the database LISTENs,
:mod:`voicebot.telephony.queue`); on SQLite (one process) the holder notices on its next poll
(``queue.poll_interval_s``). The holder then rings the staff member's ``phone_uri`` and bridges the call.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from voicebot.db.models import Availability, QueueStatus, StaffUser
from voicebot.db.repository import Repository

CHANNEL = "voicebot_queue"  # the PostgreSQL notification channel; the payload is the entry id

# Why an accept did not go through, in the console's words.
ALREADY_TAKEN = "bereits angenommen"
CALLER_GONE = "Anrufer hat aufgelegt"
NO_PHONE = "keine Telefonnummer hinterlegt"
NOT_FOUND = "Anruf nicht gefunden"
NOT_IN_GROUP = "Sie gehören nicht zu dieser Gruppe"


def notify_queue(engine: Engine, entry_id: int) -> None:
    """Wake the processes holding queued callers (PostgreSQL ``pg_notify``; nothing to do on SQLite)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(entry_id)}
        )


def takes_group(user: StaffUser, group_name: str) -> bool:
    """Whether ``user`` takes callers of ``group_name`` (no groups set: every group)."""
    return user.groups is None or group_name in user.groups


def available_for(repository: Repository, group_name: str) -> list[StaffUser]:
    """Members of staff signed in as available who take ``group_name`` (a queue makes sense only with one)."""
    return [
        user
        for user in repository.staff_users()
        if not user.disabled
        and user.availability == Availability.AVAILABLE.value
        and takes_group(user, group_name)
    ]


def accept(repository: Repository, entry_id: int, staff_user: StaffUser) -> str | None:
    """``staff_user`` takes the waiting caller ``entry_id``: None when the caller is now being put through,
    else a German reason (:data:`ALREADY_TAKEN`, :data:`CALLER_GONE`, :data:`NO_PHONE`, ...)."""
    if not staff_user.phone_uri:
        return NO_PHONE
    entry = repository.queue_entry(entry_id)
    if entry is None:
        return NOT_FOUND
    if not takes_group(staff_user, entry.group_name):
        return NOT_IN_GROUP
    if not repository.offer(entry_id, staff_user.id):
        entry = repository.queue_entry(entry_id)
        if entry is not None and entry.status in (QueueStatus.OFFERED.value, QueueStatus.ANSWERED.value):
            return ALREADY_TAKEN
        return CALLER_GONE
    notify_queue(repository.engine, entry_id)
    return None
