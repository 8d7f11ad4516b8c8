"""Packet pacing on an absolute schedule, sans-I/O (every call is given the current time).

Frame n is due at ``start + n * interval``, computed from n each time, never by adding intervals up: sleeping
"20 ms" in a loop drifts by the scheduler's lateness every frame (seconds over a 30-minute call), while an
absolute schedule only ever jitters. A short stall is caught up by sending the missed frames at once; a long
one (process suspended, CPU starved) skips ahead so the far end does not get a burst of stale audio.
"""

from __future__ import annotations


class Pacer:
    def __init__(self, interval_s: float, *, start_s: float, max_catch_up: int = 3) -> None:
        if interval_s <= 0:
            raise ValueError("interval must be positive")
        self.interval_s = interval_s
        self.max_catch_up = max_catch_up
        self.start_s = start_s
        self.next_index = 0
        self.skipped = 0

    def restart(self, at: float) -> None:
        self.start_s = at
        self.next_index = 0

    def deadline(self, index: int) -> float:
        return self.start_s + index * self.interval_s

    @property
    def next_deadline(self) -> float:
        """When the next frame is due."""
        return self.deadline(self.next_index)

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame is due (0 when it already is)."""
        return max(0.0, self.next_deadline - now)

    def due(self, now: float) -> list[int]:
        """Indices of the frames to send now, oldest first; missed frames beyond ``max_catch_up`` are skipped."""
        if now < self.next_deadline:
            return []
        latest = int((now - self.start_s) // self.interval_s)
        # Floating-point floor can land one frame short of a deadline that compares as reached.
        while self.deadline(latest + 1) <= now:
            latest += 1
        latest = max(latest, self.next_index)
        first = self.next_index
        if latest - first + 1 > self.max_catch_up:
            self.skipped += latest - self.max_catch_up + 1 - first
            first = latest - self.max_catch_up + 1
        self.next_index = latest + 1
        return list(range(first, latest + 1))
