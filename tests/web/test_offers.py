"""Browser offers against the real app: invalid SDP is refused before anything exists, offers that never connect
hold no phone line and are closed, pending offers are capped, an unknown ``pc_id`` is 404, a connected browser
takes a line and gives it back, and a phone call refused because browser calls hold every line gets Retry-After."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from voicebot.calls import CallRegistry
from voicebot.pipeline.transcript import CallTranscript
from voicebot.server import http_server_config
from voicebot.settings import Settings
from voicebot.web.app import create_app
from voicebot.web.browser_calls import BrowserCallDesk

pytestmark = pytest.mark.timeout(60)


class WaitingCall:
    """A call that runs until it is cancelled (the browser leaves): enough to hold a line like a real one."""

    def __init__(self, call_id: str) -> None:
        self.ended = asyncio.Event()
        self.transcript = CallTranscript(channel="webrtc", channel_call_id=call_id)  # kept in memory only

    async def run(self) -> None:
        await self.ended.wait()

    async def cancel(self) -> None:
        self.ended.set()

    async def say(self, kind: str, text: str) -> None:
        self.transcript.add_bot_turn(kind, text)

    async def transfer_status(
        self, phase: str, caller_number: str = "", *, reason: str = "", position: int = 0, wait_s: float = 0.0
    ) -> None:
        self.transcript.add_event("transfer_status", phase=phase)


async def waiting_call_runner(_transport: Any, call_id: str, _rate: int, _on_event: Any) -> WaitingCall:
    return WaitingCall(call_id)


def _settings(**http: Any) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"http": settings.http.model_copy(update=http)})


class App:
    """The app with its registry and desk, and clients from chosen source addresses."""

    def __init__(self, registry: CallRegistry, **http: Any) -> None:
        self.registry = registry
        self.app = create_app(_settings(**http), None, registry=registry, call_runner=waiting_call_runner)
        self.desk: BrowserCallDesk = self.app.state.browser_calls

    def client(self, source: str = "192.0.2.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(source, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://voicebot")

    async def offer(self, sdp: str, source: str = "192.0.2.1", **extra: Any) -> httpx.Response:
        async with self.client(source) as client:
            return await client.post("/api/offer", json={"sdp": sdp, "type": "offer", **extra})


@pytest.fixture
async def browser_offer() -> AsyncIterator[str]:
    """A complete offer as a browser sends it (aiortc: opus/PCMU/PCMA, ICE credentials, DTLS fingerprint)."""
    peer = RTCPeerConnection()
    peer.addTransceiver("audio", direction="sendrecv")
    await peer.setLocalDescription(await peer.createOffer())
    yield peer.localDescription.sdp
    await peer.close()


async def _eventually(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def _without(sdp: str, prefix: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(prefix))


def _audio_port(sdp: str, port: str) -> str:
    return re.sub(r"^m=audio \S+", f"m=audio {port}", sdp, count=1, flags=re.MULTILINE)


def _only_unknown_codecs(sdp: str) -> str:
    sdp = _without(_without(_without(sdp, "a=rtpmap:"), "a=fmtp:"), "a=rtcp-fb:")
    return re.sub(
        r"^(m=audio \S+ \S+) [^\r\n]*", r"\1 96\r\na=rtpmap:96 L24/8000", sdp, count=1, flags=re.MULTILINE
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda sdp: _without(sdp, "a=fingerprint:"), "Fingerabdruck"),
        (lambda sdp: _without(sdp, "a=ice-ufrag:"), "ice-ufrag"),
        (lambda sdp: _without(sdp, "a=ice-pwd:"), "ice-pwd"),
        (_only_unknown_codecs, "Codec"),
        (lambda sdp: _audio_port(sdp, "99999999999999999999"), "Port"),
        (lambda sdp: _audio_port(sdp, "65536"), "Port"),
        (lambda sdp: _audio_port(sdp, "²"), "Port"),
        (lambda sdp: _audio_port(sdp, "٣"), "Port"),
    ],
    ids=[
        "no-fingerprint",
        "no-ufrag",
        "no-pwd",
        "unknown-codecs",
        "huge-port",
        "port-65536",
        "superscript",
        "arabic",
    ],
)
async def test_invalid_offers_get_400_and_take_nothing(
    browser_offer: str, mutate: Callable[[str], str], message: str
) -> None:
    app = App(CallRegistry(max_calls=2))
    response = await app.offer(mutate(browser_offer))
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"] and "nicht verwendbar" in response.json()["detail"]
    assert app.registry.active == 0 and app.desk.pending == 0


async def test_an_offer_that_never_connects_takes_no_line_and_is_closed(browser_offer: str) -> None:
    app = App(CallRegistry(max_calls=1), offer_connect_timeout_s=0.5)
    response = await app.offer(browser_offer)
    assert response.status_code == 200 and response.json()["type"] == "answer"
    assert app.registry.active == 0, "an unconnected offer took a phone line"
    peer = app.desk.connection(response.json()["pc_id"])
    assert app.desk.pending == 1
    assert await _eventually(lambda: app.desk.pending == 0), "the pending offer was never closed"
    assert peer.pc.connectionState == "closed"
    assert app.registry.try_acquire("sip") is not None  # the line stayed free for a phone call


async def test_pending_offers_are_capped_and_phone_calls_keep_their_lines(browser_offer: str) -> None:
    app = App(CallRegistry(max_calls=2), max_pending_offers=2, max_pending_offers_per_source=2)
    first = await app.offer(browser_offer)
    second = await app.offer(browser_offer)
    third = await app.offer(browser_offer)
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 503 and int(third.headers["retry-after"]) > 0
    assert "gleich erneut" in third.json()["detail"]
    sip_calls = [app.registry.try_acquire("sip"), app.registry.try_acquire("sip")]
    assert all(lease is not None for lease in sip_calls), "browser offers took the phone lines"
    busy = await app.offer(browser_offer, source="198.51.100.7")
    assert (
        busy.status_code == 503 and busy.headers["retry-after"] == "30" and "belegt" in busy.json()["detail"]
    )
    await app.desk.close()


async def test_pending_offers_per_source_are_capped(browser_offer: str) -> None:
    app = App(CallRegistry(max_calls=4), max_pending_offers=4, max_pending_offers_per_source=1)
    assert (await app.offer(browser_offer, source="192.0.2.1")).status_code == 200
    again = await app.offer(browser_offer, source="192.0.2.1")
    assert again.status_code == 429 and int(again.headers["retry-after"]) > 0
    assert (await app.offer(browser_offer, source="192.0.2.2")).status_code == 200
    assert app.desk.pending == 2
    await app.desk.close()


async def test_unknown_pc_id_is_404_and_creates_nothing(browser_offer: str) -> None:
    registry = CallRegistry(max_calls=1)
    app = App(registry)
    assert (await app.offer(browser_offer, pc_id="unknown")).status_code == 404
    assert registry.try_acquire("sip") is not None  # now full
    response = await app.offer(browser_offer, pc_id="unknown")
    assert response.status_code == 404 and "besteht nicht" in response.json()["detail"]
    assert app.desk.pending == 0 and registry.active == 1


async def test_a_connected_browser_takes_a_line_and_gives_it_back() -> None:
    app = App(CallRegistry(max_calls=1), offer_connect_timeout_s=20)
    browser = RTCPeerConnection()
    try:
        browser.addTransceiver("audio", direction="sendrecv")
        await browser.setLocalDescription(await browser.createOffer())
        response = await app.offer(browser.localDescription.sdp)
        assert response.status_code == 200, response.text
        assert app.registry.active == 0
        answer = response.json()
        await browser.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        assert await _eventually(lambda: app.registry.active == 1), "the connected call took no line"
        assert app.desk.pending == 0 and app.desk.in_call == 1
        renegotiated = await app.offer(browser.localDescription.sdp, pc_id=answer["pc_id"])
        assert renegotiated.status_code == 200 and app.registry.active == 1  # same call, same line
    finally:
        await browser.close()
    assert await _eventually(lambda: app.registry.active == 0), "the line was not released after hang-up"
    assert await _eventually(lambda: app.desk.in_call == 0)


def _invite(port: int, call_id: str) -> bytes:
    return (
        f"INVITE sip:hotline@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{{local}};branch=z9hG4bK{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:caller@127.0.0.1>;tag={call_id}\r\n"
        f"To: <sip:hotline@127.0.0.1:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:caller@127.0.0.1>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_a_phone_call_refused_for_browser_calls_gets_retry_after() -> None:
    """Every line held by a browser call: the SIP INVITE gets 503 with Retry-After (it had none)."""
    from voicebot.telephony.sip_calls import SipCallService

    settings = Settings()
    settings = settings.model_copy(
        update={
            "sip": settings.sip.model_copy(update={"port": 0, "transports": ["udp"], "retry_after_s": 17})
        }
    )
    registry = CallRegistry(max_calls=1)
    assert registry.try_acquire("webrtc") is not None
    service = SipCallService(settings, registry, waiting_call_runner)
    await service.start()
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        phone.bind(("127.0.0.1", 0))
        phone.setblocking(False)
        invite = _invite(service.port, "busy-by-browser").replace(
            b"{local}", str(phone.getsockname()[1]).encode()
        )
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(phone, invite, ("127.0.0.1", service.port))
        final = b""
        async with asyncio.timeout(10):
            while not re.match(rb"SIP/2.0 [2-6]\d\d", final):
                final = await loop.sock_recv(phone, 65535)
    finally:
        phone.close()
        await service.stop()
    assert final.startswith(b"SIP/2.0 503"), final
    assert re.search(rb"\r\nRetry-After: 17\r\n", final), final


@pytest.mark.parametrize(
    ("trusted_proxies", "second_citizen_status"),
    [([], 429), (["192.0.2.50"], 429), (["127.0.0.1"], 200), (["127.0.0.0/8"], 200)],
)
async def test_only_a_trusted_proxy_names_the_source_of_an_offer(
    browser_offer: str, trusted_proxies: list[str], second_citizen_status: int
) -> None:
    """Review item 15: behind the TLS reverse proxy every citizen had the proxy's address (one shared per-source
    cap); X-Forwarded-For counts from the configured proxies only (uvicorn alone trusted loopback)."""
    settings = _settings(
        max_pending_offers=4, max_pending_offers_per_source=1, trusted_proxies=trusted_proxies
    )
    app = create_app(settings, None, registry=CallRegistry(max_calls=4), call_runner=waiting_call_runner)
    config = http_server_config(app, settings)  # the middleware uvicorn puts in front of the app in serve
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=("127.0.0.1", 40000))  # the proxy
    statuses = []
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as client:
        for citizen in ("198.51.100.7", "198.51.100.8"):
            answer = await client.post(
                "/api/offer",
                json={"sdp": browser_offer, "type": "offer"},
                headers={"X-Forwarded-For": citizen},
            )
            statuses.append(answer.status_code)
    await app.state.browser_calls.close()
    assert statuses == [200, second_citizen_status]
