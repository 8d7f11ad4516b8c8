"""The sans-I/O media session: calls, latching, pacing, DTMF and the bridge on a manual clock (no sockets).

The bot's sessions wait for the far end's media before they send (the default policy); sessions playing a phone
that calls out speak first (``SPEAKS_FIRST``), as real phones and the bot's own leg to staff do.
"""

from __future__ import annotations

import itertools

import pytest
from media_pcap import SIPP_PCAPS, read_udp
from media_wire import Wire, dominant_hz, rms, tone

from sip_bridge.media import MediaPeerPolicy, NegotiatedMedia
from sip_bridge.media.rtp import LatchState, RtpPacket, RtpSender
from sip_bridge.media.sdp import CodecSpec, Direction
from sip_bridge.media.session import BridgeMode, ForbiddenMediaSource, MediaTimeout, SessionState

SPEAKS_FIRST = MediaPeerPolicy(packets_before_receive=None)
PHONE = ("192.0.2.10", 40000)
BOT = ("198.51.100.5", 20000)
STAFF_LEG = ("198.51.100.5", 20002)
STAFF = ("192.0.2.20", 42000)
OTHER = ("192.0.2.30", 44000)
SILENCE_PCMU = b"\xff" * 160


def pcmu(remote: tuple[str, int], direction: Direction = "sendrecv", ptime_ms: int = 20) -> NegotiatedMedia:
    return NegotiatedMedia(CodecSpec("PCMU", 0, 8000), None, ptime_ms, direction, remote[0], remote[1])


def speak(
    wire: Wire, source: tuple[str, int], sender: RtpSender, count: int = 1, payload: bytes = SILENCE_PCMU
) -> None:
    """``count`` consecutive packets of one stream from a far end the test plays, to the bot."""
    for _ in range(count):
        wire.send(source, BOT, sender.build(payload))
        sender.advance(len(payload))


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722", "opus"])
def test_audio_and_dtmf_flow_between_two_sessions(codec: str) -> None:
    wire = Wire()
    phone, bot = wire.leg(PHONE, policy=SPEAKS_FIRST), wire.leg(BOT)
    wire.negotiate(phone, bot, [codec])
    wire.run(0.1)
    assert bot.heard and rms(bot.heard) < 50  # the line is open: silence first
    start = len(bot.heard)
    phone.say(tone(16000, 1.0))
    wire.run(1.2)
    heard = bot.heard[start : start + 60]
    assert rms(heard[-30:]) > 3000 and abs(dominant_hz(heard[-30:]) - 440) < 20
    assert wire.packets_at(PHONE), "the bot answers the phone it heard"
    phone.session.send_dtmf("4#")
    wire.run(1.0)
    assert bot.digits == ["4", "#"]
    summary = bot.session.stats_summary()
    assert summary["codec"] == codec and summary["packets_lost"] == 0
    assert isinstance(summary["packets_received"], int) and summary["packets_received"] > 50


def test_sipp_g711a_capture_decodes_to_speech_and_one_key_press() -> None:
    wire = Wire()
    bot = wire.leg(BOT, input_rate=16000)
    wire.configure(bot, NegotiatedMedia(CodecSpec("PCMA", 8, 8000), 101, 20, "sendrecv", *PHONE))
    packets = [d.payload for d in read_udp(SIPP_PCAPS / "g711a.pcap")][
        40:90
    ]  # 1.5 s of speech, 30 ms packets
    packets += [d.payload for d in read_udp(SIPP_PCAPS / "dtmf_2833_7.pcap")]
    for payload in packets:
        wire.send(PHONE, BOT, payload)
        wire.run(0.03 if RtpPacket.parse(payload).payload_type == 8 else 0.02)
    wire.run(0.2)
    assert rms(bot.heard) > 1000
    assert bot.digits == ["7"]
    stats = bot.session.receiver.stats  # counts restart with the DTMF capture's own SSRC
    assert (stats.ignored_foreign_source, stats.ignored_invalid, stats.ignored_payload_type) == (0, 0, 0)
    # Symmetric RTP: the bot answers the address the packets came from.
    assert wire.packets_at(PHONE)[0].payload_type == 8


