"""A short, seeded fuzz run against a live `voicebot serve` (issue 15): mutated SIP over UDP and TCP on loopback.

The sans-I/O core is fuzzed thoroughly in tests/sip/test_fuzz.py; this run checks the asyncio shell around it: no
datagram or stream closes a listener, the health check stays true, and OPTIONS are still answered afterwards.
INVITEs are left out so that the run does not start calls that would hold the shared server's lines.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time

import pytest
from sip.test_fuzz import base_messages, mutate

from interop.peers import VoicebotServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SEED = 4475
DATAGRAMS = 600
STREAMS = 20


def _options(port: int, call_id: str) -> bytes:
    """One OPTIONS transaction over UDP, retransmitted as a SIP client does (RFC 3261 timer E: 0.5 s doubling to
    4 s, about 16 s in all): a datagram may be lost while the server works through the flood before it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        request = (
            f"OPTIONS sip:hotline@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-{call_id}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:hotline@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        for wait_s in (0.5, 1.0, 2.0, 4.0, 4.0, 4.0):
            sock.sendto(request, ("127.0.0.1", port))
            sock.settimeout(wait_s)
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            return data
        raise TimeoutError(f"no answer to OPTIONS {call_id} within about 16 s of retransmissions")


def test_mutated_sip_over_udp_and_tcp_leaves_serve_answering(voicebot_server: VoicebotServer) -> None:
    port = voicebot_server.sip_port
    log_start = voicebot_server.log_path.stat().st_size
    assert _options(port, "before-fuzz").startswith(b"SIP/2.0 200")
    rng = random.Random(SEED)
    bases = [m for m in base_messages() if not m.startswith(b"INVITE")]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        while sent < DATAGRAMS:
            data = mutate(rng.choice(bases), rng)[:65000]
            if data.lstrip().startswith(b"INVITE") or not data:
                continue
            udp.sendto(data, ("127.0.0.1", port))
            sent += 1
            if sent % 50 == 0:
                time.sleep(0.01)  # bounded rate: a burst, not a flood that only measures the kernel's buffer
    for _ in range(STREAMS):
        stream = b"".join(mutate(m, rng) for m in rng.choices(bases[:6], k=rng.randint(1, 4)))
        stream = stream.replace(b"INVITE", b"OPTIONS")
        # the server may close a stream whose framing is lost: that is allowed
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn, contextlib.suppress(OSError):
            conn.sendall(stream[:60000])
    assert _options(port, "after-fuzz").startswith(b"SIP/2.0 200")
    health = voicebot_server.health()
    assert health is not None and health["sip_listening"] is True, health
    with voicebot_server.log_path.open("rb") as log:
        log.seek(log_start)
        during = log.read().decode(errors="replace")
    assert "Traceback" not in during, during[-4000:]
