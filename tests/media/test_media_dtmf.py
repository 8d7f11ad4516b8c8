"""RFC 4733 telephone-events: sipp's real captures decode to exactly one key press each."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from media_pcap import SIPP_PCAPS, read_udp

from sip_bridge.media.dtmf import DtmfDecoder, TelephoneEvent, encode_digit
from sip_bridge.media.rtp import RtpReceiver

DTMF_PCAPS = sorted(SIPP_PCAPS.glob("dtmf_2833_*.pcap"))
NAMED_KEYS = {"pound": "#", "star": "*"}


def expected_digit(name: str) -> str:
    key = name.removeprefix("dtmf_2833_").removesuffix(".pcap")
    return NAMED_KEYS.get(key, key)


def test_all_twelve_sipp_dtmf_captures_are_present() -> None:
    assert len(DTMF_PCAPS) == 12


@pytest.mark.parametrize("path", DTMF_PCAPS, ids=lambda p: p.name)
def test_sipp_capture_decodes_to_exactly_one_digit(path: Path) -> None:
    datagrams = read_udp(path)
    receiver = RtpReceiver(payload_types={101})
    decoder = DtmfDecoder()
    digits = []
    end_packets = 0
    for datagram in datagrams:
        packet = receiver.receive(datagram.payload, datagram.source)
        assert packet is not None
        end_packets += TelephoneEvent.parse(packet.payload).end
        digit = decoder.feed(packet.timestamp, packet.payload)
        if digit is not None:
            digits.append(digit)
    assert end_packets == 3  # the capture really holds the redundant end packets we must collapse
    assert digits == [expected_digit(path.name)]


def test_reordered_and_retransmitted_packets_still_give_one_digit_per_press() -> None:
    packets = []
    for index, digit in enumerate("19#"):
        timestamp = 1000 + index * 4000
        packets += [(timestamp, payload) for payload, _ in encode_digit(digit, clock_rate=8000)]
    rng = random.Random(7)
    # Retransmit some packets and swap neighbours within each key press.
    noisy = []
    for item in packets:
        noisy.append(item)
        if rng.random() < 0.3:
            noisy.append(item)
    for i in range(0, len(noisy) - 1, 3):
        if noisy[i][0] == noisy[i + 1][0]:
            noisy[i], noisy[i + 1] = noisy[i + 1], noisy[i]
    decoder = DtmfDecoder()
    digits = [d for ts, payload in noisy if (d := decoder.feed(ts, payload)) is not None]
    assert digits == ["1", "9", "#"]


def test_same_digit_twice_is_two_presses_and_a_late_end_packet_is_silent() -> None:
    decoder = DtmfDecoder()
    first = encode_digit("5", clock_rate=8000)
    second = encode_digit("5", clock_rate=8000)
    got = [decoder.feed(100, p) for p, _ in first] + [decoder.feed(5000, p) for p, _ in second]
    got.append(decoder.feed(100, first[-1][0]))  # a straggler of the first press
    assert [d for d in got if d] == ["5", "5"]


def test_long_press_split_into_segments_is_one_digit() -> None:
    decoder = DtmfDecoder()
    segment = TelephoneEvent(3, False, 10, 0xFFFF).serialize()
    tail = TelephoneEvent(3, True, 10, 800).serialize()
    got = [decoder.feed(0, segment), decoder.feed(0xFFFF, segment), decoder.feed(0xFFFF, tail)]
    assert [d for d in got if d] == ["3"]


def test_encoding_follows_rfc4733() -> None:
    packets = encode_digit("#", clock_rate=8000, duration_ms=100, packet_ms=20)
    events = [TelephoneEvent.parse(payload) for payload, _ in packets]
    assert [e.event for e in events] == [11] * len(events)
    assert packets[0][1] is True and not any(marker for _, marker in packets[1:])
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    with pytest.raises(ValueError):
        encode_digit("x", clock_rate=8000)
    decoder = DtmfDecoder()
    assert [d for p, _ in packets if (d := decoder.feed(42, p))] == ["#"]


def test_junk_payloads_are_ignored() -> None:
    decoder = DtmfDecoder()
    assert decoder.feed(1, b"\x01") is None
    assert decoder.feed(2, TelephoneEvent(40, True, 0, 10).serialize()) is None  # not a keypad event
