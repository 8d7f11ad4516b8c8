"""Hostile RTP into one call's media (issue 15 item 10 and the RTP fuzz), on the sans-I/O media session.

The session is driven like its endpoint drives it (datagram in, then the pacing ticks due 20 ms later) on a
manual clock, so these tests are fast and exact. A caller's stream must survive what one packet, or thousands of
random and mutated ones, can do: afterwards the caller's voice is heard and a key press is decoded.
"""

from __future__ import annotations

import random
import struct
import tracemalloc

import numpy as np
import pytest

from sip_bridge.media import MediaSession, NegotiatedMedia
from sip_bridge.media.codecs import AudioCodec
from sip_bridge.media.dtmf import encode_digit
from sip_bridge.media.rtp import RtpSender
from sip_bridge.media.sdp import CodecSpec
from sip_bridge.media.session import DtmfReceived

CALLER = ("192.0.2.7", 4000)
DTMF_PT = 101
RATE = 8000
FRAME_BYTES = 160
START = 1000.0


class Call:
    """The bot's side of one PCMU call with the caller at CALLER; ``step`` is 20 ms of time."""

    def __init__(self) -> None:
        self.bot = MediaSession(input_rate=RATE, output_rate=RATE, inactivity_timeout_s=None)
        self.bot.configure(
            NegotiatedMedia(CodecSpec("PCMU", 0, 8000), DTMF_PT, 20, "sendrecv", CALLER[0], CALLER[1]), START
        )
        self.ticks = 0
        self.bot.advance(self.now)  # the first pacing tick, at the moment the media was negotiated
        self.digits: list[str] = []
        self.caller = RtpSender(0)
        self.codec = AudioCodec("PCMU")
        t = np.arange(RATE * 2) / RATE
        self.tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()

    @property
    def now(self) -> float:
        return START + self.ticks * 0.02  # as the pacer computes its deadlines: no drift from adding up

    def step(self, *datagrams: tuple[bytes, tuple[str, int]]) -> list[bytes]:
        """Deliver ``datagrams``, then let 20 ms pass; the frames the bot heard in that time."""
        for data, source in datagrams:
            self.bot.receive_datagram(data, source, self.now)
        self.ticks += 1
        self.bot.advance(self.now)
        assert all(out.destination == CALLER for out in self.bot.datagrams_to_send())
        self.digits += [event.digit for event in self.bot.next_events() if isinstance(event, DtmfReceived)]
        heard = []
        while (frame := self.bot.read_audio()) is not None:
            heard.append(frame)
        return heard

    def speech_packet(self) -> bytes:
        offset = (self.ticks * FRAME_BYTES * 2) % (len(self.tone) - FRAME_BYTES * 2)
        payload = self.codec.encode_frame(self.tone[offset : offset + FRAME_BYTES * 2])
        data = self.caller.build(payload)
        self.caller.advance(FRAME_BYTES)
        return data

    def talk(self, seconds: float) -> list[bytes]:
        heard: list[bytes] = []
        for _ in range(round(seconds / 0.02)):
            heard += self.step((self.speech_packet(), CALLER))
        return heard

    def press(self, digit: str) -> None:
        timestamp = self.caller.timestamp
        for payload, marker in encode_digit(digit, clock_rate=8000):
            self.step(
                (self.caller.build(payload, marker=marker, payload_type=DTMF_PT, timestamp=timestamp), CALLER)
            )
        self.caller.advance(FRAME_BYTES * 8)


def loud(frame: bytes) -> bool:
    """The caller's 440 Hz tone in this frame: loud, and most of its energy near 440 Hz (not noise)."""
    samples = np.frombuffer(frame, dtype=np.int16).astype(np.float64)
    if not samples.size or float(np.sqrt(np.mean(samples**2))) < 2000:
        return False
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    hz = np.fft.rfftfreq(samples.size, 1 / RATE)
    return float(spectrum[(hz > 300) & (hz < 600)].sum()) > 0.8 * float(spectrum.sum())


def test_one_packet_with_sequence_plus_2999_does_not_deafen_the_call() -> None:
    """Issue 15 item 10: the bot heard nothing for the rest of the call after this one packet."""
    call = Call()
    assert sum(map(loud, call.talk(1.0))) > 40
    stray = call.speech_packet()
    sequence = struct.unpack_from("!H", stray, 2)[0]
    call.step((stray[:2] + struct.pack("!H", (sequence + 2999) & 0xFFFF) + stray[4:], CALLER))
    after = call.talk(2.0)
    assert sum(map(loud, after[5:])) >= len(after[5:]) - 2


