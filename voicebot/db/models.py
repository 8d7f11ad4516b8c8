"""The tables, as SQLAlchemy 2 typed declarative models. Every row about a call is keyed by the server-minted call
id (:func:`voicebot.records.new_call_id`), never by anything a peer sent.

Times of a call are kept as the record has them: ``started_at``/``ended_at``/``updated_at`` in seconds since the
epoch (UTC) as double precision, turn and event times in seconds since the call started. A float column gives the
record back bit for bit on SQLite and PostgreSQL alike (a timestamp column would round to microseconds).

A turn or event row keeps its whole dict in ``data`` (JSON; jsonb on PostgreSQL) and copies the fields a query
needs (role, kind, text, times) into columns: a field the transcript gains later is stored without a migration.

The migrations in ``migrations/versions`` create exactly these tables; a change here needs a new revision.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSON on SQLite, jsonb on PostgreSQL.
Json = JSON().with_variant(JSONB(), "postgresql")

CALL_ID_LENGTH = 40  # call_20261201T120842123Z_9f86d081884c is 37 characters


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Call(Base):
    """One call: who it came from (channel ids as the channel named them, escaped), when, how it ended."""

    __tablename__ = "calls"

    call_id: Mapped[str] = mapped_column(String(CALL_ID_LENGTH), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # sip | webrtc | simulation
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    sip_call_id: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[float] = mapped_column(Double, index=True)
    updated_at: Mapped[float] = mapped_column(Double, index=True)
    ended_at: Mapped[float | None] = mapped_column(Double)
    ended_reason: Mapped[str | None] = mapped_column(String(64), index=True)
    process: Mapped[dict[str, Any] | None] = mapped_column(Json)  # which process writes it (records.py)
    extra: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # any other top-level record fields


class CallTurn(Base):
    """A caller or bot turn, keyed by its index in the call (a turn is updated in place while the bot speaks)."""

    __tablename__ = "turns"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    start_s: Mapped[float | None] = mapped_column(Double)
    end_s: Mapped[float | None] = mapped_column(Double)
    data: Mapped[dict[str, Any]] = mapped_column(Json)


class CallEvent(Base):
    """Something that happened in a call (hand-off, transfer, DTMF action, ...), in order."""

    __tablename__ = "events"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    t: Mapped[float | None] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json)


class Role(enum.StrEnum):
    """What a staff account may do in the console (issue 10)."""

    STAFF = "staff"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Availability(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"


class QueueStatus(enum.StrEnum):
    WAITING = "waiting"  # the caller waits for staff
    OFFERED = "offered"  # a member of staff is being connected
    ANSWERED = "answered"  # staff took the call
    ABANDONED = "abandoned"  # the caller hung up (or the process died) while waiting
    CALLBACK = "callback"  # the wait ended with a call-back request


class CallbackStatus(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"  # nobody reached


def _one_of(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(value)) for value in values)})"


class StaffUser(Base):
    """A console account. ``password_hash`` is the whole hash string (algorithm and parameters included)."""

    __tablename__ = "staff_users"
    __table_args__ = (
        CheckConstraint(_one_of("role", Role), name="role"),
        CheckConstraint(_one_of("availability", Availability), name="availability"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), default=Role.STAFF.value)
    availability: Mapped[str] = mapped_column(String(16), default=Availability.AWAY.value)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Double)
    # Where the bot rings this person when they accept a waiting caller on their phone ("" = browser only).
    phone_uri: Mapped[str] = mapped_column(String(256), default="", server_default="")
    # The staff groups (handoff.groups names) whose callers they take; None = every group.
    groups: Mapped[list[str] | None] = mapped_column(Json)


class QueueMode(enum.StrEnum):
    QUEUE = "queue"  # the caller waits with the bot (announcements, hold audio) until staff accepts
    PBX = "pbx"  # the caller went to the PBX's own queue; the entry carries the summary reference


class QueueOutcome(enum.StrEnum):
    """Staff's wrap-up of a call they took."""

    SOLVED = "solved"
    CALLBACK = "callback"
    FORWARDED = "forwarded"


