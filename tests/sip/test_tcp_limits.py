"""Inbound SIP over TCP is bounded, on real loopback sockets with small limits: forbidden sources and connections
beyond the caps are closed at accept, idle and slow connections are closed, a connection carrying a call or kept
alive with RFC 5626 CRLF pings is kept, and running out of descriptors pauses accepting with a few log lines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.parser import StreamFramer
from sip_bridge.sip.policy import StreamActivity, TcpLimits
from sip_bridge.sip.transport import SipEndpoint, raise_open_file_limit

from .helpers import SDP_OFFER, Harness, sip_request

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 5.0  # bound on every wait; the limits under test are a fraction of it


async def started(**overrides: object) -> SipEndpoint:
    settings = UserAgentConfig(bind_host="127.0.0.1", port=0, transports=["tcp"], **overrides)  # type: ignore[arg-type]
    return await SipEndpoint.start(settings)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (fails after WAIT_S if it never does)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), WAIT_S):
            received += chunk
    return received


async def options_over_new_connection(port: int, call_id: str = "opt") -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sip_request("OPTIONS", call_id=call_id, branch=f"z9hG4bK-{call_id}"))
    framer = StreamFramer()
    messages: list = []
    while not messages:
        chunk = await asyncio.wait_for(reader.read(65536), WAIT_S)
        assert chunk, "connection closed without an answer"
        messages = framer.feed(chunk)
    writer.close()
    return int(messages[0].status)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Bounded polling for a state the server reaches on its own."""
    for _ in range(int(WAIT_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_forbidden_source_is_closed_at_accept_without_an_answer() -> None:
    sip = await started(allowed_networks=["10.0.0.0/8"])
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    with contextlib.suppress(ConnectionError):
        writer.write(sip_request("OPTIONS"))
    assert await closed_by_server(reader) == b""  # no 403, nothing read at all
    writer.close()
    await sip.close()


async def test_an_idle_connection_is_closed() -> None:
    sip = await started(tcp_idle_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    assert await closed_by_server(reader) == b""
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    writer.write(sip_request("OPTIONS"))
    assert (await closed_by_server(reader)).startswith(b"SIP/2.0 200")  # answered, then idle, then closed
    await until(lambda: sip.tcp_connections == 0, "the connection count to drop")
    await sip.close()


async def test_a_body_that_never_comes_is_cut_off_by_the_read_timeout() -> None:
    sip = await started(tcp_read_timeout_s=0.3, tcp_idle_timeout_s=60)
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    announced = sip_request("OPTIONS").replace(b"Content-Length: 0", b"Content-Length: 60000")
    writer.write(announced + b"12345")
    assert await closed_by_server(reader) == b""
    await sip.close()


async def test_a_trickled_header_is_cut_off_by_the_read_timeout() -> None:
    sip = await started(tcp_read_timeout_s=0.3, tcp_idle_timeout_s=60)
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    request = sip_request("OPTIONS")
    closed = False
    for index in range(len(request) - 10):  # one byte per 50 ms: each byte resets a per-read timer, not ours
        try:
            writer.write(request[index : index + 1])
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                closed = True
                break
    assert closed
    await sip.close()


async def test_the_per_source_cap_refuses_one_more_and_a_fresh_connection_works_after() -> None:
    sip = await started(tcp_max_connections_per_source=3)
    held = [await asyncio.open_connection("127.0.0.1", sip.port) for _ in range(3)]
    await until(lambda: sip.tcp_connections == 3, "three connections counted")
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    assert await closed_by_server(reader) == b""
    writer.close()
    for _, held_writer in held:
        held_writer.close()
    await until(lambda: sip.tcp_connections == 0, "the held connections to be released")
    assert await options_over_new_connection(sip.port) == 200
    await sip.close()


async def test_the_connection_of_a_call_outlives_the_idle_timeout() -> None:
    sip = await started(tcp_idle_timeout_s=0.3)
    call_reader, call_writer = await asyncio.open_connection("127.0.0.1", sip.port)
    call_writer.write(sip_request("INVITE", body=SDP_OFFER))
    framer = StreamFramer()
    trying: list = []
    while not trying:
        trying = framer.feed(await asyncio.wait_for(call_reader.read(65536), WAIT_S))
    assert trying[0].status == 100
    idle_reader, _ = await asyncio.open_connection("127.0.0.1", sip.port)
    assert await closed_by_server(idle_reader) == b""  # the idle timeout has passed for both
    call_writer.write(sip_request("OPTIONS", call_id="still-there", branch="z9hG4bK-o"))
    answer: list = []
    while not answer:
        chunk = await asyncio.wait_for(call_reader.read(65536), WAIT_S)
        assert chunk, "the call's connection was closed"
        answer = [m for m in framer.feed(chunk) if m.call_id == "still-there"]
    assert answer[0].status == 200
    call_writer.close()
    await sip.close()


def test_stream_activity_deadlines() -> None:
    limits = TcpLimits(idle_timeout_s=30, read_timeout_s=10)
    activity = StreamActivity(last_message_at=0.0)
    assert activity.deadline(limits, in_call=False) == 30 and activity.deadline(limits, in_call=True) is None
    activity.update(5.0, framed=0, pending_bytes=20)  # a message starts
    activity.update(14.0, framed=0, pending_bytes=40)  # ... and goes on slowly
    assert activity.expired(14.9, limits, in_call=True) is None
    assert activity.expired(15.0, limits, in_call=True) == "read-timeout"
    activity.update(15.0, framed=1, pending_bytes=0)  # complete
    assert activity.expired(44.9, limits, in_call=False) is None
    assert activity.expired(45.0, limits, in_call=False) == "idle-timeout"
    assert activity.expired(1000.0, limits, in_call=True) is None


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(len(os.listdir("/proc/self/fd")) + 64, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        raised, _ = raise_open_file_limit()
        assert raised == (hard if hard != resource.RLIM_INFINITY else max(low, 1 << 20))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


SERVER_OUT_OF_DESCRIPTORS = textwrap.dedent(
    """
    import asyncio, logging, os, resource, sys
    from sip_bridge.sip.config import UserAgentConfig
    from sip_bridge.sip.transport import SipEndpoint

    async def main():
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        settings = UserAgentConfig(bind_host="127.0.0.1", port=0, transports=["tcp"],
                                   tcp_max_connections=10000, tcp_max_connections_per_source=10000)
        sip = await SipEndpoint.start(settings)
        spare = 12
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + spare,
                                                    resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        print(sip.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await sip.close()

    asyncio.run(main())
    """
)


async def test_out_of_descriptors_pauses_accepting_and_logs_a_few_lines() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER_OUT_OF_DESCRIPTORS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert server.stdout is not None and server.stdin is not None and server.stderr is not None
    try:
        port = int(await asyncio.wait_for(server.stdout.readline(), 30))
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
        stuck_reader, stuck_writer = clients[-1]
        stuck_writer.write(sip_request("OPTIONS", call_id="stuck"))  # waits in the backlog: no descriptor
        for _, writer in clients[:-1]:
            writer.close()
        # once the others are gone the server has descriptors again and takes the waiting connection
        assert (await asyncio.wait_for(stuck_reader.read(65536), WAIT_S)).startswith(b"SIP/2.0 200")
        stuck_writer.close()
        assert await options_over_new_connection(port) == 200
    finally:
        server.stdin.write(b"\n")
        with contextlib.suppress(ConnectionError):
            await server.stdin.drain()
        _, stderr = await asyncio.wait_for(server.communicate(), 30)
    lines = [line for line in stderr.decode(errors="replace").splitlines() if "accept" in line.lower()]
    assert 1 <= len(lines) <= 3, stderr.decode(errors="replace")[-2000:]


async def test_a_trusted_source_outside_allowed_networks_is_accepted() -> None:
    sip = await started(allowed_networks=["10.0.0.0/8"], trusted_networks=["127.0.0.1/32"])
    assert await options_over_new_connection(sip.port) == 200
    await sip.close()


def test_crlf_keepalive_pings_are_counted_also_when_split_and_answered_with_one_pong() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == [] and framer.keepalives == 0 and framer.pending_bytes == 0
    assert framer.feed(b"\r\n") == [] and framer.keepalives == 1  # a ping split across two segments
    messages = framer.feed(sip_request("OPTIONS") + b"\r\n\r\n" + sip_request("OPTIONS", call_id="two"))
    assert [m.call_id for m in messages] == ["call-1@127.0.0.1", "two"] and framer.keepalives == 2
    harness = Harness()
    trunk = ("127.0.0.1", 5070)
    assert harness.feed(b"\r\n\r\n", source=trunk, transport="tcp") == []
    assert harness.pongs == [(trunk, "tcp")] and harness.ua.stream_progress(trunk) == (1, 0)
    harness.feed(b"\r\n\r\n", source=trunk, transport="udp")  # UDP keep-alives stay unanswered
    assert harness.pongs == [(trunk, "tcp")]


async def test_a_connection_kept_alive_with_crlf_pings_outlives_the_idle_timeout() -> None:
    sip = await started(tcp_idle_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    for _ in range(12):  # 1.2 s of pings, four idle timeouts: each one is answered and keeps the connection
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), WAIT_S) == b"\r\n"
        await asyncio.sleep(0.1)  # the trunk's ping interval, scaled down
    writer.write(sip_request("OPTIONS"))
    assert (await closed_by_server(reader)).startswith(b"SIP/2.0 200")  # answered, then idle, then closed
    writer.close()
    await sip.close()