def test_caller_behind_nat_is_latched_after_a_run_while_the_sdp_address_is_silent() -> None:
    wire = Wire()
    bot = wire.leg(BOT)
    wire.configure(bot, pcmu(PHONE))
    speak(wire, OTHER, RtpSender(0), count=4)
    wire.run(0.2)
    assert bot.session.receiver.stats.ignored_unlatched == 4
    assert bot.session.receiver.state is LatchState.PROBATION  # four are not enough
    assert bot.session.sender.stats.packets_sent == 0
    speak(wire, OTHER, RtpSender(0), count=5)  # a new stream: five in a row
    assert bot.session.receiver.state is LatchState.LATCHED and bot.session.receiver.latched == OTHER
    wire.run(0.1)
    assert len(wire.packets_at(OTHER)) == 5 and not wire.packets_at(PHONE)


def test_an_early_packet_from_an_intruder_does_not_take_the_call() -> None:
    """Issue 15 item 8: a packet from another address right after the 200 OK made the bot latch to it."""
    wire = Wire()
    bot = wire.leg(BOT)
    wire.configure(bot, pcmu(PHONE))
    intruder_stream = RtpSender(0)
    speak(wire, OTHER, intruder_stream)
    assert bot.session.receiver.stats.ignored_unlatched == 1
    speak(wire, PHONE, RtpSender(0))
    assert bot.session.receiver.latched == PHONE
    speak(wire, OTHER, intruder_stream, count=20)  # a run after the caller spoke changes nothing
    assert bot.session.receiver.stats.ignored_foreign_source == 20
    wire.run(0.19)
    assert len(wire.packets_at(PHONE)) == 10 and not wire.packets_at(OTHER)  # one every 20 ms from t=0
    assert bot.session.receiver.latched == PHONE


def test_no_media_goes_to_an_sdp_address_that_never_sent_any() -> None:
    """Issue 15 item 9: an INVITE whose SDP named a third address made the bot send it 435 packets."""
    wire = Wire()
    bot = wire.leg(BOT)
    wire.configure(bot, pcmu(PHONE))
    bot.say(tone(16000, 0.1))
    start = bot.session.sender.timestamp
    wire.run(0.99)
    assert (bot.session.sender.timestamp - start) & 0xFFFFFFFF == 50 * 160  # the media clock ran for 1 s
    assert not wire.packets_at(PHONE) and bot.session.sender.stats.packets_sent == 0
    speak(wire, PHONE, RtpSender(0))  # now the far end has shown it is there
    wire.run(0.02)
    assert wire.packets_at(PHONE)[0].payload_type == 0


def test_packets_before_receive_are_bounded_by_the_policy() -> None:
    wire = Wire()
    bot = wire.leg(BOT, policy=MediaPeerPolicy(packets_before_receive=3))
    wire.configure(bot, pcmu(PHONE))
    wire.run(0.5)
    assert len(wire.packets_at(PHONE)) == 3 and bot.session.sender.stats.packets_sent == 3


def test_rtp_from_outside_the_allowed_networks_is_not_heard() -> None:
    wire = Wire()
    bot = wire.leg(BOT, policy=MediaPeerPolicy(allowed_networks=("10.0.0.0/8", "::1/128")))
    wire.configure(bot, pcmu(PHONE))
    speak(wire, PHONE, RtpSender(0), count=20)
    wire.run(0.2)
    assert bot.session.receiver.stats.ignored_forbidden_source == 20
    assert bot.session.receiver.latched is None and bot.session.receiver.stats.packets_received == 0
    assert not wire.packets_at(PHONE) and bot.session.sender.stats.packets_sent == 0
    # Reported once (the first source), and counted for the call record: a too narrow list is not silent.
    assert [event for event in bot.events if isinstance(event, ForbiddenMediaSource)] == [
        ForbiddenMediaSource(PHONE)
    ]
    summary = bot.session.stats_summary()
    assert summary["forbidden_packets_ignored"] == 20
    assert summary["first_forbidden_source"] == "192.0.2.10:40000"


def test_a_reinvite_to_a_new_address_gets_its_own_bound_of_packets_before_receive() -> None:
    """Review item 13: the count of packets sent unheard survived a re-INVITE, so the new address got none."""
    wire = Wire()
    bot = wire.leg(BOT, policy=MediaPeerPolicy(packets_before_receive=3))
    wire.configure(bot, pcmu(PHONE))
    wire.run(0.5)
    assert len(wire.packets_at(PHONE)) == 3
    wire.configure(bot, pcmu(PHONE))  # the same address again: still nothing more
    wire.run(0.5)
    assert len(wire.packets_at(PHONE)) == 3
    wire.configure(bot, pcmu(OTHER))
    wire.run(0.5)
    assert len(wire.packets_at(OTHER)) == 3 and len(wire.packets_at(PHONE)) == 3


