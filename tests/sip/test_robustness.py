"""Mutated messages never crash the UA (seeded, bounded): bad input is answered or dropped, nothing else."""

from __future__ import annotations

import random

from .helpers import SDP_OFFER, Harness, sip_request
from .test_rfc4475 import TORTURE_DIR

SEEDS = [
    sip_request("INVITE", body=SDP_OFFER),
    sip_request("OPTIONS"),
    sip_request("BYE", to_tag="x"),
    sip_request("NOTIFY", to_tag="x", body=b"SIP/2.0 200 OK\r\n", content_type="message/sipfrag"),
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc\r\nFrom: <sip:a@b>;tag=1\r\n"
    b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1>\r\nContent-Length: 0\r\n\r\n",
    *(path.read_bytes() for path in sorted(TORTURE_DIR.glob("*.dat"))[:20]),
]
TOKENS = [
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b":",
    b"@",
    b"%",
    b"\r\n",
    b"\r\n ",
    b"=",
    b"?",
    b"\x00",
    b"\xff",
    b" ",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        position = rng.randrange(len(out) + 1)
        if choice < 0.4:
            out[position:position] = rng.choice(TOKENS)
        elif choice < 0.7 and out:
            del out[position : position + rng.randint(1, 8)]
        elif out:
            out[min(position, len(out) - 1)] = rng.randrange(256)
    return bytes(out)


def test_two_thousand_mutations_over_udp_and_tcp_never_raise() -> None:
    rng = random.Random(4475)
    harness = Harness()
    for n in range(2000):
        data = mutate(rng.choice(SEEDS), rng)
        transport = "tcp" if n % 3 == 0 else "udp"
        source = ("127.0.0.1", 6000 + n % 7)
        harness.ua.receive(data, source, transport)
        if transport == "tcp":
            harness.ua.connection_lost(source)
        for out in harness.ua.outgoing():
            assert out.data.startswith((b"SIP/2.0 ", b"BYE ", b"ACK ", b"CANCEL ")) or (
                out.data == b"\r\n" and out.transport == "tcp"
            )  # replies, call clean-up, or keep-alive pongs
        harness.ua.next_events()
        if n % 50 == 0:
            harness.advance(5.0)
    harness.run_timers_until(120.0, step=5.0)
