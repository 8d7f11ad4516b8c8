"""RtpEndpoint over real UDP sockets on loopback (real codecs, real pacing; bounded in time).

The bot's endpoints wait for the far end's media before they send (the default policy); endpoints playing a
phone that calls out speak first (``SPEAKS_FIRST``), as real phones and the bot's own leg to staff do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from media_pcap import SIPP_PCAPS, read_udp

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
from sip_bridge.media.rtp import RtpPacket, RtpSender
from sip_bridge.media.sdp import CodecSpec
from voicebot.settings import Settings, SipSettings
from voicebot.telephony.sip_calls import SipCallService

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


async def negotiate(
    caller: RtpEndpoint, callee: RtpEndpoint, caller_codecs: list[str], callee_codecs: list[str] | None = None
) -> tuple[NegotiatedMedia, NegotiatedMedia]:
    offer = build_offer(
        local_host=HOST, local_port=caller.local_port, codecs=caller_codecs, session=LocalSdpSession(HOST)
    )
    answer, callee_media = answer_offer(
        SessionDescription.parse(offer.serialize()),
        local_host=HOST,
        local_port=callee.local_port,
        allowed_codecs=callee_codecs or caller_codecs,
        session=LocalSdpSession(HOST),
    )
    caller_media = accept_answer(offer, SessionDescription.parse(answer.serialize()))
    caller.configure(caller_media)
    callee.configure(callee_media)
    return caller_media, callee_media


@contextlib.asynccontextmanager
async def endpoints(
    count: int,
    speaks_first: frozenset[int] = frozenset(),
    policy: MediaPeerPolicy | None = None,
    **kwargs: object,
) -> AsyncIterator[list[RtpEndpoint]]:
    """``count`` endpoints with ``policy``; those whose index is in ``speaks_first`` send before they have heard
    anything."""
    opened = [
        RtpEndpoint(host=HOST, port=0, policy=SPEAKS_FIRST if index in speaks_first else policy, **kwargs)  # type: ignore[arg-type]
        for index in range(count)
    ]
    try:
        for endpoint in opened:
            await endpoint.open()
        yield opened
    finally:
        for endpoint in opened:
            await endpoint.close()


async def collect(endpoint: RtpEndpoint, frames: int) -> list[bytes]:
    return [await asyncio.wait_for(endpoint.read_audio(), 2.0) for _ in range(frames)]


async def feed(endpoint: RtpEndpoint, pcm: bytes, chunk: int = 640) -> None:
    for start in range(0, len(pcm), chunk):
        await endpoint.send_audio(pcm[start : start + chunk])


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

    def speak(
        self, bot: RtpEndpoint, sender: RtpSender, count: int = 1, payload: bytes = b"\xff" * 160
    ) -> None:
        """Send ``count`` consecutive packets of one stream to the bot (the caller's media starts)."""
        assert self.transport is not None
        for _ in range(count):
            self.transport.sendto(sender.build(payload), (HOST, bot.local_port))
            sender.advance(len(payload))

    async def next_packet(self) -> RtpPacket:
        data, _ = await asyncio.wait_for(self.packets.get(), 2.0)
        return RtpPacket.parse(data)


@contextlib.asynccontextmanager
async def capture_socket() -> AsyncIterator[Capture]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Capture, local_addr=(HOST, 0))
    try:
        yield protocol
    finally:
        transport.close()


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722", "opus"])
async def test_audio_and_dtmf_flow_between_two_endpoints(codec: str) -> None:
    async with endpoints(2, speaks_first=frozenset({0})) as (phone, bot):
        await negotiate(phone, bot, [codec])
        digits: list[str] = []
        bot.on_dtmf = digits.append
        await collect(bot, 3)  # the line is open: silence first
        sender = asyncio.create_task(feed(phone, tone(16000, 1.0)))
        heard = await collect(bot, 60)
        await sender
        assert rms(heard[-30:]) > 3000
        phone.send_dtmf("4#")
        for _ in range(40):
            if len(digits) == 2:
                break
            await bot.read_audio()
        assert digits == ["4", "#"]
        summary = bot.stats_summary()
        assert summary["codec"] == codec and summary["packets_lost"] == 0
        assert isinstance(summary["packets_received"], int) and summary["packets_received"] > 50


