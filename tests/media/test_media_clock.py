"""The pacer's absolute schedule on an explicit clock (no sleeping)."""

from __future__ import annotations

from sip_bridge.media.clock import Pacer


def test_thirty_minute_call_has_zero_drift() -> None:
    now = 123456.789
    pacer = Pacer(0.020, start_s=now)
    frames = 90_000  # 30 min of 20 ms
    sent = 0
    worst_lateness = 0.0
    # Each wake-up is a bit late (as asyncio.sleep is); the schedule must not accumulate that.
    while sent < frames:
        now += pacer.delay(now) + 0.0007
        due = pacer.due(now)
        assert due == [sent]
        worst_lateness = max(worst_lateness, now - pacer.deadline(due[0]))
        sent += 1
    expected_end = 123456.789 + frames * 0.020
    assert abs(pacer.deadline(frames) - expected_end) < 1e-6
    assert worst_lateness < 0.001  # lateness never grows beyond one wake-up's
    assert pacer.skipped == 0


def test_short_stall_is_caught_up_long_stall_is_skipped() -> None:
    now = 1000.0
    pacer = Pacer(0.020, start_s=now, max_catch_up=3)
    assert pacer.due(now) == [0]
    assert pacer.due(now) == []
    assert abs(pacer.delay(now) - 0.020) < 1e-9
    assert pacer.next_deadline == pacer.deadline(1)
    now += 0.065  # frames 1, 2, 3 are due
    assert pacer.due(now) == [1, 2, 3]
    now += 0.200  # 10 frames late: send only the newest 3
    assert pacer.due(now) == [11, 12, 13]
    assert pacer.skipped == 7
    assert pacer.delay(now) > 0
