"""SipEndpoint over real loopback sockets: UDP datagrams, TCP framing, a broken TCP stream is answered and closed;
hostile datagrams do not stop the listener and timers keep their schedule under steady traffic (issue 15)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.events import IncomingCall
from sip_bridge.sip.message import Response
from sip_bridge.sip.parser import StreamFramer, parse_datagram
from sip_bridge.sip.transport import SipEndpoint
from voicebot.calls import CallRegistry

from .helpers import SDP_ANSWER, SDP_OFFER, sip_request


async def started() -> SipEndpoint:
    return await SipEndpoint.start(UserAgentConfig(bind_host="127.0.0.1", port=0))


async def test_udp_options_is_answered_to_the_sending_socket() -> None:
    sip = await started()
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]
        request = sip_request("OPTIONS", via_host=f"127.0.0.1:{port}")
        sock.sendto(request, ("127.0.0.1", sip.port))
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
    await sip.close()
    response = parse_datagram(data)
    assert isinstance(response, Response) and response.status == 200


async def test_tcp_pipelined_requests_and_a_broken_stream() -> None:
    sip = await started()
    reader, writer = await asyncio.open_connection("127.0.0.1", sip.port)
    writer.write(
        sip_request("OPTIONS", call_id="a") + sip_request("OPTIONS", call_id="b", branch="z9hG4bK-b")
    )
    framer = StreamFramer()
    responses: list = []
    while len(responses) < 2:
        responses += framer.feed(await asyncio.wait_for(reader.read(65536), 5))
    assert [(r.status, r.call_id) for r in responses] == [(200, "a"), (200, "b")]
    broken = sip_request("OPTIONS", call_id="c", branch="z9hG4bK-c").replace(
        b"Content-Length: 0", b"Content-Length: x"
    )
    writer.write(broken)
    rest = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 5):  # ends when we close the connection
        rest += chunk
    assert parse_datagram(rest).status == 400  # type: ignore[union-attr]
    writer.close()
    await sip.close()


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def test_a_datagram_naming_port_99999_does_not_stop_sip_over_udp() -> None:
    sip = await started()
    loop = asyncio.get_running_loop()
    try:
        with udp_socket() as sock:
            port = sock.getsockname()[1]
            hostile = sip_request("OPTIONS", via_host="127.0.0.1:99999").replace(b";rport", b"", 1)
            sock.sendto(hostile, ("127.0.0.1", sip.port))
            after = sip_request("OPTIONS", via_host=f"127.0.0.1:{port}", branch="z9hG4bK-after", call_id="ok")
            sock.sendto(after, ("127.0.0.1", sip.port))
            statuses: list[int] = []
            while 200 not in statuses:
                response = parse_datagram(await asyncio.wait_for(loop.sock_recv(sock, 65536), 5))
                assert isinstance(response, Response)
                statuses.append(response.status)
        assert statuses in ([200], [400, 200])
        assert sip.listeners == {"udp": True, "tcp": True} and sip.listening
    finally:
        await sip.close()


async def test_listening_follows_the_real_state_of_the_transports() -> None:
    sip = await started()
    registry = CallRegistry(max_calls=1, sip_listening=True, sip_probe=lambda: sip.listening)
    assert registry.sip_serving
    assert sip._udp is not None
    sip._udp.close()  # what asyncio does to a datagram transport after a fatal send error
    assert sip.listeners == {"udp": False, "tcp": True}
    assert not sip.listening and not registry.sip_serving
    await sip.close()
    assert sip.listeners == {"udp": False, "tcp": False}


async def test_a_pending_retransmission_fires_while_datagrams_keep_arriving() -> None:
    """Our 200 OK is resent per timer G even when a datagram arrives in every turn of the event loop."""
    sip = await started()
    loop = asyncio.get_running_loop()
    target = ("127.0.0.1", sip.port)
    flooding = True
    with udp_socket() as caller, udp_socket() as flooder:
        caller_port = caller.getsockname()[1]
        caller.sendto(sip_request("INVITE", body=SDP_OFFER, via_host=f"127.0.0.1:{caller_port}"), target)
        event = await asyncio.wait_for(sip.next_event(), 5)
        assert isinstance(event, IncomingCall)
        flooder_port = flooder.getsockname()[1]

        def send_one(n: int) -> None:  # one OPTIONS per loop turn: the listener always has one to read
            if not flooding:
                return
            request = sip_request("OPTIONS", via_host=f"127.0.0.1:{flooder_port}", branch=f"z9hG4bK-f{n}")
            with contextlib.suppress(BlockingIOError):
                flooder.sendto(request, target)
            loop.call_soon(send_one, n + 1)

        loop.call_soon(send_one, 0)
        sip.answer(event.call_id, SDP_ANSWER)
        oks = 0
        deadline = loop.time() + 5.0
        try:
            while oks < 3:  # the 200 OK, then timer G at +0.5 s and +1.5 s
                data = await asyncio.wait_for(loop.sock_recv(caller, 65536), deadline - loop.time())
                response = parse_datagram(data)
                oks += isinstance(response, Response) and response.status == 200
        except TimeoutError:
            pass
        finally:
            flooding = False
            sip.hangup(event.call_id)
            await sip.close()
    assert oks >= 3
