"""The asyncio shell around the media session, over real UDP sockets on loopback (bounded in time).

What the media does is tested on a manual clock in ``test_media_session.py``; these tests check what only the
shell does: bind a port, hand datagrams to the session and its packets to the latched peer from the paced loop,
wake the reader and the writer, run the callbacks, relay through the bridged leg's socket, and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from sip_bridge.media import (
    LocalSdpSession,
    MediaPeerPolicy,
    NegotiatedMedia,
    RtpEndpoint,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)
from sip_bridge.media.codecs import AudioCodec
from sip_bridge.media.dtmf import encode_digit
from sip_bridge.media.rtp import RtpPacket, RtpSender
from sip_bridge.media.sdp import CodecSpec, Direction
from voicebot.calls import CallRegistry
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import Settings, SipSettings
from voicebot.telephony.sip_calls import SipCall, SipCallService

pytestmark = pytest.mark.timeout(60)
HOST = "127.0.0.1"
SPEAKS_FIRST = MediaPeerPolicy(packets_before_receive=None)


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes()


def rms(frames: list[bytes]) -> float:
    if not frames:
        return 0.0
    samples = np.frombuffer(b"".join(frames), dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2)))


def pcmu(port: int, direction: Direction = "sendrecv", dtmf: int | None = None) -> NegotiatedMedia:
    return NegotiatedMedia(CodecSpec("PCMU", 0, 8000), dtmf, 20, direction, HOST, port)


@contextlib.asynccontextmanager
async def endpoints(
    count: int, policy: MediaPeerPolicy | None = None, **kwargs: object
) -> AsyncIterator[list[RtpEndpoint]]:
    opened = [RtpEndpoint(host=HOST, port=0, policy=policy, **kwargs) for _ in range(count)]  # type: ignore[arg-type]
    try:
        for endpoint in opened:
            await endpoint.open()
        yield opened
    finally:
        for endpoint in opened:
            await endpoint.close()


class Capture(asyncio.DatagramProtocol):
    """A bare UDP socket playing the far end: records what arrives, can send what we want."""

    def __init__(self) -> None:
        self.packets: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, endpoint: RtpEndpoint, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, endpoint.local_port))

    async def next_packet(self) -> tuple[RtpPacket, tuple[str, int]]:
        data, source = await asyncio.wait_for(self.packets.get(), 2.0)
        return RtpPacket.parse(data), source


@contextlib.asynccontextmanager
async def capture_socket() -> AsyncIterator[Capture]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Capture, local_addr=(HOST, 0))
    try:
        yield protocol
    finally:
        transport.close()


async def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Bounded polling for a state the event loop reaches by itself (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_the_shell_answers_the_peer_it_heard_and_delivers_its_audio_and_key_presses() -> None:
    async with endpoints(1) as (bot,), capture_socket() as phone:
        bot.configure(pcmu(phone.port, dtmf=101))
        digits: list[str] = []
        bot.on_dtmf = digits.append
        stream, codec, speech = RtpSender(0), AudioCodec("PCMU"), tone(8000, 1.0)
        phone.send(bot, stream.build(b"\xff" * 160))
        stream.advance(160)
        for offset in range(0, len(speech), 320):  # the bot's paced packets set the pace of the phone's
            packet, source = await phone.next_packet()
            assert source == (HOST, bot.local_port) and packet.payload_type == 0
            phone.send(bot, stream.build(codec.encode_frame(speech[offset : offset + 320])))
            stream.advance(160)
        heard = [await asyncio.wait_for(bot.read_audio(), 2.0) for _ in range(40)]
        assert rms(heard[-20:]) > 3000
        timestamp, key_press = stream.timestamp, encode_digit("9", clock_rate=8000)
        for payload, marker in key_press:
            await phone.next_packet()
            phone.send(bot, stream.build(payload, marker=marker, payload_type=101, timestamp=timestamp))
        await wait_until(lambda: bot.receiver.stats.packets_received == 51 + len(key_press))
        assert digits == ["9"]


async def test_send_audio_waits_in_real_time_and_hold_discards_without_blocking() -> None:
    async with endpoints(1, max_queued_ms=60) as (bot,), capture_socket() as phone:
        bot.configure(pcmu(phone.port, direction="recvonly"))
        for start in range(0, 16000 * 2 * 3 // 10, 640):  # 0.3 s, drained although nothing is sent
            await asyncio.wait_for(bot.send_audio(tone(16000, 0.3)[start : start + 640]), 2.0)
        assert bot.queued_ms <= 60
        assert phone.packets.empty() and bot.sender.stats.packets_sent == 0


async def test_inactivity_callback_runs_on_the_loop() -> None:
    async with endpoints(1, inactivity_timeout_s=0.2) as (bot,), capture_socket() as phone:
        fired = asyncio.Event()
        bot.on_inactivity = fired.set
        bot.configure(pcmu(phone.port))
        await asyncio.wait_for(fired.wait(), 3.0)


async def test_a_bridged_leg_relays_through_its_own_socket_at_once() -> None:
    async with (
        endpoints(1) as (bot_leg,),
        endpoints(1, policy=SPEAKS_FIRST) as (staff_leg,),
        capture_socket() as caller,
        capture_socket() as staff,
    ):
        bot_leg.configure(pcmu(caller.port))
        staff_leg.configure(pcmu(staff.port))
        await staff.next_packet()  # our leg to staff speaks first
        bot_leg.bridge(staff_leg)
        assert bot_leg.bridged_to is staff_leg and staff_leg.bridged_to is bot_leg
        # The protocol's entry, called as the socket calls it: the relayed packet is on its way before it returns.
        sent = staff_leg.sender.stats.packets_sent
        bot_leg.receive_datagram(RtpSender(0).build(b"\x55" * 160), (HOST, caller.port))
        assert staff_leg.sender.stats.packets_sent == sent + 1 and staff_leg.session.datagrams_to_send() == []
        for _ in range(10):
            packet, source = await staff.next_packet()
            if packet.payload == b"\x55" * 160:
                break
        assert packet.payload == b"\x55" * 160 and packet.ssrc == staff_leg.sender.ssrc
        assert source == (HOST, staff_leg.local_port)
        await bot_leg.close()  # closing one leg ends the bridge for both
        assert staff_leg.bridged_to is None


async def test_close_releases_the_port_and_is_idempotent() -> None:
    endpoint = RtpEndpoint(host=HOST, port=0)
    port = await endpoint.open()
    endpoint.configure(pcmu(9))
    await endpoint.close()
    await endpoint.close()
    await asyncio.wait_for(endpoint.send_audio(tone(16000, 1.0)), 1.0)  # returns at once: nothing is queued
    assert endpoint.queued_ms == 0 and endpoint.read_audio_nowait() is None
    with pytest.raises(RuntimeError):
        endpoint.local_port  # noqa: B018
    again = RtpEndpoint(host=HOST, port=port)
    try:
        assert await again.open() == port
    finally:
        await again.close()


async def test_call_service_hands_the_sip_settings_to_the_media_policy() -> None:
    sip = SipSettings(
        allowed_networks=["10.0.0.0/8"],
        rtp_latching="off",
        rtp_packets_before_receive=2,
        rtp_port_min=31100,
        rtp_port_max=31199,
    )
    service = SipCallService(Settings(sip=sip), registry=None, runner=None)  # type: ignore[arg-type]
    caller_leg = await service.open_rtp(on_timeout=lambda: None)
    staff_leg = await service.open_rtp(on_timeout=lambda: None, originated=True)
    try:
        assert caller_leg.policy == MediaPeerPolicy(("10.0.0.0/8",), "off", packets_before_receive=2)
        assert staff_leg.policy.packets_before_receive is None  # our own call to staff_uri may speak first
        assert staff_leg.policy.allowed_networks == ("10.0.0.0/8",)
    finally:
        await caller_leg.close()
        await staff_leg.close()
    direct_media = SipSettings(allowed_networks=["10.0.0.0/8"], rtp_allowed_networks=["192.0.2.0/24"])
    service = SipCallService(Settings(sip=direct_media), registry=None, runner=None)  # type: ignore[arg-type]
    assert service.media_policy.allowed_networks == ("192.0.2.0/24",)
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        SipCallService(Settings(sip=SipSettings(rtp_allowed_networks=["10.0.0.300/8"])), None, None)  # type: ignore[arg-type]


class RecordedCall:
    """The pipeline side of a call as the SIP glue sees it (a CallHandle): a real transcript, nothing to run."""

    def __init__(self) -> None:
        self.transcript = CallTranscript(channel="sip", channel_call_id="media-stats@test")

    async def run(self) -> None:
        pass

    async def cancel(self) -> None:
        pass

    async def say(self, kind: str, text: str) -> None:
        pass

    async def transfer_status(
        self, phase: str, caller_number: str = "", *, reason: str = "", position: int = 0, wait_s: float = 0.0
    ) -> None:
        pass


async def test_a_sip_call_that_ends_keeps_its_rtp_counters_and_names_a_forbidden_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review items 5 and 9: media dropped by a too narrow allow-list reached no record and no log."""
    sip = SipSettings(allowed_networks=["10.0.0.0/8"], rtp_port_min=31200, rtp_port_max=31299)
    registry = CallRegistry(max_calls=1)
    service = SipCallService(Settings(sip=sip), registry=registry, runner=None)  # type: ignore[arg-type]
    lease = registry.try_acquire("sip")
    assert lease is not None
    handle = RecordedCall()
    call = SipCall("media-stats@test", lease, handle=handle, sip_up=False)
    rtp = call.rtp = await service.open_rtp(on_timeout=lambda: None)
    async with capture_socket() as phone:
        rtp.configure(pcmu(phone.port))
        with caplog.at_level(logging.WARNING, logger="sip_bridge.media.endpoint"):
            for _ in range(3):
                phone.send(rtp, RtpSender(0).build(b"\xff" * 160))
            await wait_until(lambda: rtp.receiver.stats.ignored_forbidden_source == 3)
        await service.finish(call, "bye")
    source = f"{HOST}:{phone.port}"
    warnings = [record.getMessage() for record in caplog.records if source in record.getMessage()]
    assert len(warnings) == 1 and "set sip.rtp_allowed_networks" in warnings[0]  # once per call, with the fix
    (stats,) = [event for event in handle.transcript.events if event["kind"] == "rtp"]
    assert stats["forbidden_packets_ignored"] == 3 and stats["first_forbidden_source"] == source
    assert stats["codec"] == "PCMU" and handle.transcript.ended_reason == "bye"
    assert call.finished and registry.active == 0


