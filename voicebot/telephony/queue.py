"""The bot's own queue for phone calls (staff groups with ``mode = "queue"``, decision 0800).

A hand-off to such a group does not go to a SIP URI. Instead:

1. Nobody of the group ``available`` (console availability; a member's ``groups`` empty or naming the group) →
   no queue: the pipeline gets ``failed`` with reason "nobody available" and offers a call-back.
2. Otherwise a :class:`~voicebot.db.models.QueueEntry` is stored (group, reason, caller's number, the summary,
   ``process.id`` = :func:`process_id`) and the caller stays with the bot: the pipeline's ``WaitingRoom`` announces
   the position (re-read from the database before every announcement, so it moves up when the caller ahead is
   taken) and the estimated wait at once and every ``queue.announce_interval_s``, hold audio in between.
3. Staff accepts in the console (:func:`voicebot.staff.queue_notify.accept`: waiting → offered, plus
   ``NOTIFY voicebot_queue`` on PostgreSQL). The process holding the caller notices — woken by the notification
   (:class:`QueueDesk` LISTENs) or on its poll every ``queue.poll_interval_s`` — and rings the member's
   ``phone_uri`` with the transfer's INVITE + RTP bridge path (:meth:`Transfer.ring`). Answered →
   ``Repository.connected``; not answered → ``Repository.back_to_waiting`` and the caller waits on, in place.
4. After ``queue.max_wait_s`` the wait ends (status ``callback``) and the pipeline gets ``failed`` with reason
   "max wait": the call-back offer follows. A caller who hangs up while waiting (or while staff's phone rings)
   leaves the entry ``abandoned``.

A restarted server recognises its own entries by :func:`process_id` (``queue.instance_name``, else its SIP
address) and abandons those its previous run held (:meth:`QueueDesk.start`): their callers are gone with it.

Every step is an event in the call's record: ``queue_unavailable``, ``queued`` (entry, group, position),
``queue_announcement`` (pipeline), ``queue_offered`` (offered_to), ``queue_connected``, ``queue_back_to_waiting``,
``queue_max_wait``, ``queue_abandoned``; the transfer's own events (``transfer_started`` ... ``transfer_ended``
with the bridge's packet counts) come in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from voicebot.db.models import QueueEntry, QueueStatus
from voicebot.db.repository import Repository
from voicebot.metrics import METRICS
from voicebot.settings import QueueSettings, Settings, StaffGroup
from voicebot.staff.phones import dial_uri
from voicebot.staff.queue_notify import CHANNEL, available_for
from voicebot.telephony.transfer import Transfer, TransferState, caller_number

if TYPE_CHECKING:
    from voicebot.records import CallRecordStore
    from voicebot.telephony.browser_leg import BrowserLeg
    from voicebot.telephony.sip_calls import SipCall, SipCallService

NOBODY_AVAILABLE = "nobody available"
MAX_WAIT = "max wait"
QUEUE_FAILED = "queue failed"
LISTEN_RETRY_S = 5.0
# The call-record events that end a caller's wait, and the outcome /metrics counts the waiting time under.
WAIT_ENDINGS = {
    "queue_connected": "connected",
    "queue_max_wait": "max_wait",
    "queue_abandoned": "abandoned",
    "queue_failed": "failed",
}


def process_id(settings: Settings, sip_port: int) -> str:
    """Which server holds a queued caller: ``queue.instance_name``, else ``sip:<public or bind host>:<port>``
    (stable across restarts of the same server, distinct between servers of one host)."""
    if settings.queue.instance_name:
        return settings.queue.instance_name
    return f"sip:{settings.sip.public_host or settings.sip.bind_host}:{sip_port}"


def queue_group(settings: Settings, name: str) -> StaffGroup | None:
    """The configured group ``name`` if it uses the bot's own queue."""
    for group in settings.handoff.groups:
        if group.name == name and group.mode == "queue":
            return group
    return None


