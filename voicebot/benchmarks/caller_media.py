"""The caller's side of a benchmark call: PCMU over a plain UDP socket, every packet time-stamped.

Why not the bot's own RTP endpoint: the measurement must see packets exactly as they leave and arrive at the
caller, without a jitter buffer or pacing of ours in between. Speech is detected by the energy of the decoded
payload, per 20 ms packet.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import numpy as np

PCMU_PAYLOAD_TYPE = 0
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
SPEECH_DBFS = -35.0  # a 20 ms packet louder than this is speech (comfort silence and line noise stay below)
PACKET_S = 0.020
# Audio gaps (decision 0991): the bot sends a packet every 20 ms, silence included. An arrival interval longer than
# GAP_AFTER_S while the bot speaks (speech within SPEAKING_HOLD_S before and after it) is a gap of its excess over
# 20 ms: a packet that came late or not at all, which the caller hears as a drop-out.
GAP_AFTER_S = 0.030
SPEAKING_HOLD_S = 0.5


def _ulaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    sign = inverted & 0x80
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    values = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return values.astype(np.float32) / 32768.0


_ULAW_TO_FLOAT = _ulaw_table()


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """Float samples in [-1, 1] → G.711 µ-law bytes."""
    samples = np.clip(pcm * 32768.0, -32635, 32635).astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.abs(samples) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def packet_dbfs(payload: bytes) -> float:
    samples = _ULAW_TO_FLOAT[np.frombuffer(payload, dtype=np.uint8)]
    rms = float(np.sqrt(np.mean(samples**2) + 1e-12))
    return 20.0 * float(np.log10(rms))


@dataclass
class ReceivedPacket:
    at: float  # time.monotonic()
    dbfs: float
    timestamp: int = 0  # the RTP timestamp (8 kHz samples for PCMU)

    @property
    def is_speech(self) -> bool:
        return self.dbfs > SPEECH_DBFS


def _while_speaking(packets: list[ReceivedPacket]) -> np.ndarray:
    """For each pair of consecutive packets: whether the bot spoke around it (speech packets at most
    SPEAKING_HOLD_S before the first and after the second)."""
    arrivals = np.array([p.at for p in packets])
    speech = np.array([p.at for p in packets if p.is_speech])
    starts, ends = arrivals[:-1], arrivals[1:]
    if speech.size == 0:
        return np.zeros(starts.size, dtype=bool)
    # The last speech packet at or before the interval's start, the first at or after its end.
    before = speech[np.clip(np.searchsorted(speech, starts, side="right") - 1, 0, None)]
    after = speech[np.clip(np.searchsorted(speech, ends, side="left"), None, speech.size - 1)]
    speaking = (before <= starts) & (starts - before <= SPEAKING_HOLD_S)
    return speaking & (after >= ends) & (after - ends <= SPEAKING_HOLD_S)


def speech_gaps_s(packets: list[ReceivedPacket]) -> float:
    """Seconds of the bot's 20 ms packet stream that were late or missing while the bot spoke (see GAP_AFTER_S)."""
    if len(packets) < 2:
        return 0.0
    arrivals = np.array([p.at for p in packets])
    intervals = np.diff(arrivals)
    late = intervals > GAP_AFTER_S
    return float((intervals - PACKET_S)[late & _while_speaking(packets)].sum())


def skipped_s(packets: list[ReceivedPacket], clock_rate: int = 8000) -> float:
    """Seconds of audio the bot never sent while it spoke: jumps of the RTP timestamp beyond one packet (its pacing
    skips the ticks it was too late for). Arrival gaps without such a jump were late on the way (or in the
    caller's own event loop); with one, the bot's event loop fell behind."""
    if len(packets) < 2:
        return 0.0
    stamps = np.array([p.timestamp for p in packets], dtype=np.int64)
    steps = np.mod(np.diff(stamps), 2**32)
    packet = int(clock_rate * PACKET_S)
    jumps = (steps > packet) & (steps < 2**31)  # a packet from before (reordered) is no jump
    return float(((steps - packet) / clock_rate)[jumps & _while_speaking(packets)].sum())


@dataclass
class CallerMedia(asyncio.DatagramProtocol):
    """A UDP socket that sends PCMU packets on a 20 ms schedule and records what comes back."""

    received: list[ReceivedPacket] = field(default_factory=list)
    remote: tuple[str, int] | None = None
    transport: asyncio.DatagramTransport | None = None

    def __post_init__(self) -> None:
        self._pending: deque[bytes] = deque()
        self._played: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.last_speech_sent: float | None = None
        self._ssrc = random.randrange(1, 2**32)
        self._seq = random.randrange(0, 2**16)
        self._timestamp = random.randrange(0, 2**32)

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> CallerMedia:
        loop = asyncio.get_running_loop()
        media = cls()
        await loop.create_datagram_endpoint(lambda: media, local_addr=(host, 0))
        return media

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        payload_type = data[1] & 0x7F
        if payload_type != PCMU_PAYLOAD_TYPE:
            return
        header = 12 + 4 * (data[0] & 0x0F)
        timestamp = struct.unpack_from("!I", data, 4)[0]
        self.received.append(ReceivedPacket(time.monotonic(), packet_dbfs(data[header:]), timestamp))

    def send_payload(self, payload: bytes) -> None:
        if self.transport is None or self.remote is None:
            return
        header = struct.pack("!BBHII", 0x80, PCMU_PAYLOAD_TYPE, self._seq, self._timestamp, self._ssrc)
        self.transport.sendto(header + payload, self.remote)
        self._seq = (self._seq + 1) & 0xFFFF
        self._timestamp = (self._timestamp + SAMPLES_PER_PACKET) & 0xFFFFFFFF

    def start_sending(self) -> None:
        """One paced loop sends queued speech, else comfort silence (the bot's RTP timer never fires)."""
        self._sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        silence = bytes([0xFF]) * SAMPLES_PER_PACKET
        start = time.monotonic()
        index = 0
        while True:
            payload = self._pending.popleft() if self._pending else silence
            self.send_payload(payload)
            if payload is not silence and packet_dbfs(payload) > SPEECH_DBFS:
                self.last_speech_sent = time.monotonic()
            if not self._pending and self._played is not None and not self._played.done():
                self._played.set_result(None)
            index += 1
            delay = start + index * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:  # starved: restart the schedule instead of bursting
                start, index = time.monotonic(), 0

    async def play(self, ulaw: bytes) -> float | None:
        """Send ``ulaw`` in 20 ms packets; returns the send time of its last speech packet."""
        self.last_speech_sent = None
        self._played = asyncio.get_running_loop().create_future()
        for offset in range(0, len(ulaw) - SAMPLES_PER_PACKET + 1, SAMPLES_PER_PACKET):
            self._pending.append(ulaw[offset : offset + SAMPLES_PER_PACKET])
        await self._played
        return self.last_speech_sent

    def first_speech_after(self, moment: float) -> float | None:
        return next((p.at for p in self.received if p.at > moment and p.is_speech), None)

    async def wait_for_quiet(self, *, quiet_s: float, timeout_s: float, require_speech: bool = True) -> bool:
        """Wait until the bot has spoken (if required) and then stayed quiet for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            speech = [p.at for p in self.received if p.is_speech and p.at >= started]
            last = speech[-1] if speech else None
            now = time.monotonic()
            if (last is not None or not require_speech) and now - (last or started) >= quiet_s:
                return True
            await asyncio.sleep(0.05)
        return False

    def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self.transport is not None:
            self.transport.close()
