"""RTP numbering, wraparound, and whose media is heard: SDP address, strict symmetric-RTP latching, allow-list."""

from __future__ import annotations

import pytest

from sip_bridge.media.rtp import MediaPeerPolicy, RtpPacket, RtpReceiver, RtpSender, extend_sequence

PHONE = ("192.0.2.7", 4000)  # the address the caller's SDP names
NAT = ("198.51.100.20", 61002)  # where a caller behind NAT really sends from
INTRUDER = ("203.0.113.9", 4000)


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


def receiver_for(sdp_address: tuple[str, int] = PHONE, **policy: object) -> RtpReceiver:
    receiver = RtpReceiver(payload_types={0, 101}, policy=MediaPeerPolicy(**policy))  # type: ignore[arg-type]
    receiver.expect(sdp_address)
    return receiver


def test_sdp_address_is_heard_at_once_and_counts_loss_across_wrap() -> None:
    receiver = receiver_for()
    sender = RtpSender(0, sequence=65533)
    assert receiver.receive(b"garbage", PHONE) is None  # invalid packets do not latch
    assert receiver.receive(RtpSender(8).build(b"x"), PHONE) is None  # a payload type not negotiated neither
    assert receiver.receive(sender.build(b"a"), PHONE) is not None
    assert receiver.latched == PHONE
    sender.build(b"lost")  # 65534 never arrives
    for _ in range(3):  # 65535, 0, 1
        assert receiver.receive(sender.build(b"c"), PHONE) is not None
    stats = receiver.stats
    assert stats.packets_received == 4 and stats.packets_expected == 5 and stats.packets_lost == 1
    assert (stats.ignored_invalid, stats.ignored_payload_type) == (1, 1)


def test_an_early_packet_from_another_address_does_not_take_the_call() -> None:
    """Issue 15 item 8: one packet from a third party right after the 200 OK latched the bot to it."""
    receiver = receiver_for()
    intruder = RtpSender(0)
    assert receiver.receive(intruder.build(b"hijack"), INTRUDER) is None
    assert receiver.latched is None
    assert receiver.receive(RtpSender(0).build(b"hello"), PHONE) is not None
    assert receiver.latched == PHONE
    for _ in range(20):  # once the SDP address has spoken, no run of packets moves the latch
        assert receiver.receive(intruder.build(b"hijack"), INTRUDER) is None
    assert receiver.latched == PHONE
    assert receiver.stats.ignored_unlatched == 1 and receiver.stats.ignored_foreign_source == 20


def test_caller_behind_nat_is_latched_after_a_run_of_consecutive_packets_only() -> None:
    receiver = receiver_for(latch_packets=5)
    nat, intruder = RtpSender(0), RtpSender(0)
    for _ in range(4):
        last = nat.build(b"a")
        assert receiver.receive(last, NAT) is None
        assert receiver.receive(intruder.build(b"x"), INTRUDER) is None  # other sources keep their own count
    assert receiver.receive(last, NAT) is None  # a repeated sequence number (RFC 4733 end packets) is neutral
    assert receiver.latched is None
    assert receiver.receive(nat.build(b"a"), NAT) is not None  # the fifth in a row
    assert receiver.latched == NAT
    assert receiver.receive(RtpSender(0).build(b"late"), PHONE) is None  # latched for the rest of the call


def test_a_gap_or_a_new_ssrc_restarts_the_run() -> None:
    receiver = receiver_for(latch_packets=3)
    nat = RtpSender(0, ssrc=1)
    assert receiver.receive(nat.build(b"a"), NAT) is None
    assert receiver.receive(nat.build(b"a"), NAT) is None
    nat.build(b"skipped")
    assert receiver.receive(nat.build(b"a"), NAT) is None  # not consecutive: counting starts again
    assert receiver.receive(nat.build(b"a"), NAT) is None
    assert receiver.receive(RtpSender(0, ssrc=2, sequence=nat.sequence).build(b"b"), NAT) is None
    assert receiver.latched is None


def test_latching_off_hears_the_sdp_address_only() -> None:
    receiver = receiver_for(latching="off")
    nat = RtpSender(0)
    for _ in range(50):
        assert receiver.receive(nat.build(b"a"), NAT) is None
    assert receiver.receive(RtpSender(0).build(b"a"), PHONE) is not None


@pytest.mark.parametrize("source", [("203.0.113.9", 4000), ("::ffff:203.0.113.9", 4000)])
def test_sources_outside_the_allow_list_are_never_heard(source: tuple[str, int]) -> None:
    receiver = receiver_for(("203.0.113.9", 4000), allowed_networks=("192.0.2.0/24", "198.51.100.0/24"))
    for packet in [RtpSender(0).build(b"a") for _ in range(10)]:
        assert receiver.receive(packet, source) is None  # not even the SDP address, when outside
    assert receiver.stats.ignored_forbidden_source == 10 and receiver.latched is None
    assert not receiver.allows("203.0.113.9") and receiver.allows("::ffff:192.0.2.200")
    nat = RtpSender(0)
    assert [receiver.receive(nat.build(b"a"), NAT) is not None for _ in range(5)][-1]


def test_ipv4_mapped_source_is_the_sdp_address() -> None:
    receiver = receiver_for(("192.0.2.7", 4000))
    assert receiver.receive(RtpSender(0).build(b"a"), ("::ffff:192.0.2.7", 4000)) is not None
    assert receiver.latched is not None


def test_a_reinvite_naming_a_new_address_starts_over() -> None:
    receiver = receiver_for()
    assert receiver.receive(RtpSender(0).build(b"a"), PHONE) is not None
    receiver.expect(PHONE)  # same address again (hold, session refresh): the latch stays
    assert receiver.latched == PHONE
    moved = ("192.0.2.8", 5000)
    receiver.expect(moved)
    assert receiver.latched is None
    assert receiver.receive(RtpSender(0).build(b"b"), PHONE) is None
    assert receiver.receive(RtpSender(0).build(b"c"), moved) is not None


def test_rtcp_on_a_muxed_port_is_not_audio() -> None:
    receiver = RtpReceiver()
    sender_report = bytes([0x80, 200, 0, 6]) + bytes(24)
    assert receiver.receive(sender_report, ("192.0.2.7", 4001)) is None
    assert receiver.latched is None