async def test_sipp_g711a_capture_replayed_in_real_time_decodes_to_speech() -> None:
    async with endpoints(1, input_rate=16000) as (bot,), capture_socket() as phone:
        bot.configure(
            NegotiatedMedia(
                codec=accept_codec("PCMA", 8),
                dtmf_payload_type=101,
                ptime_ms=20,
                direction="sendrecv",
                remote_host=HOST,
                remote_port=phone.port,
            )
        )
        digits: list[str] = []
        bot.on_dtmf = digits.append
        packets = [d.payload for d in read_udp(SIPP_PCAPS / "g711a.pcap")][
            40:90
        ]  # 1.5 s of speech, 30 ms packets
        packets += [d.payload for d in read_udp(SIPP_PCAPS / "dtmf_2833_7.pcap")]
        assert phone.transport is not None
        heard: list[bytes] = []
        reader = asyncio.create_task(_read_into(bot, heard))
        for payload in packets:
            phone.transport.sendto(payload, (HOST, bot.local_port))
            await asyncio.sleep(0.03 if RtpPacket.parse(payload).payload_type == 8 else 0.02)
        await asyncio.sleep(0.2)
        reader.cancel()
        assert rms(heard) > 1000
        assert digits == ["7"]
        stats = bot.receiver.stats  # counts restart with the DTMF capture's own SSRC
        assert (stats.ignored_foreign_source, stats.ignored_invalid, stats.ignored_payload_type) == (0, 0, 0)
        # Symmetric RTP: the bot answers the address the packets came from.
        data, _ = await asyncio.wait_for(phone.packets.get(), 2.0)
        assert RtpPacket.parse(data).payload_type == 8


async def _read_into(endpoint: RtpEndpoint, sink: list[bytes]) -> None:
    while True:
        sink.append(await endpoint.read_audio())


def accept_codec(name: str, payload_type: int) -> CodecSpec:
    return CodecSpec(name, payload_type, 8000)


async def test_caller_behind_nat_is_latched_after_a_run_while_the_sdp_address_is_silent() -> None:
    async with endpoints(1) as (bot,), capture_socket() as sdp_address, capture_socket() as real_source:
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, sdp_address.port))
        real_source.speak(bot, RtpSender(0), count=4)
        await wait_until(lambda: bot.receiver.stats.ignored_unlatched == 4)
        assert bot.receiver.latched is None and bot.sender.stats.packets_sent == 0  # four are not enough
        real_source.speak(bot, RtpSender(0), count=5)  # a new stream: five in a row
        await real_source.next_packet()
        assert bot.receiver.latched == (HOST, real_source.port)
        assert sdp_address.packets.empty()


async def test_an_early_packet_from_an_intruder_does_not_take_the_call() -> None:
    """Issue 15 item 8: a packet from another address right after the 200 OK made the bot latch to it."""
    async with (
        endpoints(1) as (bot,),
        capture_socket() as phone,
        capture_socket() as intruder,
    ):
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, phone.port))
        intruder_stream = RtpSender(0)
        intruder.speak(bot, intruder_stream)
        await wait_until(lambda: bot.receiver.stats.ignored_unlatched == 1)
        phone.speak(bot, RtpSender(0))
        await phone.next_packet()
        assert bot.receiver.latched == (HOST, phone.port)
        intruder.speak(bot, intruder_stream, count=20)  # a run after the caller spoke changes nothing
        await wait_until(lambda: bot.receiver.stats.ignored_foreign_source == 20)
        for _ in range(10):
            await phone.next_packet()
        assert intruder.packets.empty() and bot.receiver.latched == (HOST, phone.port)


