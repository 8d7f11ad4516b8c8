"""A tiny pcap reader for the sipp sample captures: global header + records, Ethernet/IPv4/UDP -> payload."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SIPP_PCAPS = Path("/usr/share/sip-tester")


@dataclass(frozen=True)
class UdpDatagram:
    time_s: float
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


def read_udp(path: Path) -> list[UdpDatagram]:
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    if magic == 0xA1B2C3D4:
        endian = "<"
    elif magic == 0xD4C3B2A1:
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    link_type = struct.unpack_from(endian + "I", data, 20)[0]
    if link_type != 1:
        raise ValueError(f"{path}: link type {link_type} is not Ethernet")
    offset = 24
    datagrams = []
    while offset + 16 <= len(data):
        seconds, micros, captured, _ = struct.unpack_from(endian + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < 14 + 20 or struct.unpack_from("!H", frame, 12)[0] != 0x0800:
            continue
        ip = frame[14:]
        header_length = (ip[0] & 0x0F) * 4
        if ip[9] != 17:  # not UDP
            continue
        source_ip = ".".join(str(b) for b in ip[12:16])
        destination_ip = ".".join(str(b) for b in ip[16:20])
        udp = ip[header_length:]
        source_port, destination_port, length = struct.unpack_from("!HHH", udp)
        datagrams.append(
            UdpDatagram(
                seconds + micros / 1e6,
                (source_ip, source_port),
                (destination_ip, destination_port),
                bytes(udp[8:length]),
            )
        )
    return datagrams