class QueueDesk:
    """Per process: the repository, this process's id, and the wake-up of waiting callers (NOTIFY or poll)."""

    def __init__(
        self,
        settings: QueueSettings,
        repository: Repository,
        *,
        process: str,
        records: CallRecordStore | None = None,
        listen: bool = True,
    ) -> None:
        """``listen``: LISTEN for accepted callers on PostgreSQL (only worth a connection where a group queues)."""
        self.settings = settings
        self.repository = repository
        self.process_id = process
        self.process: dict[str, Any] = {"id": process, "host": socket.gethostname(), "pid": os.getpid()}
        self.records = records
        self._listen_enabled = listen
        self._wakers: set[asyncio.Event] = set()
        self._listener: asyncio.Task[None] | None = None
        self.listening = (
            False  # LISTEN is active (PostgreSQL); otherwise only the poll finds accepted callers
        )

    async def start(self) -> int:
        """Abandon what the previous run of this server held; LISTEN on PostgreSQL. Returns how many."""
        abandoned = await asyncio.to_thread(self.repository.abandon_held_by, self.process_id)
        if abandoned:
            logger.info(f"queue: {abandoned} caller(s) held by the previous run marked abandoned")
        if self._listen_enabled and self.repository.engine.dialect.name == "postgresql":
            self._listener = asyncio.create_task(self._listen(), name="queue-listen")
        return abandoned

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    def wake(self) -> None:
        for event in self._wakers:
            event.set()

    async def sleep(self, waker: asyncio.Event, timeout_s: float) -> None:
        """Until ``timeout_s`` passed or a notification came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waker.wait(), max(0.0, timeout_s))
        waker.clear()

    async def _listen(self) -> None:
        """LISTEN on the queue channel; every notification wakes every waiting caller of this process (each
        re-reads its own entry). Reconnects after a pause when the connection breaks."""
        import psycopg

        url = self.repository.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    logger.info(f"queue: listening for accepted callers on {CHANNEL}")
                    self.listening = True
                    async for _notification in connection.notifies():
                        self.wake()
            except psycopg.Error as error:
                logger.warning(
                    f"queue: LISTEN {CHANNEL} failed ({error}); polling, retry in {LISTEN_RETRY_S} s"
                )
            self.listening = False
            await asyncio.sleep(LISTEN_RETRY_S)

    def register(self, waker: asyncio.Event) -> None:
        self._wakers.add(waker)

    def unregister(self, waker: asyncio.Event) -> None:
        self._wakers.discard(waker)


class QueueWait:
    """One caller's time in the queue, from the hand-off to staff answering, the call-back offer or hang-up."""

    def __init__(
        self,
        service: SipCallService,
        call: SipCall,
        desk: QueueDesk,
        group: StaffGroup,
        *,
        reason: str,
        summary: str,
    ) -> None:
        self.service = service
        self.call = call
        self.desk = desk
        self.group = group
        self.reason = reason
        self.summary = summary
        self.entry_id: int | None = None
        self.task: asyncio.Task[None] | None = None
        self._waker = asyncio.Event()
        self._enqueuing: asyncio.Future[QueueEntry] | None = None
        self._announced_at: float | None = None
        self.queued_at: float | None = None  # monotonic time the entry was stored; None once the wait ended
        # A member of staff accepting in the browser (decision 0850): set by the console of this process just
        # before its offer is stored, so the wait connects the browser instead of ringing a phone.
        self.browser: BrowserLeg | None = None

    @property
    def repository(self) -> Repository:
        return self.desk.repository

    def _note(self, kind: str, **data: Any) -> None:
        logger.info(f"{self.call.call_id}: {kind} {data}")
        if kind in WAIT_ENDINGS and self.queued_at is not None:
            METRICS.queue_wait(WAIT_ENDINGS[kind], time.monotonic() - self.queued_at)
            self.queued_at = None
        if self.call.handle is not None:
            with contextlib.suppress(Exception):
                self.call.handle.transcript.add_event(kind, **data)

    async def _tell(self, phase: str, **data: Any) -> None:
        if self.call.handle is not None and not self.call.finished:
            with contextlib.suppress(Exception):
                await self.call.handle.transfer_status(phase, caller_number(self.call.from_uri), **data)

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database failed us: the caller must not wait in silence for a queue that does not exist.
            logger.exception(f"{self.call.call_id}: the queue failed")
            self._note("queue_failed", group=self.group.name)
            if self.entry_id is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.repository.end_wait, self.entry_id, QueueStatus.ABANDONED)
            await self._tell("failed", reason=QUEUE_FAILED)

    async def _run(self) -> None:
        group = self.group.name
        available = await asyncio.to_thread(available_for, self.repository, group)
        if not available:
            self._note("queue_unavailable", group=group, reason=NOBODY_AVAILABLE)
            await self._tell("failed", reason=NOBODY_AVAILABLE)
            return
        if self.call.handle is None or self.call.finished:
            return
        call_id = self.call.handle.transcript.call_id
        summary = self.call.handle.transcript.redacted(
            self.summary
        )  # the caller's words, as the record has them
        if self.desk.records is not None:  # the entry refers to the call's row: it must be written first
            await asyncio.to_thread(self.desk.records.flush)
        # Shielded: a hang-up that cancels this task meanwhile must still learn the entry to abandon it (close).
        self._enqueuing = asyncio.ensure_future(
            asyncio.to_thread(
                self.repository.enqueue,
                call_id,
                group,
                self.reason,
                summary={"text": summary},
                process=self.desk.process,
                caller_number=caller_number(self.call.from_uri),
            )
        )
        entry = await asyncio.shield(self._enqueuing)
        self.entry_id = entry.id
        self.queued_at = time.monotonic()
        self.desk.register(self._waker)
        try:
            position = await self._position()
            self._note("queued", entry=entry.id, group=group, position=position, available=len(available))
            await self._wait(entry.id, position)
        finally:
            self.desk.unregister(self._waker)

    async def _position(self) -> int:
        waiting = await asyncio.to_thread(self.repository.waiting, self.group.name)
        ids = [entry.id for entry in waiting]
        return ids.index(self.entry_id) + 1 if self.entry_id in ids else 0

    async def _wait(self, entry_id: int, position: int) -> None:
        settings = self.desk.settings
        deadline = time.monotonic() + settings.max_wait_s
        next_announcement = time.monotonic()
        while not self.call.finished:
            entry = await asyncio.to_thread(self.repository.queue_entry, entry_id)
            if entry is None or entry.status not in (QueueStatus.WAITING.value, QueueStatus.OFFERED.value):
                return  # taken or ended elsewhere
            if entry.status == QueueStatus.OFFERED.value:
                leg = self.browser
                if leg is not None and leg.staff_user_id == entry.offered_to:
                    if await self._in_browser(entry_id, leg):
                        return
                    next_announcement = time.monotonic()
                    continue
                if await self._ring(entry_id, entry.offered_to):
                    return
                next_announcement = time.monotonic()  # back in the queue: tell the caller where they stand
                continue
            now = time.monotonic()
            if now >= deadline:
                if await asyncio.to_thread(self.repository.end_wait, entry_id, QueueStatus.CALLBACK):
                    self._note("queue_max_wait", entry=entry_id, waited_s=round(settings.max_wait_s, 1))
                    await self._tell("failed", reason=MAX_WAIT)
                    return
                continue  # offered at the last moment: ring
            if now >= next_announcement:
                position = await self._position() or position
                await self._tell("queued", position=position, wait_s=await self._estimated_wait(position))
                next_announcement = now + settings.announce_interval_s
            pause = min(settings.poll_interval_s, next_announcement - now, deadline - now)
            await self.desk.sleep(self._waker, pause)

    async def _estimated_wait(self, position: int) -> float:
        """Callers ahead and this one, shared among the members of staff available now, each taking
        ``handling_time_s``: position 3 with two members available waits about two handling times."""
        staff = len(await asyncio.to_thread(available_for, self.repository, self.group.name))
        return math.ceil(position / max(1, staff)) * self.desk.settings.handling_time_s

    async def _ring(self, entry_id: int, staff_user_id: int | None) -> bool:
        """Ring the member of staff who accepted; True when the call went to them (or ended meanwhile)."""
        staff = (
            await asyncio.to_thread(self.repository.staff_user_by_id, staff_user_id)
            if staff_user_id is not None
            else None
        )
        if staff is None or not staff.phone_uri:
            self._note("queue_back_to_waiting", entry=entry_id, reason="no phone")
            await asyncio.to_thread(self.repository.back_to_waiting, entry_id)
            return False
        try:  # a tel: number goes to the PBX the bot registers at (decision 0860)
            target = dial_uri(staff.phone_uri, self.service.settings.sip.registrar)
        except ValueError:
            self._note("queue_back_to_waiting", entry=entry_id, reason="phone not dialable")
            await asyncio.to_thread(self.repository.back_to_waiting, entry_id)
            return False
        self._note(
            "queue_offered", entry=entry_id, offered_to=staff.id, staff=staff.username, target=staff.phone_uri
        )

        async def connected() -> None:
            if await asyncio.to_thread(self.repository.connected, entry_id):
                self._note("queue_connected", entry=entry_id, staff_user_id=staff.id)

        transfer = Transfer(
            self.service,
            self.call,
            reason=self.reason,
            staff_uri=target,
            tell_failure=False,
            on_bridged=connected,
        )
        self.call.transfer = transfer
        await transfer.ring()
        if transfer.state == TransferState.BRIDGED or self.call.finished:
            return True
        self.call.transfer = None  # staff did not answer: the caller waits on, keeping their place
        if await asyncio.to_thread(self.repository.back_to_waiting, entry_id):
            self._note("queue_back_to_waiting", entry=entry_id, reason="not answered")
        return False

    def wake(self) -> None:
        """Look at the entry now (the console of this process has just offered it)."""
        self._waker.set()

    async def _in_browser(self, entry_id: int, leg: BrowserLeg) -> bool:
        """Connect the member of staff who accepted in the browser; True when the call went to them (or ended
        meanwhile), False when the browser did not connect in time: the caller waits on, in place."""
        self._note(
            "queue_offered", entry=entry_id, offered_to=leg.staff_user_id, staff=leg.staff_name, via="browser"
        )
        if await leg.wait_connected() and not self.call.finished:
            if await asyncio.to_thread(self.repository.connected, entry_id):
                self._note("queue_connected", entry=entry_id, staff_user_id=leg.staff_user_id, via="browser")
            await leg.bridge()
            return True
        if self.call.finished:
            return True
        self.browser = None
        self.call.browser = None
        await leg.close("not-connected")
        if await asyncio.to_thread(self.repository.back_to_waiting, entry_id):
            self._note("queue_back_to_waiting", entry=entry_id, reason="browser not connected")
        return False

    async def close(self) -> None:
        """The caller's call is over: stop waiting; an entry still waiting (or being offered) is abandoned."""
        if self.task is not None and self.task is not asyncio.current_task() and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        self.desk.unregister(self._waker)
        if self.entry_id is None and self._enqueuing is not None:
            with contextlib.suppress(Exception):
                self.entry_id = (await self._enqueuing).id  # stored while the caller hung up
        if self.entry_id is None:
            return
        entry_id = self.entry_id

        def abandon() -> bool:
            self.repository.back_to_waiting(entry_id)  # a phone still ringing for it no longer matters
            return self.repository.end_wait(entry_id, QueueStatus.ABANDONED)

        try:
            if await asyncio.to_thread(abandon):
                self._note("queue_abandoned", entry=entry_id)
        except Exception:
            logger.exception(f"{self.call.call_id}: queue entry {entry_id} could not be marked abandoned")
