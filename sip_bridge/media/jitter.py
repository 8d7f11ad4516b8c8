"""Adaptive jitter buffer and simple packet loss concealment, sans-I/O.

Packets are ordered by (unwrapped) sequence number and played out one per request. The playout delay target
follows the RFC 3550 A.8 inter-arrival jitter estimate (``packet + 3 x jitter``, clamped to [min, max]) and
rises after each underrun, decaying again while playout is smooth. Late and duplicate packets are dropped;
a buffer grown beyond the target sheds one packet per pop so delay shrinks back without a long skip.

Only packets near the playout point are buffered. One packet far away in sequence space (a spoofed or corrupt
packet, e.g. +2999) is dropped without moving anything; a run of consecutive packets out there is a new stream
(a restarted sender, a long outage, a new SSRC) and the buffer resynchronises to it (RFC 3550 A.1's probation).
So no single packet can make the buffer wait for a future that never comes, and memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from .rtp import extend_sequence


class Playout(Enum):
    LOST = "lost"  # the next packet never came (later ones did): conceal one packet's worth


@dataclass(frozen=True)
class BufferedPacket:
    sequence: int  # extended
    timestamp: int
    payload: bytes  # b"" = a placeholder that plays as silence (comfort noise)


@dataclass
class JitterStats:
    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    shed: int = 0
    underruns: int = 0
    resets: int = 0
    strays: int = 0  # far from the playout point and not (yet) a new stream: dropped


_MAX_AHEAD = 25  # packets ahead of the playout point still buffered (0.5 s at 20 ms, beyond any delay target)
_MAX_MISORDER = 10  # packets behind the playout point that are late (reordered), not a new stream
_RESYNC_PACKETS = 3  # consecutive packets out of range that make a new stream
_FLOOR_DECAY_POPS = 500


class JitterBuffer:
    def __init__(
        self,
        clock_rate: int,
        *,
        packet_ms: float = 20.0,
        min_delay_ms: float = 40.0,
        max_delay_ms: float = 200.0,
    ) -> None:
        self.clock_rate = clock_rate
        self.packet_ms = packet_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.stats = JitterStats()
        self.jitter = 0.0  # RFC 3550 A.8, in timestamp units
        self._packets: dict[int, BufferedPacket] = {}
        # Sequence numbers taken by packets that are not audio (RFC 4733 events): passed over at playout. Some
        # phones send events *alongside* audio; playing them as frames would halve the playout speed.
        self._skips: set[int] = set()
        self._next: int | None = None
        self._highest: int | None = None
        self._playing = False
        self._floor_ms = min_delay_ms
        self._smooth_pops = 0
        self._last_arrival: tuple[float, int] | None = None
        self._last_media: tuple[int, int] | None = None  # (extended seq, timestamp) of the last audio packet
        # Out-of-range packets in a row (16-bit seq, timestamp, payload, arrival): a new stream once long enough.
        self._probation: list[tuple[int, int, bytes | None, float]] = []

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self.clock_rate

    @property
    def target_delay_ms(self) -> float:
        wanted = max(self.packet_ms + 3.0 * self.jitter_ms, self._floor_ms)
        return min(max(wanted, self.min_delay_ms), self.max_delay_ms)

    @property
    def depth_ms(self) -> float:
        if self._next is None or self._highest is None or not self._packets:
            return 0.0
        skipped = sum(1 for seq in self._skips if seq >= self._next)
        return (self._highest - self._next + 1 - skipped) * self.packet_ms

    def __len__(self) -> int:
        """Packets (and event placeholders) held."""
        return len(self._packets) + len(self._skips) + len(self._probation)

    def reset(self) -> None:
        """Forget everything (new SSRC or a sequence jump: a new stream)."""
        self._packets.clear()
        self._skips.clear()
        self._next = self._highest = None
        self._playing = False
        self._last_arrival = self._last_media = None
        self._probation = []
        self.stats.resets += 1

    def put(self, sequence: int, timestamp: int, payload: bytes | None, arrival_s: float) -> bool:
        """Store a packet (``payload`` None: not audio, only its sequence number is noted); False when it was
        dropped as late, duplicate or stray (far from the playout point)."""
        reference = self._highest if self._highest is not None else self._next
        extended = sequence if reference is None else extend_sequence(sequence, reference)
        if self._next is not None and not self._in_range(extended):
            return self._probe(sequence, timestamp, payload, arrival_s)
        self._probation.clear()
        return self._store(extended, timestamp, payload, arrival_s)

    def _in_range(self, extended: int) -> bool:
        assert self._next is not None
        if extended >= self._next:
            return extended - self._next <= _MAX_AHEAD
        return self._next - extended <= _MAX_MISORDER

    def _probe(self, sequence: int, timestamp: int, payload: bytes | None, arrival_s: float) -> bool:
        """A packet out of range: a stray, or part of a run that becomes the new stream."""
        last = self._probation[-1][0] if self._probation else None
        if last is not None and sequence == last:
            self.stats.duplicates += 1
            return False
        if last is None or sequence != (last + 1) & 0xFFFF:
            self._probation.clear()
        self._probation.append((sequence, timestamp, payload, arrival_s))
        if len(self._probation) < _RESYNC_PACKETS:
            self.stats.strays += 1
            return False
        run = list(self._probation)
        self.reset()
        for item in run:
            self._store(extend_sequence(item[0], run[0][0]), *item[1:])
        return True

    def _store(self, extended: int, timestamp: int, payload: bytes | None, arrival_s: float) -> bool:
        if self._next is None:
            self._next = extended
        if extended < self._next:
            if self._playing:
                self.stats.late += 1
                return False
            self._next = extended  # reordering before playout began: start earlier
        if extended in self._packets or extended in self._skips:
            self.stats.duplicates += 1
            return False
        self.stats.received += 1
        self._highest = extended if self._highest is None else max(self._highest, extended)
        if payload is None:
            self._skips.add(extended)
            return True
        self._packets[extended] = BufferedPacket(extended, timestamp, payload)
        if payload:
            self._measure(extended, timestamp, arrival_s)
        return True

    def pop(self) -> BufferedPacket | Playout | None:
        """The next packet to play, ``Playout.LOST`` for a gap, or None while (re)buffering."""
        self._pass_skips()
        if self._next is None or not self._packets:
            if self._playing:
                self._playing = False
                self.stats.underruns += 1
                self._floor_ms = min(self._floor_ms + self.packet_ms, self.max_delay_ms)
                self._smooth_pops = 0
            return None
        if not self._playing:
            if self.depth_ms < self.target_delay_ms:
                return None
            self._playing = True
        self._decay_floor()
        packet = self._packets.pop(self._next, None)
        self._next += 1
        if packet is None:
            self.stats.lost += 1
            return Playout.LOST
        self.stats.played += 1
        if self.depth_ms > self.target_delay_ms + 2 * self.packet_ms and self._packets:
            self._shed_one()
        return packet

    def _pass_skips(self) -> None:
        while self._next is not None and self._next in self._skips:
            self._skips.discard(self._next)
            self._next += 1

    def _shed_one(self) -> None:
        self._pass_skips()
        assert self._next is not None
        if self._packets.pop(self._next, None) is not None:
            self.stats.shed += 1
        self._next += 1

    def _decay_floor(self) -> None:
        self._smooth_pops += 1
        if self._smooth_pops >= _FLOOR_DECAY_POPS:
            self._smooth_pops = 0
            self._floor_ms = max(self.min_delay_ms, self._floor_ms - self.packet_ms)

    def _measure(self, extended: int, timestamp: int, arrival_s: float) -> None:
        arrival = arrival_s * self.clock_rate
        if self._last_arrival is not None:
            last_arrival, last_ts = self._last_arrival
            ts_delta = ((timestamp - last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            deviation = abs((arrival - last_arrival) - ts_delta)
            self.jitter += (deviation - self.jitter) / 16.0
        self._last_arrival = (arrival, timestamp)
        if self._last_media is not None and extended == self._last_media[0] + 1:
            delta = ((timestamp - self._last_media[1]) & 0xFFFFFFFF) * 1000.0 / self.clock_rate
            if 10.0 <= delta <= 120.0:
                self.packet_ms = delta
        self._last_media = (extended, timestamp)


class LossConcealer:
    """Repeat the last good audio, attenuated, for a few packets; then silence (no robotic loops)."""

    def __init__(self, attenuation: float = 0.5, max_repeats: int = 2) -> None:
        self.attenuation = attenuation
        self.max_repeats = max_repeats
        self._last: np.ndarray | None = None
        self._repeats = 0

    def good(self, pcm: bytes) -> None:
        if pcm:
            self._last = np.frombuffer(pcm, dtype=np.int16)
            self._repeats = 0

    def conceal(self, length_bytes: int) -> bytes:
        samples = length_bytes // 2
        if self._last is None or self._repeats >= self.max_repeats:
            return bytes(samples * 2)
        self._repeats += 1
        gain = self.attenuation**self._repeats
        source = np.resize(self._last, samples).astype(np.float32) * gain
        return bytes(source.astype(np.int16).tobytes())