def test_flush_drops_queued_bot_audio_at_once() -> None:
    wire = Wire()
    bot = wire.leg(BOT, max_queued_ms=2000)
    wire.configure(bot, pcmu(PHONE))
    speak(wire, PHONE, RtpSender(0))
    bot.say(tone(16000, 1.5))  # 1.5 s queued, under the limit: taken at once
    assert not bot.speech
    wire.wait_for(lambda: sum(p.payload != SILENCE_PCMU for p in wire.packets_at(PHONE)) >= 5)
    assert bot.session.queued_ms > 1000
    bot.session.flush()
    assert bot.session.queued_ms == 0
    sent_before = len(wire.packets_at(PHONE))
    wire.run(0.1)
    after = wire.packets_at(PHONE)[sent_before:]
    assert len(after) == 5 and all(packet.payload == SILENCE_PCMU for packet in after)  # from the next one on


def test_on_hold_bot_audio_drains_in_real_time_and_nothing_is_sent() -> None:
    wire = Wire()
    bot = wire.leg(BOT, max_queued_ms=60)
    wire.configure(bot, pcmu(PHONE, direction="recvonly"))
    speak(wire, PHONE, RtpSender(0))
    bot.say(tone(16000, 0.3))
    wire.run(0.1)
    assert bot.speech, "the bot's speech is discarded at the speed it would be played, not at once"
    wire.run(0.3)
    assert not bot.speech and bot.session.queued_ms == 0
    assert not wire.packets_at(PHONE) and bot.session.sender.stats.packets_sent == 0


def test_inactivity_is_reported_once_and_a_renegotiation_rearms_it() -> None:
    wire = Wire()
    bot = wire.leg(BOT, inactivity_timeout_s=0.2)
    wire.configure(bot, pcmu(PHONE))
    wire.run(0.18)
    assert bot.events == [] and bot.session.state is SessionState.ACTIVE
    wire.run(1.0)
    assert bot.events == [MediaTimeout(0.2)] and bot.session.state is SessionState.SILENT
    wire.configure(bot, pcmu(PHONE))  # a re-INVITE: the far end gets a new chance
    wire.run(1.0)
    assert bot.events == [MediaTimeout(0.2), MediaTimeout(0.2)]


def test_a_stream_that_keeps_flowing_is_never_reported_silent() -> None:
    wire = Wire()
    phone, bot = wire.leg(PHONE, policy=SPEAKS_FIRST), wire.leg(BOT, inactivity_timeout_s=0.2)
    wire.negotiate(phone, bot, ["PCMU"])
    wire.run(2.0)
    assert bot.events == [] and bot.session.state is SessionState.ACTIVE


@pytest.mark.parametrize(("caller_codec", "staff_codec"), [("PCMU", "PCMU"), ("PCMA", "opus")])
def test_bridge_relays_both_ways_and_keeps_tapping_the_caller(caller_codec: str, staff_codec: str) -> None:
    # The caller's phone speaks first, and so does the bot's own leg to staff; staff answers what it hears.
    wire = Wire()
    caller, bot_leg = wire.leg(PHONE, policy=SPEAKS_FIRST), wire.leg(BOT)
    staff_leg, staff = wire.leg(STAFF_LEG, policy=SPEAKS_FIRST), wire.leg(STAFF)
    wire.negotiate(caller, bot_leg, [caller_codec])
    wire.negotiate(staff_leg, staff, [staff_codec])
    wire.run(0.1)
    bot_leg.session.bridge(staff_leg.session)
    mode = BridgeMode.RELAY if caller_codec == staff_codec else BridgeMode.TRANSCODE
    assert bot_leg.session.bridged_to is staff_leg.session and staff_leg.session.bridged_to is bot_leg.session
    assert bot_leg.session.bridge_mode is mode and staff_leg.session.bridge_mode is mode
    assert not bot_leg.session.send_audio(tone(16000, 0.2))  # the bot is muted while bridged
    assert bot_leg.session.queued_ms == 0
    marks = {leg.address: len(leg.heard) for leg in (caller, bot_leg, staff)}
    caller.say(tone(16000, 1.2, hz=500))
    staff.say(tone(16000, 1.2, hz=900))
    wire.run(1.0)
    staff_heard, caller_heard, tap = (leg.heard[marks[leg.address] :] for leg in (staff, caller, bot_leg))
    assert rms(staff_heard[-25:]) > 2000 and abs(dominant_hz(staff_heard[-25:]) - 500) < 20
    assert rms(caller_heard[-25:]) > 2000 and abs(dominant_hz(caller_heard[-25:]) - 900) < 20
    assert rms(tap[-25:]) > 2000 and abs(dominant_hz(tap[-25:]) - 500) < 20
    bot_leg.session.unbridge()
    assert bot_leg.session.bridged_to is None and staff_leg.session.bridged_to is None
    assert bot_leg.session.bridge_mode is BridgeMode.OFF and staff_leg.session.bridge_mode is BridgeMode.OFF


