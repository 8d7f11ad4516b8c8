"""The pacer's absolute schedule, with an injected clock (no sleeping)."""

from __future__ import annotations

from sip_bridge.media.clock import Pacer


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_thirty_minute_call_has_zero_drift() -> None:
    clock = FakeClock(start=123456.789)
    pacer = Pacer(0.020, clock=clock)
    frames = 90_000  # 30 min of 20 ms
    sent = 0
    worst_lateness = 0.0
    # Each wake-up is a bit late (as asyncio.sleep is); the schedule must not accumulate that.
    while sent < frames:
        clock.now += pacer.delay() + 0.0007
        due = pacer.due()
        assert due == [sent]
        worst_lateness = max(worst_lateness, clock.now - pacer.deadline(due[0]))
        sent += 1
    expected_end = 123456.789 + frames * 0.020
    assert abs(pacer.deadline(frames) - expected_end) < 1e-6
    assert worst_lateness < 0.001  # lateness never grows beyond one wake-up's
    assert pacer.skipped == 0


def test_short_stall_is_caught_up_long_stall_is_skipped() -> None:
    clock = FakeClock()
    pacer = Pacer(0.020, clock=clock, max_catch_up=3)
    assert pacer.due() == [0]
    assert pacer.due() == []
    assert abs(pacer.delay() - 0.020) < 1e-9
    clock.now += 0.065  # frames 1, 2, 3 are due
    assert pacer.due() == [1, 2, 3]
    clock.now += 0.200  # 10 frames late: send only the newest 3
    assert pacer.due() == [11, 12, 13]
    assert pacer.skipped == 7
    assert pacer.delay() > 0
