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
    receiver.expect(datagrams[0].source)  # the SDP address
    decoder = DtmfDecoder()
    digits = []
    end_packets = 0
    for datagram in datagrams:
        packet = receiver.receive(datagram.payload, datagram.source)
        assert packet is not None
        end_packets += TelephoneEvent.parse(packet.payload).end
        digit = decoder.feed(packet.timestamp, packet.payload, datagram.time_s)
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
    digits = [d for ts, payload in noisy if (d := decoder.feed(ts, payload, ts / 8000)) is not None]
    assert digits == ["1", "9", "#"]


def test_same_digit_twice_is_two_presses_and_a_late_end_packet_is_silent() -> None:
    decoder = DtmfDecoder()
    first = encode_digit("5", clock_rate=8000)
    second = encode_digit("5", clock_rate=8000)
    got = [decoder.feed(100, p, 0.0) for p, _ in first] + [decoder.feed(5000, p, 0.5) for p, _ in second]
    got.append(decoder.feed(100, first[-1][0], 0.6))  # a straggler of the first press
    assert [d for d in got if d] == ["5", "5"]


def test_long_press_split_into_segments_is_one_digit() -> None:
    decoder = DtmfDecoder()
    segment = TelephoneEvent(3, False, 10, 0xFFFF).serialize()
    tail = TelephoneEvent(3, True, 10, 800).serialize()
    start = TelephoneEvent(3, False, 10, 160).serialize()
    got = [decoder.feed(0, start, 0.0), decoder.feed(0, segment, 8.0)]
    got += [decoder.feed(0xFFFF, segment, 8.2), decoder.feed(0xFFFF, tail, 8.3)]
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
    assert [d for p, _ in packets if (d := decoder.feed(42, p, 0.0))] == ["#"]


def test_junk_payloads_are_ignored() -> None:
    decoder = DtmfDecoder()
    assert decoder.feed(1, b"\x01", 0.0) is None
    assert decoder.feed(2, TelephoneEvent(40, True, 0, 10).serialize(), 0.0) is None  # not a keypad event
    assert decoder.feed(3, TelephoneEvent(5, False, 56, 160).serialize(), 0.0) is None  # below -55 dBm0
    assert decoder.feed(4, TelephoneEvent(5, False, 10, 8001).serialize(), 0.0) is None  # no start for 1 s
    assert decoder.feed(5, TelephoneEvent(5, False, 55, 8000).serialize(), 0.0) == "5"


def test_random_event_payloads_give_few_digits_and_never_more_than_ten_a_second() -> None:
    """Issue 15 item 10: random telephone-event payloads produced 395 digits and triggered a hand-off."""
    rng = random.Random(15)
    decoder = DtmfDecoder()
    digits = [
        digit
        for index in range(2000)  # 2,000 packets over 4 s
        if (digit := decoder.feed(rng.getrandbits(32), rng.randbytes(4), index * 0.002)) is not None
    ]
    assert len(digits) <= 4 * 10  # no start, no updates, yet a long duration: most are not key presses
    # Well-formed key-press starts, each with a new timestamp, 100 in one second: the rate cap holds.
    flood = [
        decoder.feed(10_000 + i * 7, TelephoneEvent(i % 16, False, 10, 0).serialize(), 5 + i / 100)
        for i in range(100)
    ]
    assert sum(digit is not None for digit in flood) == 10 and decoder.suppressed == 90


def test_retransmitted_end_packets_stay_silent_after_many_later_presses() -> None:
    decoder = DtmfDecoder()
    presses = [(1000 + index * 1600, encode_digit(str(index % 10), clock_rate=8000)) for index in range(12)]
    got = [
        decoder.feed(ts, p, index * 0.2) for index, (ts, packets) in enumerate(presses) for p, _ in packets
    ]
    assert "".join(d for d in got if d) == "012345678901"
    late = [decoder.feed(ts, packets[-1][0], 3.0) for ts, packets in presses]  # all their end packets again
    assert late == [None] * 12