def test_relayed_packets_keep_the_outgoing_legs_stream_numbering() -> None:
    wire = Wire()
    caller, bot_leg = wire.leg(PHONE, policy=SPEAKS_FIRST), wire.leg(BOT)
    staff_leg, staff = wire.leg(STAFF_LEG, policy=SPEAKS_FIRST), wire.leg(STAFF)
    wire.negotiate(caller, bot_leg, ["PCMU"])
    wire.negotiate(staff_leg, staff, ["PCMU"])
    wire.run(0.2)
    bot_leg.session.bridge(staff_leg.session)
    before = len(wire.packets_at(STAFF))
    wire.run(0.5)
    relayed = wire.packets_at(STAFF)[before:]
    assert len(relayed) >= 24
    assert {packet.ssrc for packet in relayed} == {staff_leg.session.sender.ssrc}
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in itertools.pairwise(relayed))
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(relayed))


def test_callers_30ms_ptime_marker_on_talkspurt_and_continuous_timestamps() -> None:
    wire = Wire()
    bot = wire.leg(BOT, max_queued_ms=1000)
    wire.configure(bot, NegotiatedMedia(CodecSpec("PCMA", 8, 8000), None, 30, "sendrecv", *PHONE))
    wire.send(PHONE, BOT, RtpSender(8).build(b"\xd5" * 240))
    wire.run(0.09)
    bot.say(tone(16000, 0.3))
    wire.run(0.6)
    packets = wire.packets_at(PHONE)[:20]
    assert len(packets) == 20
    assert all(len(p.payload) == 240 for p in packets)  # 30 ms of A-law
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 240 for a, b in itertools.pairwise(packets))
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in itertools.pairwise(packets))
    markers = [i for i, p in enumerate(packets) if p.marker]
    speech_start = next(i for i, p in enumerate(packets) if p.payload != b"\xd5" * 240)
    assert (
        markers == [0, speech_start] and speech_start > 0
    )  # first packet of the stream and of the talkspurt


def test_packets_go_out_on_the_20ms_schedule_of_the_clock() -> None:
    wire = Wire()
    bot = wire.leg(BOT)
    wire.configure(bot, pcmu(PHONE))
    speak(wire, PHONE, RtpSender(0))
    wire.run(0.99)
    times = [arrival.time for arrival in wire.arrivals[PHONE]]
    assert len(times) == 50
    assert all(abs((b - a) - 0.020) < 1e-9 for a, b in itertools.pairwise(times))


def test_reinvite_switches_codec_and_peer_address() -> None:
    wire = Wire()
    bot = wire.leg(BOT)
    wire.configure(bot, pcmu(PHONE))
    speak(wire, PHONE, RtpSender(0))
    wire.run(0.05)
    first = wire.packets_at(PHONE)[0]
    assert first.payload_type == 0
    wire.configure(bot, NegotiatedMedia(CodecSpec("PCMA", 8, 8000), None, 20, "sendrecv", *OTHER))
    speak(wire, OTHER, RtpSender(8), payload=b"\xd5" * 160)
    wire.run(0.05)
    packet = wire.packets_at(OTHER)[0]
    assert packet.payload_type == 8 and packet.ssrc == first.ssrc and packet.payload == b"\xd5" * 160
    sent_to_first = len(wire.packets_at(PHONE))
    wire.run(0.2)
    assert len(wire.packets_at(PHONE)) == sent_to_first  # the old address hears no more


def test_a_closed_session_takes_nothing_in_and_sends_nothing() -> None:
    wire = Wire()
    bot = wire.leg(BOT)
    wire.configure(bot, pcmu(PHONE))
    speak(wire, PHONE, RtpSender(0))
    wire.run(0.1)
    bot.session.close()
    sent, received = bot.session.sender.stats.packets_sent, bot.session.receiver.stats.packets_received
    speak(wire, PHONE, RtpSender(0), count=5)
    assert not bot.session.send_audio(tone(16000, 0.1))
    bot.session.advance(wire.now + 1.0)
    assert bot.session.datagrams_to_send() == [] and bot.session.state is SessionState.CLOSED
    assert (bot.session.sender.stats.packets_sent, bot.session.receiver.stats.packets_received) == (
        sent,
        received,
    )