class QueueEntry(Base):
    """A caller handed to staff: in the bot's own queue, or transferred to the PBX's (then for the summary
    reference and the figures).

    Status: waiting → offered (one member of staff is being rung; back to waiting if they do not answer) →
    answered; or waiting → abandoned | callback."""

    __tablename__ = "queue_entries"
    __table_args__ = (
        CheckConstraint(_one_of("status", QueueStatus), name="status"),
        CheckConstraint(_one_of("mode", QueueMode), name="mode"),
        CheckConstraint(f"outcome IS NULL OR {_one_of('outcome', QueueOutcome)}", name="outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    group_name: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(64))  # why the bot handed off
    status: Mapped[str] = mapped_column(String(16), default=QueueStatus.WAITING.value, index=True)
    enqueued_at: Mapped[float] = mapped_column(Double, index=True)
    answered_at: Mapped[float | None] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    summary: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    process: Mapped[dict[str, Any] | None] = mapped_column(Json)  # which server holds the caller
    mode: Mapped[str] = mapped_column(String(8), default=QueueMode.QUEUE.value, server_default="queue")
    # An unguessable id for the summary link a PBX hand-off carries (Call-Info URL, User-to-User).
    reference: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)
    caller_number: Mapped[str] = mapped_column(String(64), default="", server_default="")
    offered_to: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    offered_at: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str | None] = mapped_column(String(16))
    wrap_up_note: Mapped[str] = mapped_column(Text, default="", server_default="")


class Callback(Base):
    """A call-back request: who, about what, which number (read back and confirmed), when it is due."""

    __tablename__ = "callbacks"
    __table_args__ = (CheckConstraint(_one_of("status", CallbackStatus), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), index=True)
    group_name: Mapped[str] = mapped_column(String(64), index=True)
    caller_name: Mapped[str] = mapped_column(Text, default="")
    topic: Mapped[str] = mapped_column(Text, default="")
    phone_number: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=CallbackStatus.OPEN.value, index=True)
    created_at: Mapped[float] = mapped_column(Double)
    due_at: Mapped[float] = mapped_column(Double, index=True)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    claimed_at: Mapped[float | None] = mapped_column(Double)
    done_at: Mapped[float | None] = mapped_column(Double)
    outcome_note: Mapped[str] = mapped_column(Text, default="")
    # How the number was given: "caller_id" (the number the caller rang from, confirmed), "keypad", "speech".
    number_via: Mapped[str] = mapped_column(String(16), default="", server_default="")


class AuditEntry(Base):
    """Who opened which call's transcript, who exported or deleted a caller's data, what a retention run deleted
    (issue 11). ``subject`` names the call id or the masked number, never what was said; ``details`` holds counts."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double, index=True)
    actor: Mapped[str] = mapped_column(String(96))  # "console:<user name>", "cli:<os user>", "retention"
    action: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(128), default="")
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class Correction(Base):
    """A supervisor's correction of one bot turn (issue 11, decision 0940): a draft until a second person approves
    it (then its page file under ``paths.corrections_dir`` is indexed: the next call answers with it) or rejects
    it; an applied one can be reverted. ``question`` is the caller's words of that turn (redacted as stored)."""

    __tablename__ = "corrections"
    __table_args__ = (
        CheckConstraint("kind IN ('wrong', 'missing')", name="kind"),
        CheckConstraint("status IN ('draft', 'approved', 'rejected', 'reverted')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(CALL_ID_LENGTH), index=True)
    turn_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    page_id: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    applied_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    file_path: Mapped[str] = mapped_column(String(500), default="")


class CallFlag(Base):
    """A call a supervisor marked for another look (the review's filter "markiert", issue 11, decision 0980): a
    row of its own, so the call record's writer (which rewrites the call's turns and events) never touches it;
    it goes with the call when the call is deleted."""

    __tablename__ = "call_flags"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True)
    flagged_by: Mapped[str] = mapped_column(String(64))
    flagged_at: Mapped[float] = mapped_column(Double)