@pytest.mark.parametrize("size", [8000, 65000])
def test_an_oversize_payload_is_dropped_before_the_decoder(size: int) -> None:
    """Issue 15 item 10: 8,000- and 65,000-byte payloads silenced or garbled what followed."""
    call = Call()
    call.talk(1.0)
    huge = call.caller.build(b"\xff" * size)  # G.711 silence: seconds of it, if it were decoded
    call.step((huge, CALLER))
    after = call.talk(1.0)
    assert sum(map(loud, after[3:])) >= len(after[3:]) - 2
    assert call.bot.receiver.stats.ignored_oversize == 1


def _hostile(rng: random.Random, last: bytes) -> tuple[bytes, tuple[str, int]]:
    """One hostile datagram: random bytes, or the caller's last packet (same address) broken in one of many
    ways, or a valid packet from a third party."""
    base = bytearray(last)
    kind = rng.randrange(14)
    source = CALLER
    if kind == 0:
        data = rng.randbytes(rng.randrange(0, 200))
    elif kind == 1:  # wrong RTP version
        base[0] = (base[0] & 0x3F) | (rng.choice([0, 1, 3]) << 6)
        data = bytes(base)
    elif kind == 2:  # more CSRCs than the packet holds
        base[0] = (base[0] & 0xF0) | rng.randrange(1, 16)
        data = bytes(base[: rng.randrange(12, 40)])
    elif kind == 3:  # padding bit with a padding length beyond the packet (or zero)
        base[0] |= 0x20
        base[-1] = rng.choice([0, 255, len(base) + 1, rng.randrange(256)])
        data = bytes(base)
    elif kind == 4:  # header extension whose length runs past the end
        base[0] |= 0x10
        data = bytes(base[:12]) + struct.pack("!HH", 0xBEDE, rng.randrange(1, 0xFFFF)) + rng.randbytes(8)
    elif kind == 5:  # huge payloads
        struct.pack_into("!H", base, 2, (struct.unpack_from("!H", base, 2)[0] + 1) & 0xFFFF)
        data = bytes(base[:12]) + rng.randbytes(rng.choice([1921, 8000, 20000, 65000]))
    elif kind == 6:  # sequence jumps
        struct.pack_into("!H", base, 2, rng.getrandbits(16))
        data = bytes(base)
    elif kind == 7:  # another SSRC and timestamp
        struct.pack_into("!II", base, 4, rng.getrandbits(32), rng.getrandbits(32))
        data = bytes(base)
    elif kind == 8:  # random telephone-event payloads
        base[1] = (base[1] & 0x80) | DTMF_PT
        struct.pack_into("!HI", base, 2, rng.getrandbits(16), rng.getrandbits(32))
        data = bytes(base[:12]) + rng.randbytes(rng.choice([0, 1, 3, 4, 4, 4, 8, 300]))
    elif kind == 9:  # comfort noise with a random payload
        base[1] = 13
        data = bytes(base[:12]) + rng.randbytes(rng.randrange(0, 64))
    elif kind == 10:  # a payload type that was not negotiated (or RTCP on a muxed port)
        base[1] = rng.choice([8, 9, 96, 127, 72, 200 & 0x7F])
        data = bytes(base)
    elif kind == 11:  # truncated header
        data = bytes(base[: rng.randrange(0, 12)])
    elif kind == 12:  # random garbage payload of a plausible size, a repeat of the caller's last packet
        data = bytes(base[:12]) + rng.randbytes(rng.randrange(0, 1921))
    else:  # a third party, valid packets
        source = (f"203.0.113.{rng.randrange(1, 255)}", rng.randrange(1024, 65536))
        data = bytes(base)
    return data, source


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_rtp_fuzz_leaves_the_caller_heard(seed: int) -> None:
    """2,000 random and mutated packets between the caller's own: no exception, bounded memory, the caller's
    voice heard throughout, at most 10 key presses a second, and a real key press decoded afterwards."""
    rng = random.Random(seed)
    call = Call()
    assert sum(map(loud, call.talk(0.5))) > 10
    frames: list[bytes] = []
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        sent = 0
        while sent < 2000:
            speech = call.speech_packet()
            hostile = [_hostile(rng, speech) for _ in range(rng.randrange(4))]
            sent += len(hostile)
            heard = call.step((speech, CALLER), *hostile)
            assert len(heard) <= 1  # one frame per 20 ms, never a backlog
            assert len(call.bot.jitter) <= 40
            frames += heard
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 4_000_000, grown
    assert sum(map(loud, frames)) >= 0.95 * len(frames)
    seconds = len(frames) * 0.02
    assert len(call.digits) <= 10 * seconds + 10
    for _ in range(100):  # the caller is silent for 2 s: the key-press rate window is clear again
        call.step()
    call.digits.clear()
    after = call.talk(1.0)
    # The 2 s pause counts as jitter, so the buffer first refills to its largest delay (200 ms = 10 frames).
    assert sum(map(loud, after[10:])) >= len(after[10:]) - 2
    call.press("7")
    assert call.digits == ["7"]
