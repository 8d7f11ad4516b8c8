"""RTP (RFC 3550) sender and receiver state, sans-I/O.

Packet parsing/serialisation is aiortc's ``RtpPacket`` (see docs/decisions/0350): it already handles CSRCs,
header extensions and padding, and aiortc is our WebRTC stack anyway. What aiortc lacks for a SIP bridge lives
here: who may send us media (SDP address, network allow-list, strict symmetric-RTP latching), sequence/timestamp
bookkeeping per codec clock, and call statistics.
"""

from __future__ import annotations

import ipaddress
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from aiortc.rtp import RtpPacket

__all__ = [
    "LatchState",
    "MediaPeerPolicy",
    "RtpPacket",
    "RtpReceiver",
    "RtpSender",
    "RtpStats",
    "extend_sequence",
]

Address = tuple[str, int]
_RTCP_PAYLOAD_TYPES = range(72, 77)  # 200..204 with the marker bit folded in: RTCP on a muxed port


@dataclass(frozen=True)
class MediaPeerPolicy:
    """Whose media a call leg accepts and whether it may speak before the far end was heard.

    The SDP names where the far end's media comes from; anything else is a third party until proven otherwise.
    ``latching="strict"`` still lets a caller behind NAT (whose packets come from another address than its SDP
    says) be heard: while the SDP address has sent nothing, a source inside ``allowed_networks`` that sends
    ``latch_packets`` consecutive packets of one SSRC is taken for the rest of the call (a single early packet
    cannot win). ``"off"`` accepts the SDP address only. ``packets_before_receive`` bounds what we send to an
    address that has not sent us anything (reflection: a forged SDP must not aim our audio at a third party);
    None means no bound, for legs we originate to a configured target.
    """

    allowed_networks: tuple[str, ...] = ()  # empty: any source address
    latching: Literal["off", "strict"] = "strict"
    latch_packets: int = 5
    packets_before_receive: int | None = 0
    # What the operator should change when media is dropped for coming from outside ``allowed_networks`` (the
    # application names its own setting); only logged, so it takes no part in comparing policies.
    allow_list_hint: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        """Reject a malformed network or bound when the policy is made (at start), not on the first call."""
        for network in self.allowed_networks:
            ipaddress.ip_network(network, strict=False)
        if self.latching not in ("off", "strict"):
            raise ValueError(f"latching must be 'off' or 'strict', not {self.latching!r}")
        if self.latch_packets < 1 or (
            self.packets_before_receive is not None and self.packets_before_receive < 0
        ):
            raise ValueError("latch_packets must be at least 1 and packets_before_receive not negative")


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
    ignored_forbidden_source: int = 0  # outside the network allow-list
    ignored_unlatched: int = 0  # from another source while it had not (yet) proven itself
    ignored_oversize: int = 0  # larger than the codec can carry (counted by the endpoint)
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


class _Probation:
    """A source that is not the SDP address, on its way to being latched: SSRC and run of sequence numbers."""

    __slots__ = ("next_sequence", "run", "ssrc")

    def __init__(self, packet: RtpPacket) -> None:
        self.ssrc = packet.ssrc
        self.next_sequence = (packet.sequence_number + 1) & 0xFFFF
        self.run = 1

    def advance(self, packet: RtpPacket) -> int:
        """The length of the run of consecutive packets including this one (1 when this one starts a new run)."""
        if packet.ssrc == self.ssrc and packet.sequence_number == self.next_sequence:
            self.run += 1
        elif packet.ssrc != self.ssrc or packet.sequence_number != (self.next_sequence - 1) & 0xFFFF:
            # Anything but a repeat of the last sequence number (RFC 4733 end packets) starts a new run.
            self.ssrc = packet.ssrc
            self.run = 1
        self.next_sequence = (packet.sequence_number + 1) & 0xFFFF
        return self.run


class LatchState(Enum):
    """Whose media a receiver hears, see :class:`RtpReceiver`."""

    OPEN = (
        "open"  # nobody heard yet: the SDP address's first valid packet, or a run from another source, wins
    )
    PROBATION = "probation"  # another allowed source is sending a run; the SDP address may still win first
    LATCHED = "latched"  # one source is the far end; every other one is ignored until a re-INVITE moves it


