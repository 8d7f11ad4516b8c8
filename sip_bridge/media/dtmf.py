"""RFC 4733 telephone-events (DTMF) decode and encode, sans-I/O.

One key press arrives as many packets sharing one RTP timestamp (start, updates with growing duration,
three redundant end packets), possibly retransmitted or reordered. The decoder reports each key press once,
on its first packet, so the caller's input reaches the pipeline without waiting for the key's release.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

EVENT_CODES = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")


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
        return EVENT_CODES[self.event] if self.event < len(EVENT_CODES) else None


class DtmfDecoder:
    """Turns a stream of telephone-event packets into one digit per key press."""

    def __init__(self) -> None:
        self._current: tuple[int, int] | None = None  # (rtp timestamp, event code) of the key being pressed
        self._current_ended = False
        self._current_duration = 0
        self._recent: list[int] = []  # timestamps of finished events (late retransmissions must stay silent)

    def feed(self, timestamp: int, payload: bytes) -> str | None:
        """A digit when this packet starts a new key press, else None (continuation, end, duplicate, junk)."""
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
            self._recent = [*self._recent[-7:], current_ts]
        self._current = (timestamp, event.event)
        self._current_ended = event.end
        self._current_duration = event.duration
        return digit


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
