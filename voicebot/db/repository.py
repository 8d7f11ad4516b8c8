"""A small typed API over the tables that the staff queue, call-backs and the console build on (issue 10). Only
storage: who may do what, and when a caller is queued or offered a call-back, is decided elsewhere.

Every method runs in its own transaction and returns detached ORM objects (their attributes stay readable after
the session closed). State changes are conditional updates (``WHERE status = ...``), so two processes sharing one
PostgreSQL cannot both take the same caller or claim the same call-back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from voicebot.db.models import (
    Availability,
    Callback,
    CallbackStatus,
    QueueEntry,
    QueueMode,
    QueueOutcome,
    QueueStatus,
    Role,
    StaffUser,
)


class Repository:
    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        """``clock``: the time every change is stamped with (seconds since the epoch; tests inject theirs)."""
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # --- staff -------------------------------------------------------------------------------------------

    def add_staff_user(
        self,
        username: str,
        password_hash: str,
        role: Role = Role.STAFF,
        display_name: str = "",
        *,
        phone_uri: str = "",
        groups: list[str] | None = None,
    ) -> StaffUser:
        """A new account (IntegrityError if the name is taken). The hash comes from the caller: this layer
        never sees a password."""
        user = StaffUser(
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            role=Role(role).value,
            availability=Availability.AWAY.value,
            disabled=False,
            created_at=self._clock(),
            phone_uri=phone_uri,
            groups=groups,
        )
        with self._sessions.begin() as session:
            session.add(user)
        return user

    def staff_user(self, username: str) -> StaffUser | None:
        with self._sessions() as session:
            return session.scalars(select(StaffUser).where(StaffUser.username == username)).first()

    def staff_user_by_id(self, user_id: int) -> StaffUser | None:
        with self._sessions() as session:
            return session.get(StaffUser, user_id)

    def set_password_hash(self, user_id: int, password_hash: str) -> bool:
        return self._update(
            update(StaffUser).where(StaffUser.id == user_id).values(password_hash=password_hash)
        )

    def staff_users(self) -> Sequence[StaffUser]:
        with self._sessions() as session:
            return session.scalars(select(StaffUser).order_by(StaffUser.username)).all()

    def set_phone(self, user_id: int, phone_uri: str, groups: list[str] | None = None) -> bool:
        """Where the bot rings this person on accept, and the groups they take (None = all)."""
        return self._update(
            update(StaffUser).where(StaffUser.id == user_id).values(phone_uri=phone_uri, groups=groups)
        )

    def update_staff_user(self, user_id: int, changes: dict[str, Any]) -> bool:
        """Several of ``phone_uri``, ``groups`` (None = every group), ``role`` and ``disabled`` in one update
        (``voicebot users set``, the console's team page); False when there is no such account."""
        allowed = {"phone_uri", "groups", "role", "disabled"}
        if not changes or not set(changes) <= allowed:
            raise ValueError(f"update_staff_user: only {sorted(allowed)}, got {sorted(changes)}")
        values = dict(changes)
        if "role" in values:
            values["role"] = Role(values["role"]).value
        return self._update(update(StaffUser).where(StaffUser.id == user_id).values(**values))

    def set_availability(self, user_id: int, availability: Availability) -> bool:
        return self._update(
            update(StaffUser)
            .where(StaffUser.id == user_id)
            .values(availability=Availability(availability).value)
        )

    # --- queue -------------------------------------------------------------------------------------------

    def enqueue(
        self,
        call_id: str,
        group_name: str,
        reason: str,
        *,
        summary: dict[str, Any] | None = None,
        process: dict[str, Any] | None = None,
        mode: QueueMode = QueueMode.QUEUE,
        reference: str | None = None,
        caller_number: str = "",
    ) -> QueueEntry:
        entry = QueueEntry(
            call_id=call_id,
            group_name=group_name,
            reason=reason,
            status=QueueStatus.WAITING.value,
            enqueued_at=self._clock(),
            summary=summary or {},
            process=process,
            mode=QueueMode(mode).value,
            reference=reference,
            caller_number=caller_number[:64],
        )
        with self._sessions.begin() as session:
            session.add(entry)
        return entry

    def enqueue_pbx(
        self, call_id: str, group_name: str, reason: str, *, reference: str, caller_number: str = ""
    ) -> QueueEntry:
        """A caller the bot transfers to the PBX's own queue (mode ``pbx``): ``waiting`` while the transfer runs,
        then ``answered`` (:meth:`answered_by_pbx`) or ``abandoned`` (:meth:`end_wait`). ``reference`` is the
        unguessable id of the summary link the transfer carries."""
        entry = QueueEntry(
            call_id=call_id,
            group_name=group_name,
            reason=reason,
            status=QueueStatus.WAITING.value,
            enqueued_at=self._clock(),
            summary={},
            mode=QueueMode.PBX.value,
            reference=reference,
            caller_number=caller_number,
        )
        with self._sessions.begin() as session:
            session.add(entry)
        return entry

    def answered_by_pbx(self, entry_id: int) -> bool:
        """The PBX took the transferred caller (REFER accepted to the end, or staff answered the bot's INVITE)."""
        return self._update(
            update(QueueEntry)
            .where(
                QueueEntry.id == entry_id,
                QueueEntry.status == QueueStatus.WAITING.value,
                QueueEntry.mode == QueueMode.PBX.value,
            )
            .values(status=QueueStatus.ANSWERED.value, answered_at=self._clock())
        )

    def waiting(self, group_name: str | None = None) -> Sequence[QueueEntry]:
        """Callers waiting for staff, longest waiting first (their position is their place in this list)."""
        query = select(QueueEntry).where(QueueEntry.status == QueueStatus.WAITING.value)
        if group_name is not None:
            query = query.where(QueueEntry.group_name == group_name)
        with self._sessions() as session:
            return session.scalars(query.order_by(QueueEntry.enqueued_at, QueueEntry.id)).all()

    def queue_entries_of(self, call_id: str) -> Sequence[QueueEntry]:
        with self._sessions() as session:
            query = select(QueueEntry).where(QueueEntry.call_id == call_id).order_by(QueueEntry.id)
            return session.scalars(query).all()

    def queue_entry(self, entry_id: int) -> QueueEntry | None:
        with self._sessions() as session:
            return session.get(QueueEntry, entry_id)

    def queue_entry_by_reference(self, reference: str) -> QueueEntry | None:
        with self._sessions() as session:
            return session.scalars(select(QueueEntry).where(QueueEntry.reference == reference)).first()

    def answer(self, entry_id: int, staff_user_id: int) -> bool:
        """Staff takes a waiting caller; False if the caller no longer waits (taken by someone else, gone)."""
        return self._update(
            update(QueueEntry)
            .where(QueueEntry.id == entry_id, QueueEntry.status == QueueStatus.WAITING.value)
            .values(status=QueueStatus.ANSWERED.value, staff_user_id=staff_user_id, answered_at=self._clock())
        )

    def offer(self, entry_id: int, staff_user_id: int) -> bool:
        """Staff accepts a waiting caller: the process holding the caller now rings them (``offered``). False
        if the caller no longer waits (another member of staff was quicker, the caller hung up)."""
        return self._update(
            update(QueueEntry)
            .where(QueueEntry.id == entry_id, QueueEntry.status == QueueStatus.WAITING.value)
            .values(status=QueueStatus.OFFERED.value, offered_to=staff_user_id, offered_at=self._clock())
        )

    def offers_held_by(self, process_id: str) -> Sequence[QueueEntry]:
        """Entries of callers this process holds that staff has accepted and the process has not yet
        connected (what a process looks for after a notification, or on its poll)."""
        with self._sessions() as session:
            query = select(QueueEntry).where(QueueEntry.status == QueueStatus.OFFERED.value)
            entries = session.scalars(query.order_by(QueueEntry.offered_at)).all()
        return [entry for entry in entries if (entry.process or {}).get("id") == process_id]

    def connected(self, entry_id: int) -> bool:
        """The offered member of staff answered: the caller is with them."""
        return self._update(
            update(QueueEntry)
            .where(QueueEntry.id == entry_id, QueueEntry.status == QueueStatus.OFFERED.value)
            .values(
                status=QueueStatus.ANSWERED.value,
                staff_user_id=QueueEntry.offered_to,
                answered_at=self._clock(),
            )
        )

    def back_to_waiting(self, entry_id: int) -> bool:
        """The offered member of staff did not answer: the caller waits again, keeping their place."""
        return self._update(
            update(QueueEntry)
            .where(QueueEntry.id == entry_id, QueueEntry.status == QueueStatus.OFFERED.value)
            .values(status=QueueStatus.WAITING.value, offered_to=None, offered_at=None)
        )

    def abandon_held_by(self, process_id: str) -> int:
        """A restarted process gives up the callers its previous run held (they are gone with it): waiting or
        offered entries whose ``process.id`` is ``process_id`` become ``abandoned``. Returns how many."""
        with self._sessions.begin() as session:
            query = select(QueueEntry).where(
                QueueEntry.status.in_([QueueStatus.WAITING.value, QueueStatus.OFFERED.value])
            )
            held = [e for e in session.scalars(query).all() if (e.process or {}).get("id") == process_id]
            now = self._clock()
            for entry in held:
                entry.status = QueueStatus.ABANDONED.value
                entry.ended_at = now
            return len(held)

    def wrap_up(self, entry_id: int, staff_user_id: int, outcome: QueueOutcome, note: str) -> bool:
        """Staff's note and outcome after a call they took (only the one who took it)."""
        return self._update(
            update(QueueEntry)
            .where(
                QueueEntry.id == entry_id,
                QueueEntry.status == QueueStatus.ANSWERED.value,
                QueueEntry.staff_user_id == staff_user_id,
            )
            .values(outcome=QueueOutcome(outcome).value, wrap_up_note=note)
        )

    def end_wait(self, entry_id: int, status: QueueStatus) -> bool:
        """A waiting caller leaves the queue without staff (``abandoned`` or ``callback``)."""
        return self._update(
            update(QueueEntry)
            .where(QueueEntry.id == entry_id, QueueEntry.status == QueueStatus.WAITING.value)
            .values(status=QueueStatus(status).value, ended_at=self._clock())
        )

    # --- call-backs ----------------------------------------------------------------------------------------

    def add_callback(
        self,
        call_id: str,
        group_name: str,
        phone_number: str,
        due_at: float,
        *,
        caller_name: str = "",
        topic: str = "",
        number_via: str = "",
    ) -> Callback:
        """``number_via``: how the number was given (``caller_id``, ``keypad``, ``speech``)."""
        callback = Callback(
            call_id=call_id,
            group_name=group_name,
            caller_name=caller_name,
            topic=topic,
            phone_number=phone_number,
            status=CallbackStatus.OPEN.value,
            created_at=self._clock(),
            due_at=due_at,
            outcome_note="",
            number_via=number_via,
        )
        with self._sessions.begin() as session:
            session.add(callback)
        return callback

    def open_callbacks(self, group_name: str | None = None) -> Sequence[Callback]:
        """Open and claimed call-backs, the earliest due first."""
        query = select(Callback).where(
            Callback.status.in_([CallbackStatus.OPEN.value, CallbackStatus.CLAIMED.value])
        )
        if group_name is not None:
            query = query.where(Callback.group_name == group_name)
        with self._sessions() as session:
            return session.scalars(query.order_by(Callback.due_at, Callback.id)).all()

    def claim_callback(self, callback_id: int, staff_user_id: int) -> bool:
        """False if someone claimed it first (or it is done)."""
        return self._update(
            update(Callback)
            .where(Callback.id == callback_id, Callback.status == CallbackStatus.OPEN.value)
            .values(status=CallbackStatus.CLAIMED.value, claimed_by=staff_user_id, claimed_at=self._clock())
        )

    def finish_callback(
        self, callback_id: int, staff_user_id: int, status: CallbackStatus, note: str
    ) -> bool:
        """The outcome, recorded by whoever claimed it (``done`` or ``failed``)."""
        if CallbackStatus(status) not in (CallbackStatus.DONE, CallbackStatus.FAILED):
            raise ValueError(f"a call-back ends as done or failed, not {status}")
        return self._update(
            update(Callback)
            .where(
                Callback.id == callback_id,
                Callback.status == CallbackStatus.CLAIMED.value,
                Callback.claimed_by == staff_user_id,
            )
            .values(status=CallbackStatus(status).value, outcome_note=note, done_at=self._clock())
        )

    # --- what the staff console reads ---------------------------------------------------------------------

    def live_queue(self, groups: Sequence[str] | None, limit: int = 50) -> Sequence[QueueEntry]:
        """Callers in the bot's own queue, waiting or being connected, of ``groups`` (None = every group),
        longest waiting first; at most ``limit``."""
        query = select(QueueEntry).where(
            QueueEntry.status.in_([QueueStatus.WAITING.value, QueueStatus.OFFERED.value]),
            QueueEntry.mode == QueueMode.QUEUE.value,
        )
        if groups is not None:
            query = query.where(QueueEntry.group_name.in_(list(groups)))
        with self._sessions() as session:
            return session.scalars(query.order_by(QueueEntry.enqueued_at, QueueEntry.id).limit(limit)).all()

    def open_wrap_ups(self, staff_user_id: int, limit: int = 10) -> Sequence[QueueEntry]:
        """Calls this member of staff took that have no wrap-up yet, the most recent first."""
        query = select(QueueEntry).where(
            QueueEntry.status == QueueStatus.ANSWERED.value,
            QueueEntry.staff_user_id == staff_user_id,
            QueueEntry.outcome.is_(None),
        )
        with self._sessions() as session:
            return session.scalars(query.order_by(QueueEntry.answered_at.desc()).limit(limit)).all()

    def entries_by_number(self, fragment: str, limit: int = 20) -> Sequence[QueueEntry]:
        """Queue entries (both modes) whose caller number contains ``fragment``, newest first."""
        pattern = "%" + fragment.replace("\\", "").replace("%", "").replace("_", "") + "%"
        query = select(QueueEntry).where(QueueEntry.caller_number.like(pattern))
        with self._sessions() as session:
            return session.scalars(query.order_by(QueueEntry.enqueued_at.desc()).limit(limit)).all()

    def callbacks_by_number(self, fragment: str, limit: int = 20) -> Sequence[Callback]:
        """Call-backs (any status) whose number contains ``fragment``, newest first."""
        pattern = "%" + fragment.replace("\\", "").replace("%", "").replace("_", "") + "%"
        query = select(Callback).where(Callback.phone_number.like(pattern))
        with self._sessions() as session:
            return session.scalars(query.order_by(Callback.created_at.desc()).limit(limit)).all()

    def callbacks_for(self, groups: Sequence[str] | None, limit: int = 200) -> Sequence[Callback]:
        """Open and claimed call-backs of ``groups`` (None = every group), the earliest due first."""
        query = select(Callback).where(
            Callback.status.in_([CallbackStatus.OPEN.value, CallbackStatus.CLAIMED.value])
        )
        if groups is not None:
            query = query.where(Callback.group_name.in_(list(groups)))
        with self._sessions() as session:
            return session.scalars(query.order_by(Callback.due_at, Callback.id).limit(limit)).all()

    def callback(self, callback_id: int) -> Callback | None:
        with self._sessions() as session:
            return session.get(Callback, callback_id)

    def callbacks_of(self, call_id: str) -> Sequence[Callback]:
        with self._sessions() as session:
            query = select(Callback).where(Callback.call_id == call_id).order_by(Callback.id)
            return session.scalars(query).all()

    def _update(self, statement: Any) -> bool:
        with self._sessions.begin() as session:
            result: Any = session.execute(statement)  # a CursorResult: an UPDATE counts its rows
            return bool(result.rowcount == 1)
