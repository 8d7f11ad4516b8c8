"""Adaptive jitter buffer: reordering, loss, late packets, wraparound, adaptation; loss concealment."""

from __future__ import annotations

import random

import numpy as np
import pytest

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


def test_new_stream_after_a_big_sequence_jump_resynchronises_on_a_run() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=20)
    buffer.put(10, 0, payload(10), 0.0)
    assert play(buffer, 1) == [10]
    assert buffer.put(40000, 0, payload(40000), 0.1) is False  # one packet far away: a stray
    assert buffer.put(40001, 160, payload(40001), 0.12) is False
    assert buffer.put(40002, 320, payload(40002), 0.14) is True  # the third in a row: a new stream
    assert play(buffer, 3) == [40000, 40001, 40002]
    assert buffer.stats.resets == 1 and buffer.stats.strays == 2


@pytest.mark.parametrize("jump", [2999, 26, -40, 3001, 40000])
def test_one_packet_far_from_the_playout_point_does_not_move_it(jump: int) -> None:
    """Issue 15 item 10: one packet at sequence +2999 made the bot deaf for the rest of the call."""
    buffer = JitterBuffer(8000, min_delay_ms=40)
    played: list[int | str | None] = []
    for seq in range(100):
        buffer.put(seq, seq * 160, payload(seq), seq * 0.02)
        if seq == 50:
            stray = (seq + jump) & 0xFFFF
            assert buffer.put(stray, stray * 160, payload(stray), seq * 0.02) is False
        played += play(buffer, 1)
    audio = [x for x in played if isinstance(x, int)]
    assert audio == list(range(len(audio))) and len(audio) >= 97
    assert "lost" not in played and buffer.stats.late == 0 and buffer.stats.resets == 0


def test_a_stray_behind_before_playout_does_not_move_the_start() -> None:
    buffer = JitterBuffer(8000, min_delay_ms=40)
    buffer.put(1000, 0, payload(1000), 0.0)
    buffer.put(900, 0, payload(900), 0.0)  # 100 behind the first packet: not reordering
    buffer.put(999, 0, payload(999), 0.0)  # one behind: reordering, playout starts there
    buffer.put(1001, 0, payload(1001), 0.0)
    assert play(buffer, 3) == [999, 1000, 1001]


def test_buffer_stays_small_under_random_sequence_numbers() -> None:
    rng = random.Random(11)
    buffer = JitterBuffer(8000, min_delay_ms=40)
    for index in range(5000):
        seq = rng.getrandbits(16)
        buffer.put(seq, rng.getrandbits(32), payload(seq) if rng.random() < 0.9 else None, index * 0.001)
        if index % 20 == 0:
            play(buffer, 1)
        assert len(buffer) <= 40


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
