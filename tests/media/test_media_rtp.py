"""RTP numbering, wraparound and symmetric-RTP latching."""

from __future__ import annotations

from sip_bridge.media.rtp import RtpPacket, RtpReceiver, RtpSender, extend_sequence


def test_sender_wraps_sequence_and_timestamp() -> None:
    sender = RtpSender(0, ssrc=0x1234, sequence=0xFFFE, timestamp=0xFFFFFF00)
    seqs: list[int] = []
    stamps: list[int] = []
    for _ in range(4):
        packet = RtpPacket.parse(sender.build(b"\xff" * 160, marker=not seqs))
        seqs.append(packet.sequence_number)
        stamps.append(packet.timestamp)
        assert packet.ssrc == 0x1234 and packet.payload_type == 0
        sender.advance(160)
    assert seqs == [0xFFFE, 0xFFFF, 0, 1]
    assert stamps == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]
    assert sender.stats.packets_sent == 4


def test_marker_and_explicit_timestamp_for_events() -> None:
    sender = RtpSender(8, timestamp=5000)
    first = RtpPacket.parse(sender.build(b"x", marker=True))
    event = RtpPacket.parse(sender.build(b"\x01\x0a\x00\xa0", payload_type=101, timestamp=4000))
    assert first.marker == 1 and event.marker == 0
    assert event.payload_type == 101 and event.timestamp == 4000
    assert event.sequence_number == (first.sequence_number + 1) & 0xFFFF


def test_extend_sequence_across_wraparound() -> None:
    assert extend_sequence(2, 65534) == 65538
    assert extend_sequence(65535, 65538) == 65535
    assert extend_sequence(100, 100) == 100
    assert extend_sequence(0, 0x1FFFF) == 0x20000


def test_receiver_latches_to_first_valid_source_and_counts_loss_across_wrap() -> None:
    receiver = RtpReceiver(payload_types={0})
    sender = RtpSender(0, sequence=65533)
    phone = ("192.0.2.7", 4000)
    intruder = ("203.0.113.9", 4000)
    assert receiver.receive(b"garbage", intruder) is None  # invalid packets do not latch
    assert receiver.receive(RtpSender(8).build(b"x"), intruder) is None  # wrong payload type neither
    assert receiver.receive(sender.build(b"a"), phone) is not None
    assert receiver.latched == phone
    assert receiver.receive(RtpSender(0).build(b"b"), intruder) is None
    sender.build(b"lost")  # 65534 never arrives
    for _ in range(3):  # 65535, 0, 1
        assert receiver.receive(sender.build(b"c"), phone) is not None
    stats = receiver.stats
    assert stats.packets_received == 4 and stats.packets_expected == 5 and stats.packets_lost == 1
    assert (
        stats.ignored_foreign_source == 1 and stats.ignored_invalid == 1 and stats.ignored_payload_type == 1
    )
    receiver.relatch()
    assert receiver.receive(RtpSender(0).build(b"d"), intruder) is not None
    assert receiver.latched == intruder


def test_rtcp_on_a_muxed_port_is_not_audio() -> None:
    receiver = RtpReceiver()
    sender_report = bytes([0x80, 200, 0, 6]) + bytes(24)
    assert receiver.receive(sender_report, ("192.0.2.7", 4001)) is None
    assert receiver.latched is None
