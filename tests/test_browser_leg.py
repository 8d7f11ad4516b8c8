"""The pure parts of taking a queued caller in the browser (voicebot/telephony/browser_leg.py): the browser's
decoded audio becomes the line's mono PCM at the line's rate, the line's PCM becomes frames for aiortc, a member
of staff holds at most one live browser leg; and, with the real queue on SQLite and PostgreSQL, a browser that
never connects puts the caller back in the queue in place."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import av
import numpy as np
import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from test_queue import _call, _desk, _kinds, _staff, _start_in_turn, _wait, store  # noqa: F401 (store: fixture)

from voicebot.calls import CallRegistry
from voicebot.db.models import QueueStatus
from voicebot.db.store import SqlCallRecordStore
from voicebot.telephony.browser_leg import ENDED, BrowserLeg, BrowserLegs, BrowserToLine, line_frame
from voicebot.telephony.sip_calls import SipCall


def _browser_frame(pts: int, tone_hz: float = 440.0) -> av.AudioFrame:
    """20 ms of what aiortc's Opus decoder delivers: s16, stereo, 48 kHz (interleaved)."""
    t = (pts + np.arange(960)) / 48000
    mono = (8000 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = 48000
    frame.pts = pts
    return frame


@pytest.mark.parametrize("rate", [8000, 16000])
def test_browser_audio_becomes_mono_pcm_at_the_line_rate(rate: int) -> None:
    convert = BrowserToLine(rate)
    pcm = b"".join(convert.convert(_browser_frame(i * 960)) for i in range(50))  # one second
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    # The resampler holds back a few ms; one second in is (almost) one second out, mono.
    assert rate * 0.95 <= len(samples) <= rate
    spectrum = np.abs(np.fft.rfft(samples[len(samples) // 4 :]))
    peak_hz = np.argmax(spectrum) * rate / len(samples[len(samples) // 4 :])
    assert abs(peak_hz - 440) < 10  # the same tone, not doubled by reading stereo as mono
    rms = np.sqrt(np.mean(samples[len(samples) // 4 :] ** 2))
    assert 4500 < rms < 6500  # 8000 peak → ≈ 5657 rms: the level is kept


def test_line_pcm_becomes_a_timed_mono_frame() -> None:
    pcm = (np.arange(320, dtype=np.int16) * 50).tobytes()
    frame = line_frame(pcm, 16000, pts=640)
    assert (frame.samples, frame.sample_rate, frame.pts, frame.layout.name) == (320, 16000, 640, "mono")
    assert float(frame.time_base) == 1 / 16000
    assert bytes(frame.planes[0])[: len(pcm)] == pcm


async def test_one_live_browser_leg_per_member_of_staff() -> None:
    registry = CallRegistry(max_calls=4)

    def leg(staff_user_id: int) -> BrowserLeg:
        lease = registry.try_acquire("sip")
        assert lease is not None
        call = SipCall(f"call-{staff_user_id}-{registry.active}", lease)
        return BrowserLeg(
            cast(Any, None),  # not reached: a leg that never connected is closed without the SIP service
            call,
            entry_id=1,
            staff_user_id=staff_user_id,
            staff_name="anna",
            connect_timeout_s=1,
            media_timeout_s=1,
        )

    legs = BrowserLegs()
    first = leg(7)
    legs.add(first)
    with pytest.raises(ValueError, match="already has a live browser leg"):
        legs.add(leg(7))
    assert legs.busy(7) and not legs.busy(8) and legs.live() == [first]
    assert not await first.wait_connected()  # no offer answered: nothing to connect
    await first.close("not-connected")
    assert first.state == ENDED and not legs.busy(7)
    assert first.ended_text.startswith("Die Verbindung kam nicht zustande.")
    assert legs.of(7) is first  # kept: the page reads how it ended
    again = leg(7)
    legs.add(again)  # the member may accept the next caller
    assert legs.of(7) is again
    # "Auflegen" before the browser connected ends only the leg (no SIP service is asked to BYE the caller, who
    # goes back to waiting); the page says so.
    await again.hang_up("staff")
    assert again.state == ENDED and again.ended_by == "staff"
    assert again.ended_text == "Abgebrochen. Der Anruf wartet wieder in der Warteschlange."


async def test_a_browser_that_does_not_connect_puts_the_caller_back_in_place(
    store: SqlCallRecordStore,  # noqa: F811 (the fixture)
) -> None:
    """The leg answered a real offer, but that browser never connects: after ``browser_connect_timeout_s`` the
    entry is waiting again (the caller keeps their place and hears it), the leg says why it ended."""
    from aiortc import RTCPeerConnection

    desk = _desk(store, max_wait_s=30, announce_interval_s=10)
    repository = desk.repository
    anna = _staff(repository, "anna")  # no phone: only the browser way
    call, handle = _call(store, CallRegistry(max_calls=2), "+4930111")
    wait = _wait(call, desk, reason="handoff_key", summary="")
    wait.task = (await _start_in_turn([wait], [handle]))[0]
    assert wait.entry_id is not None
    browser = RTCPeerConnection()
    try:
        browser.addTransceiver("audio", direction="sendrecv")
        await browser.setLocalDescription(await browser.createOffer())
        leg = BrowserLeg(
            cast(Any, None),  # never bridged: no BYE to send
            call,
            entry_id=wait.entry_id,
            staff_user_id=anna.id,
            staff_name="anna",
            connect_timeout_s=0.3,
            media_timeout_s=1,
        )
        answer = await leg.answer(browser.localDescription.sdp)
        assert answer["type"] == "answer" and "m=audio" in answer["sdp"]
        wait.browser = call.browser = leg  # as the console does, then the offer
        assert repository.offer(wait.entry_id, anna.id)
        wait.wake()
        for _ in range(150):  # bounded: 3 s
            if "queue_back_to_waiting" in _kinds(handle):
                break
            await asyncio.sleep(0.02)
        assert _kinds(handle)[-2:] == ["queue_offered", "queue_back_to_waiting"]
        offered = handle.transcript.events[-2]
        assert (offered["via"], offered["offered_to"]) == ("browser", anna.id)
        assert handle.transcript.events[-1]["reason"] == "browser not connected"
        entry = repository.queue_entry(wait.entry_id)
        assert entry is not None and (entry.status, entry.offered_to) == (QueueStatus.WAITING.value, None)
        assert leg.state == ENDED and leg.ended_text.startswith("Die Verbindung kam nicht zustande.")
        assert call.browser is None and wait.browser is None and not leg.keeps_call
        assert not wait.task.done()  # still waiting, in place
    finally:
        await browser.close()
        call.finished = True
        await wait.close()
