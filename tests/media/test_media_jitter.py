"""Adaptive jitter buffer: reordering, loss, late packets, wraparound, adaptation; loss concealment."""

from __future__ import annotations

import random

import numpy as np

from sip_bridge.media.jitter import BufferedPacket, JitterBuffer, LossConcealer, Playout


def payload(seq: int) -> bytes:
    return seq.to_bytes(2, "big") * 80


def play(buffer: JitterBuffer, count: int) -> list[int | str | None]:
    out: list[int | str | None] = []
    for _ in range(count):
        item = buffer.pop()
        if isinstance(item, BufferedPacket):
            out.append(item.sequence & 0xFFFF)
        elif item is Playout.LOST:
            out.append("lost")
        else:
            out.append(None)
    return out


def test_reordered_packets_play_in_sequence_across_wraparound() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=100)
    order = [65533, 65535, 65534, 1, 0, 2, 3]
    for index, seq in enumerate(order):
        buffer.put(seq, ((seq - 65533) & 0xFFFF) * 160, payload(seq), index * 0.02)
    assert play(buffer, 8) == [65533, 65534, 65535, 0, 1, 2, 3, None]
    assert buffer.stats.lost == 0 and buffer.stats.underruns == 1


def test_prebuffers_to_the_target_before_playing() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=60)
    buffer.put(10, 1600, payload(10), 0.0)
    buffer.put(11, 1760, payload(11), 0.02)
    assert play(buffer, 1) == [None]  # 40 ms < 60 ms target
    buffer.put(12, 1920, payload(12), 0.04)
    assert play(buffer, 1) == [10]


def test_loss_is_reported_and_late_and_duplicate_packets_are_dropped() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=60)
    for seq in (100, 101, 103, 104):
        buffer.put(seq, seq * 160, payload(seq), seq * 0.02)
    assert play(buffer, 2) == [100, 101]
    assert play(buffer, 1) == ["lost"]
    assert buffer.put(102, 102 * 160, payload(102), 3.0) is False  # too late now
    assert buffer.put(104, 104 * 160, payload(104), 3.0) is False  # duplicate
    assert play(buffer, 2) == [103, 104]
    assert (buffer.stats.lost, buffer.stats.late, buffer.stats.duplicates) == (1, 1, 1)


def test_delay_target_follows_arrival_jitter_within_bounds() -> None:
    rng = random.Random(3)
    steady = JitterBuffer(8000, min_delay_ms=20, max_delay_ms=200)
    jittery = JitterBuffer(8000, min_delay_ms=20, max_delay_ms=200)
    for seq in range(500):
        steady.put(seq, seq * 160, payload(seq), seq * 0.02)
        jittery.put(seq, seq * 160, payload(seq), seq * 0.02 + rng.uniform(0, 0.06))
    assert steady.jitter_ms < 0.5 and round(steady.target_delay_ms) == 20
    assert 10 < jittery.jitter_ms < 40
    assert 40 < jittery.target_delay_ms <= 200
    wild = JitterBuffer(8000, min_delay_ms=20, max_delay_ms=200)
    for seq in range(200):
        wild.put(seq, seq * 160, payload(seq), seq * 0.02 + rng.uniform(0, 1.0))
    assert wild.target_delay_ms == 200


def test_underrun_raises_the_delay_and_an_overfull_buffer_sheds() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=20, max_delay_ms=200)
    buffer.put(0, 0, payload(0), 0.0)
    assert play(buffer, 2) == [0, None]
    assert buffer.target_delay_ms == 40  # one underrun: one packet more
    for seq in range(1, 40):  # a burst arrives at once
        buffer.put(seq, seq * 160, payload(seq), 1.0)
    played = [x for x in play(buffer, 40) if isinstance(x, int)]
    assert played == sorted(played) and buffer.stats.shed > 0
    assert buffer.depth_ms <= buffer.target_delay_ms + 40


def test_new_stream_after_a_big_sequence_jump_resets() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=20)
    buffer.put(10, 0, payload(10), 0.0)
    assert play(buffer, 1) == [10]
    buffer.put(40000, 0, payload(40000), 0.1)
    assert play(buffer, 1) == [40000]
    assert buffer.stats.resets == 1


def test_concealment_repeats_attenuated_then_goes_silent() -> None:
    concealer = LossConcealer(attenuation=0.5, max_repeats=2)
    assert concealer.conceal(8) == bytes(8)  # nothing heard yet: silence
    good = np.full(160, 1000, dtype=np.int16).tobytes()
    concealer.good(good)
    first = np.frombuffer(concealer.conceal(320), dtype=np.int16)
    second = np.frombuffer(concealer.conceal(320), dtype=np.int16)
    third = np.frombuffer(concealer.conceal(320), dtype=np.int16)
    assert first.size == 160 and set(first) == {500}
    assert set(second) == {250}
    assert not third.any()


def test_event_packets_sent_alongside_audio_do_not_slow_playout() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=40)
    seq = 0
    played: list[int | str | None] = []
    for frame in range(60):  # audio every 20 ms, plus an RFC 4733 packet beside it for frames 10..39
        buffer.put(seq, frame * 160, payload(seq), frame * 0.02)
        seq += 1
        if 10 <= frame < 40:
            buffer.put(seq, 1600, None, frame * 0.02 + 0.001)
            seq += 1
        played += play(buffer, 1)  # the playout clock: one frame per 20 ms
    audio = [x for x in played if isinstance(x, int)]
    assert len(audio) >= 57 and "lost" not in played
    assert buffer.stats.shed == 0 and buffer.depth_ms <= 60
