"""RFC 4733 telephone-events (DTMF) decode and encode, sans-I/O.

One key press arrives as many packets sharing one RTP timestamp (start, updates with growing duration,
three redundant end packets), possibly retransmitted or reordered. The decoder reports each key press once,
on its first packet, so the caller's input reaches the pipeline without waiting for the key's release.

Event payloads come from the network, so they are checked before they count as a key press: keypad events
only (0-15), a DTMF power level (RFC 2833 3.5 after ITU-T Q.24: weaker than -55 dBm0 is not a digit), a
plausible duration for an event first seen, one digit per event timestamp, and at most ``max_digits_per_s``
digits per second of arrival time, so random or replayed payloads cannot flood the pipeline with key presses.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

EVENT_CODES = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")
MAX_DTMF_VOLUME = 55  # -55 dBm0: quieter is not DTMF
_MAX_FIRST_DURATION_S = 1.0  # an event first seen later than this after its start lost all its early packets
_RECENT_EVENTS = 16  # finished event timestamps remembered (late retransmissions must stay silent)


@dataclass(frozen=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int  # in RTP timestamp units

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise ValueError("telephone-event payload shorter than 4 bytes")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration)

    @property
    def digit(self) -> str | None:
        """The keypad digit, when this is a DTMF event at a level a real key press has."""
        if self.event >= len(EVENT_CODES) or self.volume > MAX_DTMF_VOLUME:
            return None
        return EVENT_CODES[self.event]


class DtmfDecoder:
    """Turns a stream of telephone-event packets into one digit per key press."""

    def __init__(self, *, clock_rate: int = 8000, max_digits_per_s: int = 10) -> None:
        self.clock_rate = clock_rate  # the telephone-event RTP clock (durations are in its units)
        self.max_digits_per_s = max_digits_per_s
        self.suppressed = 0  # key presses over the rate limit, not reported
        self._current: tuple[int, int] | None = None  # (rtp timestamp, event code) of the key being pressed
        self._current_ended = False
        self._current_duration = 0
        self._recent: deque[int] = deque(maxlen=_RECENT_EVENTS)
        self._reported: deque[float] = deque()  # arrival times of digits reported in the last second

    def feed(self, timestamp: int, payload: bytes, arrival_s: float) -> str | None:
        """A digit when this packet starts a new key press, else None (continuation, end, duplicate, junk,
        over the rate limit). ``arrival_s`` is the receive time (any monotonic clock) for the rate limit."""
        try:
            event = TelephoneEvent.parse(payload)
        except ValueError:
            return None
        digit = event.digit
        if digit is None:
            return None
        if timestamp in self._recent:
            return None
        if self._current is not None:
            current_ts, current_event = self._current
            if timestamp == current_ts:
                self._current_ended = self._current_ended or event.end
                self._current_duration = max(self._current_duration, event.duration)
                return None
            # A long key press is split into segments with new timestamps (RFC 4733 2.5.1.3): the same event
            # starting where the unfinished previous segment stops is a continuation, not a new press.
            gap = (timestamp - current_ts) & 0xFFFFFFFF
            if (
                event.event == current_event
                and not self._current_ended
                and gap <= self._current_duration + 1600
            ):
                self._current = (timestamp, current_event)
                self._current_ended = event.end
                self._current_duration = event.duration
                return None
        if event.duration > _MAX_FIRST_DURATION_S * self.clock_rate:
            return (
                None  # no start, no updates for a second: not a key press we could have missed the start of
            )
        if self._current is not None:
            self._recent.append(self._current[0])
        self._current = (timestamp, event.event)
        self._current_ended = event.end
        self._current_duration = event.duration
        return digit if self._within_rate(arrival_s) else None

    def _within_rate(self, arrival_s: float) -> bool:
        reported = self._reported
        while reported and arrival_s - reported[0] >= 1.0:
            reported.popleft()
        if len(reported) >= self.max_digits_per_s:
            self.suppressed += 1
            return False
        reported.append(arrival_s)
        return True


def encode_digit(
    digit: str, *, clock_rate: int, duration_ms: int = 100, packet_ms: int = 20, volume: int = 10
) -> list[tuple[bytes, bool]]:
    """The payloads (and marker flags) for one key press: updates with rising duration, then 3 end packets.

    All packets go out with the same RTP timestamp (the event start), one per ``packet_ms``, except the
    three end packets which are sent back to back (RFC 4733 2.5.1.4 redundancy).
    """
    code = EVENT_CODES.find(digit.upper())
    if code < 0 or len(digit) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r} (allowed: {EVENT_CODES})")
    step = clock_rate * packet_ms // 1000
    total = min(clock_rate * duration_ms // 1000, 0xFFFF)
    packets: list[tuple[bytes, bool]] = []
    duration = step
    while duration < total:
        packets.append((TelephoneEvent(code, False, volume, duration).serialize(), not packets))
        duration += step
    end = TelephoneEvent(code, True, volume, total).serialize()
    packets += [(end, not packets), (end, False), (end, False)]
    return packets