async def test_no_media_goes_to_an_sdp_address_that_never_sent_any() -> None:
    """Issue 15 item 9: an INVITE whose SDP named a third address made the bot send it 435 packets."""
    async with endpoints(1) as (bot,), capture_socket() as victim:
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, victim.port))
        await bot.send_audio(tone(16000, 0.1))
        start = bot.sender.timestamp
        await wait_until(
            lambda: (bot.sender.timestamp - start) & 0xFFFFFFFF >= 50 * 160
        )  # 1 s of media clock
        assert victim.packets.empty() and bot.sender.stats.packets_sent == 0
        victim.speak(bot, RtpSender(0))  # now the far end has shown it is there
        assert (await victim.next_packet()).payload_type == 0


async def test_packets_before_receive_are_bounded_by_the_policy() -> None:
    policy = MediaPeerPolicy(packets_before_receive=3)
    async with endpoints(1, policy=policy) as (bot,), capture_socket() as phone:
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, phone.port))
        for _ in range(3):
            await phone.next_packet()
        start = bot.sender.timestamp
        await wait_until(lambda: (bot.sender.timestamp - start) & 0xFFFFFFFF >= 25 * 160)
        assert phone.packets.empty() and bot.sender.stats.packets_sent == 3


async def test_rtp_from_outside_the_allowed_networks_is_not_heard() -> None:
    policy = MediaPeerPolicy(allowed_networks=("10.0.0.0/8", "::1/128"))
    async with endpoints(1, policy=policy) as (bot,), capture_socket() as phone:
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, phone.port))
        phone.speak(bot, RtpSender(0), count=20)
        await wait_until(lambda: bot.receiver.stats.ignored_forbidden_source == 20)
        assert bot.receiver.latched is None and bot.receiver.stats.packets_received == 0
        assert phone.packets.empty() and bot.sender.stats.packets_sent == 0


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


async def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Bounded polling for a state the event loop reaches by itself (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_flush_drops_queued_bot_audio_at_once() -> None:
    async with endpoints(1, max_queued_ms=2000) as (bot,), capture_socket() as phone:
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, phone.port))
        phone.speak(bot, RtpSender(0))
        await bot.send_audio(tone(16000, 1.5))  # 1.5 s queued, under the limit: returns at once
        speech = 0
        while speech < 5:  # wait until the tone is on the wire
            data, _ = await asyncio.wait_for(phone.packets.get(), 2.0)
            speech += RtpPacket.parse(data).payload != b"\xff" * 160
        assert bot.queued_ms > 1000
        bot.flush()
        assert bot.queued_ms == 0
        first_after_flush = bot.sender.sequence
        after: list[RtpPacket] = []
        while len(after) < 5:
            packet = RtpPacket.parse((await asyncio.wait_for(phone.packets.get(), 2.0))[0])
            if (packet.sequence_number - first_after_flush) & 0xFFFF < 0x8000:  # not already on the wire
                after.append(packet)
        assert all(packet.payload == b"\xff" * 160 for packet in after)  # silence from the next packet on


async def test_send_audio_waits_in_real_time_and_hold_discards_without_blocking() -> None:
    async with endpoints(1, max_queued_ms=60) as (bot,), capture_socket() as phone:
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "recvonly", HOST, phone.port))
        await asyncio.wait_for(feed(bot, tone(16000, 0.3)), 3.0)  # drains although nothing is sent
        assert phone.packets.empty()
        assert bot.sender.stats.packets_sent == 0


async def test_inactivity_timeout_fires_once() -> None:
    async with endpoints(1, inactivity_timeout_s=0.2) as (bot,), capture_socket() as phone:
        fired = asyncio.Event()
        calls: list[int] = []

        def on_inactivity() -> None:
            calls.append(1)
            fired.set()

        bot.on_inactivity = on_inactivity
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, phone.port))
        await asyncio.wait_for(fired.wait(), 3.0)
        await asyncio.sleep(0.3)
        assert calls == [1]