async def test_an_endpoint_binds_an_even_port_in_its_range() -> None:
    endpoint = RtpEndpoint(host="127.0.0.1", port_range=(31000, 31099), inactivity_timeout_s=12.0)
    try:
        port = await endpoint.open()
        assert 31000 <= port <= 31099 and port % 2 == 0
        assert endpoint.inactivity_timeout_s == 12.0
    finally:
        await endpoint.close()


async def test_ipv6_loopback_call() -> None:
    phone = RtpEndpoint(host="::1", port=0, policy=SPEAKS_FIRST)
    bot = RtpEndpoint(host="::1", port=0)
    try:
        await phone.open()
        await bot.open()
        offer = build_offer(
            local_host="::1", local_port=phone.local_port, codecs=["PCMU"], session=LocalSdpSession("::1")
        )
        answer, bot_media = answer_offer(
            SessionDescription.parse(offer.serialize()),
            local_host="::1",
            local_port=bot.local_port,
            allowed_codecs=["PCMU"],
            session=LocalSdpSession("::1"),
        )
        assert "c=IN IP6 ::1" in answer.serialize()
        phone.configure(accept_answer(offer, SessionDescription.parse(answer.serialize())))
        bot.configure(bot_media)
        speech = tone(16000, 0.6)

        async def talk() -> None:
            for start in range(0, len(speech), 640):
                await phone.send_audio(speech[start : start + 640])

        sender = asyncio.create_task(talk())
        heard = [await asyncio.wait_for(bot.read_audio(), 2.0) for _ in range(30)]
        await sender
        assert rms(heard) > 2000
        assert bot.receiver.latched is not None and bot.receiver.latched[0] == "::1"
    finally:
        await phone.close()
        await bot.close()
