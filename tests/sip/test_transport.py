"""SipEndpoint over real loopback sockets: UDP datagrams, TCP framing, a broken TCP stream is answered and closed."""

from __future__ import annotations

import asyncio
import socket

from sip_bridge.sip.message import Response
from sip_bridge.sip.parser import StreamFramer, parse_datagram
from sip_bridge.sip.transport import SipEndpoint
from voicebot.settings import SipSettings

from .helpers import sip_request


async def started() -> SipEndpoint:
    return await SipEndpoint.start(SipSettings(bind_host="127.0.0.1", port=0))


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
