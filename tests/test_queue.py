"""The bot's own queue on SQLite and on the real PostgreSQL (``tests/database.py``): nobody available → no queue
but the call-back offer; a queued caller's entry, position and announcements; the maximum wait; the console's
``accept`` and its German reasons; a caller who hangs up; a restarted server abandoning its own old entries.

The caller's call here is a real ``SipCall`` with a pipeline stand-in that records what the queue tells it (the
pipeline's side is tests/pipeline/test_waiting_room.py; the whole call with SIP peers tests/interop/test_queue.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)

from voicebot.calls import CallRegistry
from voicebot.db.models import Availability, QueueStatus, StaffUser
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.metrics import METRICS
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import QueueSettings, Settings, SipSettings, StaffGroup
from voicebot.staff.queue_notify import ALREADY_TAKEN, CALLER_GONE, NO_PHONE, NOT_IN_GROUP, accept
from voicebot.telephony.queue import MAX_WAIT, NOBODY_AVAILABLE, QueueDesk, QueueWait, process_id, queue_group
from voicebot.telephony.sip_calls import SipCall

GROUP = StaffGroup(name="buergerbuero", staff_uri="sip:unused@127.0.0.1:9", mode="queue")


@dataclass
class RecordingCall:
    """A CallHandle whose pipeline is not running: it records what the telephony layer tells it."""

    transcript: CallTranscript
    told: list[dict[str, Any]] = field(default_factory=list)

    async def run(self) -> None:
        pass

    async def cancel(self) -> None:
        pass

    async def say(self, kind: str, text: str) -> None:
        self.transcript.add_bot_turn(kind, text)

    async def transfer_status(
        self, phase: str, caller_number: str = "", *, reason: str = "", position: int = 0, wait_s: float = 0.0
    ) -> None:
        self.told.append(
            {
                "phase": phase,
                "number": caller_number,
                "reason": reason,
                "position": position,
                "wait_s": wait_s,
            }
        )


@pytest.fixture
def store(database: Database, tmp_path: Path) -> Iterator[SqlCallRecordStore]:  # noqa: F811
    sql = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    yield sql
    sql.close()


def _desk(store: SqlCallRecordStore, **settings: float) -> QueueDesk:
    queue = QueueSettings.model_validate({"announce_interval_s": 10, "poll_interval_s": 0.05, **settings})
    return QueueDesk(queue, Repository(store.engine), process="sip:127.0.0.1:5099", records=store)


def _call(store: SqlCallRecordStore, registry: CallRegistry, number: str) -> tuple[SipCall, RecordingCall]:
    lease = registry.try_acquire("sip")
    assert lease is not None
    call = SipCall(f"sip-{number}", lease, from_uri=f"<sip:{number}@pbx.example>;tag=1")
    handle = RecordingCall(CallTranscript(channel="sip", channel_call_id=call.call_id, store=store))
    call.handle = handle
    return call, handle


def _staff(
    repository: Repository, name: str, *, phone: str = "", groups: list[str] | None = None
) -> StaffUser:
    user = repository.add_staff_user(name, "not-a-real-hash")
    repository.set_phone(user.id, phone, groups)
    repository.set_availability(user.id, Availability.AVAILABLE)
    found = repository.staff_user(name)
    assert found is not None
    return found


def _waits_ended(outcome: str) -> float:
    return METRICS.registry.get_sample_value("voicebot_queue_wait_seconds_count", {"outcome": outcome}) or 0.0


def _wait(call: SipCall, desk: QueueDesk, *, reason: str, summary: str) -> QueueWait:
    """A wait in the queue; no SIP service: these callers are never rung (that is the interop test's part)."""
    return QueueWait(None, call, desk, GROUP, reason=reason, summary=summary)  # type: ignore[arg-type]


async def _start_in_turn(waits: list[QueueWait], handles: list[RecordingCall]) -> list[asyncio.Task[None]]:
    """Start the waits one after the other, each once the one before was queued and announced (bounded)."""
    tasks = []
    for wait, handle in zip(waits, handles, strict=True):
        tasks.append(asyncio.create_task(wait.run()))
        wait.task = tasks[-1]
        for _ in range(250):
            if any(t["phase"] == "queued" for t in handle.told):
                break
            await asyncio.sleep(0.02)
        assert any(t["phase"] == "queued" for t in handle.told), handle.told
    return tasks


def _kinds(handle: RecordingCall) -> list[str]:
    return [event["kind"] for event in handle.transcript.events]


async def test_nobody_available_means_no_queue_but_the_call_back_offer(store: SqlCallRecordStore) -> None:
    desk, registry = _desk(store), CallRegistry(max_calls=4)
    repository = desk.repository
    away = repository.add_staff_user("away", "x")  # signed in as away: does not count
    _staff(repository, "other", groups=["standesamt"])  # available, but for another group
    assert repository.staff_user_by_id(away.id) is not None
    call, handle = _call(store, registry, "+4930111")
    await _wait(call, desk, reason="handoff_key", summary="Pass").run()
    assert handle.told == [
        {"phase": "failed", "number": "+4930111", "reason": NOBODY_AVAILABLE, "position": 0, "wait_s": 0.0}
    ]
    assert _kinds(handle) == ["queue_unavailable"]
    assert repository.waiting() == []


async def test_queued_callers_hear_their_place_and_the_wait_ends_after_the_maximum(
    store: SqlCallRecordStore,
) -> None:
    desk, registry = _desk(store, max_wait_s=0.6, handling_time_s=120), CallRegistry(max_calls=4)
    repository = desk.repository
    _staff(repository, "anna", phone="sip:anna@127.0.0.1:5098", groups=["buergerbuero"])
    first_call, first = _call(store, registry, "+4930111")
    second_call, second = _call(store, registry, "+4930222")
    waits = [
        _wait(call, desk, reason="caller_asked", summary="Reisepass") for call in (first_call, second_call)
    ]
    waits_ended = _waits_ended("max_wait")
    running = await _start_in_turn(waits, [first, second])
    await asyncio.wait_for(asyncio.gather(*running), 10)  # both wait out the maximum of 0.6 s
    assert _waits_ended("max_wait") == waits_ended + 2  # /metrics: voicebot_queue_wait_seconds{outcome}
    for handle, number in ((first, "+4930111"), (second, "+4930222")):
        queued = [t for t in handle.told if t["phase"] == "queued"]
        assert queued and queued[0]["number"] == number
        assert handle.told[-1]["phase"] == "failed" and handle.told[-1]["reason"] == MAX_WAIT
        assert _kinds(handle) == ["queued", "queue_max_wait"]
    assert (first.told[0]["position"], first.told[0]["wait_s"]) == (1, 120)
    assert (second.told[0]["position"], second.told[0]["wait_s"]) == (2, 240)
    assert first.transcript.events[0]["position"] == 1
    entries = [repository.queue_entries_of(h.transcript.call_id)[0] for h in (first, second)]
    assert [e.status for e in entries] == [QueueStatus.CALLBACK.value] * 2
    assert entries[0].caller_number == "+4930111" and entries[0].reason == "caller_asked"
    assert entries[0].process is not None and entries[0].process["id"] == "sip:127.0.0.1:5099"
    assert entries[0].summary == {"text": "Reisepass"}


async def test_the_estimated_wait_shares_the_callers_among_the_staff_available(
    store: SqlCallRecordStore,
) -> None:
    """Two members available: the first two callers are next (one handling time), the third waits two."""
    desk, registry = _desk(store, max_wait_s=0.6, handling_time_s=120), CallRegistry(max_calls=4)
    for name in ("anna", "ben"):
        _staff(desk.repository, name, phone=f"sip:{name}@127.0.0.1:5098", groups=["buergerbuero"])
    calls = [_call(store, registry, f"+493011{i}") for i in range(3)]
    waits = [_wait(call, desk, reason="caller_asked", summary="Pass") for call, _ in calls]
    running = await _start_in_turn(waits, [handle for _, handle in calls])
    await asyncio.wait_for(asyncio.gather(*running), 10)
    assert [(h.told[0]["position"], h.told[0]["wait_s"]) for _, h in calls] == [(1, 120), (2, 120), (3, 240)]


async def test_the_queue_entry_keeps_the_callers_words_only_as_the_record_does(
    store: SqlCallRecordStore,
) -> None:
    """The summary stored with the queue entry (the question that led to the hand-off) is redacted like the
    transcript: no phone number or IBAN lands in the queue table."""
    desk, registry = _desk(store, max_wait_s=0.3), CallRegistry(max_calls=4)
    _staff(desk.repository, "anna", phone="sip:anna@127.0.0.1:5098", groups=["buergerbuero"])
    call, handle = _call(store, registry, "+4930111")
    said = "Rufen Sie mich unter 0171 2345678 an, IBAN DE89 3704 0044 0532 0130 00"
    wait = _wait(call, desk, reason="caller_asked", summary=said)
    await asyncio.wait_for(wait.run(), 10)
    (entry,) = desk.repository.queue_entries_of(handle.transcript.call_id)
    stored = entry.summary["text"]
    assert "2345678" not in stored and "3704" not in stored, stored
    assert "[Telefonnummer]" in stored and "[IBAN]" in stored, stored


async def test_the_second_caller_moves_up_when_the_first_is_taken_and_a_hang_up_abandons(
    store: SqlCallRecordStore,
) -> None:
    desk, registry = _desk(store, max_wait_s=30, announce_interval_s=0.2), CallRegistry(max_calls=4)
    repository = desk.repository
    anna = _staff(repository, "anna", phone="sip:anna@127.0.0.1:5098")
    first_call, first = _call(store, registry, "+4930111")
    second_call, second = _call(store, registry, "+4930222")
    waits = [_wait(call, desk, reason="handoff_key", summary="") for call in (first_call, second_call)]
    waits[0].task, waits[1].task = await _start_in_turn(waits, [first, second])
    assert {t["position"] for t in second.told} == {2}
    assert waits[0].entry_id is not None and waits[1].entry_id is not None
    # Someone else takes the first caller (answered directly): the second is first at its next announcement.
    assert repository.answer(waits[0].entry_id, anna.id)
    for _ in range(200):
        if second.told[-1]["position"] == 1:
            break
        await asyncio.sleep(0.02)
    assert second.told[-1] == {
        "phase": "queued",
        "number": "+4930222",
        "reason": "",
        "position": 1,
        "wait_s": desk.settings.handling_time_s,
    }
    await asyncio.wait_for(waits[0].task, 2)  # its entry left the queue: the first wait is over
    # The second caller hangs up (the SIP layer's finish() closes the wait).
    second_call.finished = True
    abandoned = _waits_ended("abandoned")
    await waits[1].close()
    assert _waits_ended("abandoned") == abandoned + 1
    entry = repository.queue_entry(waits[1].entry_id)
    assert entry is not None and entry.status == QueueStatus.ABANDONED.value and entry.ended_at is not None
    assert "queue_abandoned" in _kinds(second)


def test_accept_says_why_a_caller_cannot_be_taken(store: SqlCallRecordStore) -> None:
    repository = Repository(store.engine)
    transcript = CallTranscript(channel="sip", channel_call_id="c1", store=store)
    store.flush()
    anna = _staff(repository, "anna", phone="sip:anna@127.0.0.1:5098")
    bert = _staff(repository, "bert", phone="sip:bert@127.0.0.1:5097")
    nophone = _staff(repository, "carla")
    standesamt = _staff(repository, "dora", phone="sip:dora@127.0.0.1:5096", groups=["standesamt"])
    entry = repository.enqueue(transcript.call_id, "buergerbuero", "handoff_key")
    assert accept(repository, entry.id, nophone) == NO_PHONE
    assert accept(repository, entry.id, standesamt) == NOT_IN_GROUP
    assert accept(repository, entry.id, anna) is None  # offered to anna; the holder rings her phone
    offered = repository.queue_entry(entry.id)
    assert offered is not None and (offered.status, offered.offered_to) == (
        QueueStatus.OFFERED.value,
        anna.id,
    )
    assert accept(repository, entry.id, bert) == ALREADY_TAKEN
    gone = repository.enqueue(transcript.call_id, "buergerbuero", "handoff_key")
    assert repository.end_wait(gone.id, QueueStatus.ABANDONED)
    assert accept(repository, gone.id, bert) == CALLER_GONE


async def test_a_restarted_server_abandons_the_entries_its_previous_run_held(
    store: SqlCallRecordStore,
) -> None:
    repository = Repository(store.engine)
    transcript = CallTranscript(channel="sip", channel_call_id="c1", store=store)
    store.flush()
    settings = Settings(sip=SipSettings(bind_host="127.0.0.1", port=5099))
    mine = repository.enqueue(transcript.call_id, "b", "r", process={"id": process_id(settings, 5099)})
    other = repository.enqueue(transcript.call_id, "b", "r", process={"id": process_id(settings, 5100)})
    desk = QueueDesk(settings.queue, repository, process=process_id(settings, 5099), records=store)
    assert await desk.start() == 1
    await desk.stop()
    statuses = [repository.queue_entry(e.id).status for e in (mine, other)]  # type: ignore[union-attr]
    assert statuses == [QueueStatus.ABANDONED.value, QueueStatus.WAITING.value]
    named = Settings(queue=QueueSettings(instance_name="rathaus-1"))
    assert process_id(named, 5099) == "rathaus-1" and process_id(settings, 5099) == "sip:127.0.0.1:5099"


def test_only_groups_with_mode_queue_use_the_queue() -> None:
    settings = Settings.model_validate(
        {
            "handoff": {
                "groups": [
                    {"name": "standesamt", "staff_uri": "sip:s@pbx"},
                    {"name": "buergerbuero", "staff_uri": "sip:b@pbx", "mode": "queue"},
                ]
            }
        }
    )
    assert queue_group(settings, "standesamt") is None
    group = queue_group(settings, "buergerbuero")
    assert group is not None and group.mode == "queue"
    with pytest.raises(ValueError, match="mode"):
        StaffGroup.model_validate({"name": "x", "staff_uri": "sip:x@pbx", "mode": "acd"})


async def test_postgresql_notify_wakes_the_process_holding_the_caller_at_once(
    store: SqlCallRecordStore,
    database: Database,  # noqa: F811
) -> None:
    """Another process's ``accept`` (here: another engine) wakes the holder's waits through LISTEN/NOTIFY, long
    before its poll; on SQLite (one process) nothing is sent and the poll finds the offer."""
    desk = _desk(store, poll_interval_s=60)
    woken = asyncio.Event()
    desk.register(woken)
    await desk.start()
    console = Repository(database.engine())  # the console's process has its own connections
    try:
        transcript = CallTranscript(channel="sip", channel_call_id="c1", store=store)
        store.flush()
        entry = console.enqueue(transcript.call_id, "buergerbuero", "handoff_key")
        anna = _staff(console, "anna", phone="sip:anna@127.0.0.1:5098")
        for _ in range(100):  # bounded: until the listener is connected (PostgreSQL only)
            if database.kind == "sqlite" or desk.listening:
                break
            await asyncio.sleep(0.05)
        assert accept(console, entry.id, anna) is None
        if database.kind == "postgresql":
            await asyncio.wait_for(woken.wait(), 5)
        else:
            await asyncio.sleep(0.3)
            assert not woken.is_set()
    finally:
        await desk.stop()
        console.engine.dispose()


async def test_a_hang_up_at_any_moment_of_joining_the_queue_leaves_no_caller_waiting(
    store: SqlCallRecordStore,
) -> None:
    desk, registry = _desk(store), CallRegistry(max_calls=8)
    _staff(desk.repository, "anna", phone="sip:anna@127.0.0.1:5098")
    for delay in (0.0, 0.004, 0.008, 0.012, 0.016, 0.02, 0.03, 0.04, 0.06, 0.08):
        call, handle = _call(store, registry, "+4930111")
        wait = _wait(call, desk, reason="handoff_key", summary="")
        wait.task = asyncio.create_task(wait.run())
        await asyncio.sleep(delay)
        call.finished = True  # the caller hung up: the SIP layer's finish() closes the wait
        await wait.close()
        call.lease.release()
        await asyncio.sleep(0.2)  # a store still under way in its thread has committed by now
        entries = desk.repository.queue_entries_of(handle.transcript.call_id)
        assert all(e.status == QueueStatus.ABANDONED.value for e in entries), (delay, entries)