@pytest.mark.parametrize(("caller_codec", "staff_codec"), [("PCMU", "PCMU"), ("PCMA", "opus")])
async def test_bridge_relays_both_ways_and_keeps_tapping_the_caller(
    caller_codec: str, staff_codec: str
) -> None:
    # The caller's phone speaks first, and so does the bot's own leg to staff; staff answers what it hears.
    async with endpoints(4, speaks_first=frozenset({0, 2})) as (caller, bot_leg, staff_leg, staff):
        await negotiate(caller, bot_leg, [caller_codec])
        await negotiate(staff_leg, staff, [staff_codec])
        bot_leg.bridge(staff_leg)
        assert bot_leg.bridged_to is staff_leg and staff_leg.bridged_to is bot_leg
        await bot_leg.send_audio(tone(16000, 0.2))  # the bot is muted while bridged
        assert bot_leg.queued_ms == 0
        talking = asyncio.create_task(feed(caller, tone(16000, 1.2, hz=500)))
        answering = asyncio.create_task(feed(staff, tone(16000, 1.2, hz=900)))
        staff_heard = await collect(staff, 50)
        caller_heard = await collect(caller, 50)
        tap = await collect(bot_leg, 50)
        await asyncio.gather(talking, answering)
        assert rms(staff_heard[-25:]) > 2000
        assert rms(caller_heard[-25:]) > 2000
        assert rms(tap) > 2000
        bot_leg.unbridge()
        assert bot_leg.bridged_to is None and staff_leg.bridged_to is None


async def test_from_settings_binds_an_even_port_in_the_configured_range() -> None:
    settings = SipSettings(rtp_port_min=31000, rtp_port_max=31099, rtp_inactivity_timeout_s=12.0)
    endpoint = RtpEndpoint.from_settings(settings)
    try:
        port = await endpoint.open()
        assert 31000 <= port <= 31099 and port % 2 == 0
        assert endpoint.inactivity_timeout_s == 12.0
    finally:
        await endpoint.close()


async def test_callers_30ms_ptime_marker_on_talkspurt_and_continuous_timestamps() -> None:
    async with endpoints(1, max_queued_ms=1000) as (bot,), capture_socket() as phone:
        bot.configure(NegotiatedMedia(accept_codec("PCMA", 8), None, 30, "sendrecv", HOST, phone.port))
        phone.speak(bot, RtpSender(8), payload=b"\xd5" * 240)
        packets = [RtpPacket.parse((await asyncio.wait_for(phone.packets.get(), 2.0))[0]) for _ in range(3)]
        await bot.send_audio(tone(16000, 0.3))
        while len(packets) < 20:
            packets.append(RtpPacket.parse((await asyncio.wait_for(phone.packets.get(), 2.0))[0]))
    assert all(len(p.payload) == 240 for p in packets)  # 30 ms of A-law
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 240 for a, b in itertools.pairwise(packets))
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in itertools.pairwise(packets))
    markers = [i for i, p in enumerate(packets) if p.marker]
    speech_start = next(i for i, p in enumerate(packets) if p.payload != b"\xd5" * 240)
    assert markers == [0, speech_start]  # first packet of the stream and of the talkspurt


async def test_reinvite_switches_codec_and_peer_address() -> None:
    async with endpoints(1) as (bot,), capture_socket() as first, capture_socket() as second:
        bot.configure(NegotiatedMedia(accept_codec("PCMU", 0), None, 20, "sendrecv", HOST, first.port))
        first.speak(bot, RtpSender(0))
        data, _ = await asyncio.wait_for(first.packets.get(), 2.0)
        assert RtpPacket.parse(data).payload_type == 0
        ssrc = RtpPacket.parse(data).ssrc
        bot.configure(NegotiatedMedia(accept_codec("PCMA", 8), None, 20, "sendrecv", HOST, second.port))
        second.speak(bot, RtpSender(8), payload=b"\xd5" * 160)
        data, _ = await asyncio.wait_for(second.packets.get(), 2.0)
        packet = RtpPacket.parse(data)
        assert packet.payload_type == 8 and packet.ssrc == ssrc and packet.payload == b"\xd5" * 160


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
        sender = asyncio.create_task(feed(phone, tone(16000, 0.6)))
        heard = await collect(bot, 30)
        await sender
        assert rms(heard) > 2000
        assert bot.receiver.latched is not None and bot.receiver.latched[0] == "::1"
    finally:
        await phone.close()
        await bot.close()