_MAX_PROBATIONS = 8  # candidate sources tracked at once; the least recently heard is forgotten first


class RtpReceiver:
    """Validates incoming datagrams and decides whose media is the far end's (see :class:`MediaPeerPolicy`).

    The source is latched once: the SDP address on its first valid packet, or (strict latching, SDP address
    silent so far) another allowed source after a run of consecutive packets. After that every other source is
    ignored for the rest of the call, except that a re-INVITE naming a new address (:meth:`expect`) starts over.
    """

    def __init__(
        self, payload_types: set[int] | None = None, *, policy: MediaPeerPolicy | None = None
    ) -> None:
        self.payload_types = payload_types
        self.policy = policy or MediaPeerPolicy()
        self._networks = [ipaddress.ip_network(net, strict=False) for net in self.policy.allowed_networks]
        self.expected: Address | None = None  # where the SDP says the far end's media comes from
        self.latched: Address | None = None
        self.ssrc: int | None = None
        self.stats = RtpStats()
        self._probations: OrderedDict[Address, _Probation] = OrderedDict()

    @property
    def state(self) -> LatchState:
        if self.latched is not None:
            return LatchState.LATCHED
        return LatchState.PROBATION if self._probations else LatchState.OPEN

    def expect(self, address: Address | None) -> None:
        """The address the far end's SDP names; a different one than before (re-INVITE) forgets the latch."""
        if address is not None and address[1] == 0:
            address = None  # a disabled stream names no source
        if self.expected is not None and address is not None and _same_address(address, self.expected):
            return
        self.expected = address
        self.relatch()

    def allows(self, host: str) -> bool:
        """Whether ``host`` is inside the network allow-list (we neither hear nor speak to anything outside)."""
        if not self._networks:
            return True
        address = _ip(host)
        return address is not None and any(
            address.version == net.version and address in net for net in self._networks
        )

    def relatch(self) -> None:
        """Forget the latched source (the signalling moved the peer's media)."""
        self.latched = None
        self._probations.clear()

    def receive(self, data: bytes, source: Address) -> RtpPacket | None:
        """The parsed packet, or None when it must be ignored (counted in ``stats``)."""
        stats = self.stats
        if self.latched is not None and not _same_address(source, self.latched):
            stats.ignored_foreign_source += 1
            return None
        if self.latched is None and not self.allows(source[0]):
            stats.ignored_forbidden_source += 1
            return None
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            stats.ignored_invalid += 1
            return None
        if packet.payload_type in _RTCP_PAYLOAD_TYPES:
            return None
        if self.payload_types is not None and packet.payload_type not in self.payload_types:
            stats.ignored_payload_type += 1
            return None
        if self.latched is None and not self._admit(packet, source):
            stats.ignored_unlatched += 1
            return None
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

    def _admit(self, packet: RtpPacket, source: Address) -> bool:
        """Whether this valid packet from a not yet latched source latches it now."""
        address = (source[0], source[1])
        if self.expected is not None and _same_address(address, self.expected):
            self.latched = address
            self._probations.clear()
            return True
        if self.policy.latching != "strict":
            return False
        probation = self._probations.get(address)
        if probation is None:
            probation = self._probations[address] = _Probation(packet)
            run = 1
            while len(self._probations) > _MAX_PROBATIONS:
                self._probations.popitem(last=False)
        else:
            self._probations.move_to_end(address)
            run = probation.advance(packet)
        if run < max(1, self.policy.latch_packets):
            return False
        self.latched = address
        self._probations.clear()
        return True


def _same_address(a: Address, b: Address) -> bool:
    """Same host and port, comparing IP addresses by value (``::ffff:192.0.2.1`` is ``192.0.2.1``)."""
    if a[1] != b[1]:
        return False
    return a[0] == b[0] or _canonical_host(a[0]) == _canonical_host(b[0])


def _canonical_host(host: str) -> str:
    address = _ip(host)
    return host.lower() if address is None else str(address)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address in ``host`` (an IPv4-mapped IPv6 address as IPv4, zone dropped); None for a name."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
