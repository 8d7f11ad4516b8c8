"""RTP (RFC 3550) sender and receiver state, sans-I/O.

Packet parsing/serialisation is aiortc's ``RtpPacket`` (see docs/decisions/0350): it already handles CSRCs,
header extensions and padding, and aiortc is our WebRTC stack anyway. What aiortc lacks for a SIP bridge lives
here: symmetric-RTP latching, sequence/timestamp bookkeeping per codec clock, and call statistics.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from aiortc.rtp import RtpPacket

__all__ = ["RtpPacket", "RtpReceiver", "RtpSender", "RtpStats", "extend_sequence"]

Address = tuple[str, int]
_RTCP_PAYLOAD_TYPES = range(72, 77)  # 200..204 with the marker bit folded in: RTCP on a muxed port


def extend_sequence(seq: int, reference: int) -> int:
    """Map a 16-bit sequence number to the extended (unwrapped) number closest to ``reference``."""
    candidate = (reference & ~0xFFFF) | seq
    if candidate - reference > 0x8000:
        candidate -= 0x10000
    elif reference - candidate > 0x8000:
        candidate += 0x10000
    return candidate


@dataclass
class RtpStats:
    packets_received: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    bytes_sent: int = 0
    ignored_foreign_source: int = 0
    ignored_invalid: int = 0
    ignored_payload_type: int = 0
    # Loss bookkeeping for the current stream (SSRC) only; the counters above are totals.
    stream_packets_received: int = 0
    first_extended_seq: int | None = None
    highest_extended_seq: int | None = None

    @property
    def packets_expected(self) -> int:
        if self.first_extended_seq is None or self.highest_extended_seq is None:
            return 0
        return self.highest_extended_seq - self.first_extended_seq + 1

    @property
    def packets_lost(self) -> int:
        return max(0, self.packets_expected - self.stream_packets_received)


class RtpSender:
    """Numbers outgoing packets: random initial SSRC/seq/timestamp, timestamp in the codec's RTP clock."""

    def __init__(
        self,
        payload_type: int,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc if ssrc is not None else random.getrandbits(32)
        self.sequence = sequence if sequence is not None else random.getrandbits(16)
        self.timestamp = timestamp if timestamp is not None else random.getrandbits(32)
        self.stats = RtpStats()

    def build(
        self,
        payload: bytes,
        *,
        marker: bool = False,
        payload_type: int | None = None,
        timestamp: int | None = None,
    ) -> bytes:
        """Serialize one packet at the current (or a given, e.g. DTMF event) timestamp; seq advances by one."""
        packet = RtpPacket(
            payload_type=self.payload_type if payload_type is None else payload_type,
            marker=int(marker),
            sequence_number=self.sequence,
            timestamp=self.timestamp if timestamp is None else timestamp,
            ssrc=self.ssrc,
            payload=payload,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        data: bytes = packet.serialize()
        self.stats.packets_sent += 1
        self.stats.bytes_sent += len(data)
        return data

    def advance(self, samples: int) -> None:
        """Move the media clock on by one frame's worth of RTP clock ticks (with 32-bit wraparound)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF


class RtpReceiver:
    """Validates incoming datagrams and latches to the first valid source (symmetric RTP, RFC 4961 spirit).

    A phone behind NAT sends from an address other than the one in its SDP; once a valid packet has arrived we
    answer to where it came from and ignore everyone else (media injection by a third party).
    """

    def __init__(self, payload_types: set[int] | None = None) -> None:
        self.payload_types = payload_types
        self.latched: Address | None = None
        self.ssrc: int | None = None
        self.stats = RtpStats()

    def relatch(self) -> None:
        """Forget the latched source, e.g. after a re-INVITE moved the peer's media."""
        self.latched = None

    def receive(self, data: bytes, source: Address) -> RtpPacket | None:
        """The parsed packet, or None when it must be ignored (counted in ``stats``)."""
        if self.latched is not None and source[:2] != self.latched[:2]:
            self.stats.ignored_foreign_source += 1
            return None
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.stats.ignored_invalid += 1
            return None
        if packet.payload_type in _RTCP_PAYLOAD_TYPES:
            return None
        if self.payload_types is not None and packet.payload_type not in self.payload_types:
            self.stats.ignored_payload_type += 1
            return None
        if self.latched is None:
            self.latched = (source[0], source[1])
        stats = self.stats
        if self.ssrc != packet.ssrc:
            self.ssrc = packet.ssrc
            stats.first_extended_seq = stats.highest_extended_seq = None
            stats.stream_packets_received = 0
        reference = stats.highest_extended_seq
        extended = (
            packet.sequence_number
            if reference is None
            else extend_sequence(packet.sequence_number, reference)
        )
        if stats.first_extended_seq is None or reference is None:
            stats.first_extended_seq = extended
            stats.highest_extended_seq = extended
        else:
            stats.highest_extended_seq = max(reference, extended)
            stats.first_extended_seq = min(stats.first_extended_seq, extended)
        stats.packets_received += 1
        stats.stream_packets_received += 1
        stats.bytes_received += len(data)
        return packet
