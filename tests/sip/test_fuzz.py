"""Seeded, bounded fuzzing of the sans-I/O SIP core (issue 15): mutated datagrams and TCP byte streams.

Built from valid messages and the RFC 4475 torture files. Whatever arrives: no exception escapes
``UserAgent.receive``, a datagram gets at most one reply (with a fixed reason phrase, to the source host, to a
usable port), every table stays bounded, and afterwards a valid OPTIONS and a valid INVITE still work.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest

from sip_bridge.sip import events as ev
from sip_bridge.sip.message import REASONS, Response
from sip_bridge.sip.parser import ParseError, StreamFramer, parse_datagram

from .helpers import SDP_ANSWER, SDP_OFFER, Harness, response_to, sip_request
from .test_rfc4475 import TORTURE_DIR

SEEDS = [15, 3261, 4475]
DATAGRAMS_PER_SEED = 2000
STREAMS_PER_SEED = 40
# many loopback hosts: error replies are capped per source host, and the fuzz should see them
ALLOWED_SOURCES = [(f"127.0.0.{n}", 5070 + n % 3) for n in range(1, 41)]
FORBIDDEN_SOURCE = ("198.51.100.9", 5060)
SOURCE_HOSTS = {"127.0.0.1", FORBIDDEN_SOURCE[0], *(host for host, _ in ALLOWED_SOURCES)}
FIXED_PHRASES = {*REASONS.values(), "Subscription Does Not Exist"}
STATUS_LINE = re.compile(rb"SIP/2\.0 ([1-6][0-9]{2}) ([^\r\n]*)\r\n")


def base_messages() -> list[bytes]:
    valid = [
        sip_request("OPTIONS"),
        sip_request("INVITE", body=SDP_OFFER, branch="z9hG4bK-inv"),
        sip_request("ACK", to_tag="x", branch="z9hG4bK-ack"),
        sip_request("BYE", to_tag="x", branch="z9hG4bK-bye", cseq=2),
        sip_request("CANCEL", branch="z9hG4bK-cancel"),
        sip_request(
            "INFO", to_tag="x", body=b"Signal=5\r\nDuration=160\r\n", content_type="application/dtmf-relay"
        ),
        sip_request("REGISTER", uri="sip:127.0.0.1"),
        response_to(parse_datagram(sip_request("INVITE", branch="z9hG4bK-ours")), 200),  # type: ignore[arg-type]
    ]
    return valid + [path.read_bytes() for path in sorted(TORTURE_DIR.glob("*.dat"))]


HUGE_NUMBERS = [b"9" * 5000, "٣".encode(), "²".encode(), b"4294967296", b"-1", b"0" * 30, b"99999"]
TOKENS = [b"\x00", b"\xff", b"\r\n", b"\r\n ", b'"', b"<", b">", b";", b",", b":", b"%", b"\\", b"@", b"="]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def duplicate_header(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\r\n")
    head = lines[1 : lines.index(b"")] if b"" in lines else lines[1:]
    if not head:
        return data
    line = rng.choice(head)
    at = rng.randint(1, len(head))
    return b"\r\n".join(lines[:at] + [line] * rng.randint(1, 40) + lines[at:])


def huge_number(data: bytes, rng: random.Random) -> bytes:
    runs = list(re.finditer(rb"[0-9]+", data))
    if not runs:
        return data
    run = rng.choice(runs)
    return data[: run.start()] + rng.choice(HUGE_NUMBERS) + data[run.end() :]


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 1500))


def insert_token(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(TOKENS) * rng.randint(1, 3) + data[at:]


def delete_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\r\n")
    del lines[rng.randrange(len(lines))]
    return b"\r\n".join(lines)


def long_value(data: bytes, rng: random.Random) -> bytes:
    at = data.find(b"\r\n")
    return data if at < 0 else data[:at] + b"x" * rng.choice([300, 5000, 70000]) + data[at:]


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    flip_bytes,
    truncate,
    duplicate_header,
    huge_number,
    random_bytes,
    insert_token,
    delete_line,
    long_value,
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


def check_replies(harness: Harness, source: tuple[str, int]) -> int:
    """What one message made the UA send: only answers with a fixed phrase, to a usable port of a host that
    talked to us (the source, or the peer of the transaction a retransmission matched: RFC 3261 17.2.3 matches by
    branch and sent-by, not by source)."""
    out = harness.ua.outgoing()
    pongs = [item for item in out if item.data == b"\r\n"]  # answers to CRLF keep-alives on a stream
    assert len(pongs) <= 1 and all(item.dest == source for item in pongs)
    out = [item for item in out if item.data != b"\r\n"]
    for item in out:
        match = STATUS_LINE.match(item.data)
        assert match is not None, item.data[:80]
        assert match.group(2).decode() in FIXED_PHRASES, match.group(0)
        assert item.dest[0] in SOURCE_HOSTS and 0 < item.dest[1] < 65536, item.dest
    return len(out)


def assert_bounded(harness: Harness) -> None:
    sizes = harness.ua.state_sizes()
    assert sizes["server_transactions"] <= 200, sizes
    assert sizes["calls"] <= harness.settings.max_calls + 100, sizes
    assert sizes["transaction_timers"] <= 1000, sizes
    assert sizes["tcp_framers"] <= 2, sizes


def still_works(harness: Harness) -> None:
    """After the storm: OPTIONS answered, a new call gets through to CallConfirmed."""
    harness.advance(70.0)  # unanswered fuzz calls time out, rate windows empty
    harness.ua.next_events()
    (ok,) = harness.feed(sip_request("OPTIONS", branch="z9hG4bK-after", call_id="after"))
    assert isinstance(ok, Response) and ok.status == 200
    harness.feed(sip_request("INVITE", body=SDP_OFFER, branch="z9hG4bK-good", call_id="good-call"))
    assert [type(e) for e in harness.ua.next_events()] == [ev.IncomingCall]
    harness.ua.answer("good-call", SDP_ANSWER)
    final = harness.drain()[-1]
    assert isinstance(final, Response) and final.status == 200
    harness.feed(sip_request("ACK", branch="z9hG4bK-good-ack", call_id="good-call", to_tag=final.to.tag))
    assert harness.ua.next_events() == [ev.CallConfirmed("good-call", b"")]


@pytest.mark.parametrize("seed", SEEDS)
def test_mutated_datagrams_and_streams_leave_the_core_working(seed: int) -> None:
    rng = random.Random(seed)
    bases = base_messages()
    harness = Harness()
    for n in range(DATAGRAMS_PER_SEED):
        source = FORBIDDEN_SOURCE if n % 17 == 0 else rng.choice(ALLOWED_SOURCES)
        data = mutate(rng.choice(bases), rng)
        harness.ua.receive(data, source, "udp")
        assert check_replies(harness, source) <= 1
        harness.ua.next_events()  # the glue never answers: fuzz calls stay unanswered until their timeout
        harness.clock.now += 0.01
        if n % 100 == 0:
            harness.ua.handle_timers(harness.clock.now)
            harness.ua.outgoing()
            assert_bounded(harness)

    for n in range(STREAMS_PER_SEED):
        peer = ("127.0.0.1", 7000 + n)
        stream = b"".join(
            mutate(m, rng) if rng.random() < 0.3 else m for m in rng.choices(bases[:7], k=rng.randint(1, 8))
        )
        counter = StreamFramer(harness.ua.max_message_bytes)  # how many messages each chunk completes
        at = 0
        while at < len(stream):
            chunk = stream[at : at + rng.randint(1, 700)]
            at += len(chunk)
            harness.ua.receive(chunk, peer, "tcp")
            try:
                completed = len(counter.feed(chunk))
            except ParseError:
                completed = len(chunk)  # messages completed before the error are unknown here
            assert check_replies(harness, peer) <= completed
            harness.ua.next_events()
            if peer in harness.ua.broken_streams():
                break  # the transport closes a connection whose framing is lost
        harness.ua.connection_lost(peer)
        assert_bounded(harness)
    assert harness.ua.state_sizes()["tcp_framers"] == 0
    still_works(harness)
