"""One call leg's media, sans-I/O: datagrams and PCM in; datagrams, PCM and events out, on an explicit clock.

Receive path: datagram (with its arrival time) -> source check and latch (:class:`~.rtp.MediaPeerPolicy`) ->
size check per codec -> jitter buffer (or RFC 4733 decoder: :class:`DtmfReceived`) -> decoded, resampled 20 ms
PCM frames on :meth:`MediaSession.read_audio`. Send path: PCM at the pipeline rate waits in a queue that the pacing
ticks drain in real time, whether or not the far end may hear it (on hold, or before the far end has sent
anything, the bot's speech is discarded at the speed it would have been played, so the pipeline's timing stays
true). Packets go only to the latched source, or (within the policy's bound) to the SDP address.
:meth:`MediaSession.bridge` relays RTP between two legs for the B2BUA transfer fallback.

Nothing here touches a socket, a task or the clock: the owner (:class:`~.endpoint.RtpEndpoint`, or a test) hands
in every datagram with ``now``, calls :meth:`MediaSession.advance` at :meth:`MediaSession.next_deadline`, and
sends what :meth:`MediaSession.datagrams_to_send` returns -- as the SIP core (``sip_bridge/sip/core.py``) is
driven by its transport, so a whole call's media can be tested on a manual clock, exactly and fast.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from .clock import Pacer
from .codecs import FRAME_MS, SAMPLE_WIDTH, AudioCodec, PcmFifo, PcmResampler
from .dtmf import DtmfDecoder, encode_digit
from .jitter import BufferedPacket, JitterBuffer, LossConcealer, Playout
from .rtp import Address, LatchState, MediaPeerPolicy, RtpPacket, RtpReceiver, RtpSender
from .sdp import NegotiatedMedia

log = logging.getLogger(__name__)

COMFORT_NOISE_PT = 13
_MAX_INPUT_FRAMES = 250  # 5 s of undelivered caller audio: beyond that the reader is gone, drop the oldest
_MAX_PLAYOUT_MS = 500  # decoded audio waiting to be framed (the largest packet is 240 ms)
_MAX_BRIDGE_FRAMES = 5  # ~100 ms: a bridge must not build up delay when the two legs' clocks differ


class SessionState(Enum):
    IDLE = "idle"  # no media negotiated yet: datagrams are ignored, the ticks only drain queued bot audio
    ACTIVE = "active"
    SILENT = "silent"  # no RTP for the inactivity timeout (reported once; a re-negotiation re-arms the check)
    CLOSED = "closed"  # nothing in, nothing out


class BridgeMode(Enum):
    OFF = "off"
    RELAY = "relay"  # same codec on both legs: payloads forwarded as they arrive, renumbered as our stream
    TRANSCODE = "transcode"  # different codecs: the peer's decoded audio is re-encoded by our paced sender


@dataclass(frozen=True)
class DtmfReceived:
    """The far end pressed a key (RFC 4733), reported on the key press's first packet."""

    digit: str


@dataclass(frozen=True)
class MediaTimeout:
    """No RTP from the far end for ``silent_s`` seconds while the stream should be flowing."""

    silent_s: float


@dataclass(frozen=True)
class ForbiddenMediaSource:
    """Media arrived from outside the allow-list (reported once per leg, for the first such source): with direct
    media between a phone and the gateway, a too narrow allow-list silently deafens every call."""

    source: Address


MediaEvent = DtmfReceived | MediaTimeout | ForbiddenMediaSource


class OutgoingDatagram(NamedTuple):
    data: bytes
    destination: Address


class MediaSession:
    """RTP media for one call leg. ``configure(negotiated, now)`` after the offer/answer, then feed it."""

    def __init__(
        self,
        *,
        input_rate: int = 16000,
        output_rate: int = 16000,
        inactivity_timeout_s: float | None = 30.0,
        jitter_min_ms: float = 40.0,
        jitter_max_ms: float = 200.0,
        max_queued_ms: float = 60.0,
        policy: MediaPeerPolicy | None = None,
    ) -> None:
        """``input_rate``/``output_rate``: the pipeline's PCM rates (heard audio out, bot audio in). ``policy``:
        whose media counts and whether we may send before hearing the far end (default: strict, we wait)."""
        self.input_rate = input_rate
        self.output_rate = output_rate
        self.inactivity_timeout_s = inactivity_timeout_s
        self.jitter_min_ms = jitter_min_ms
        self.jitter_max_ms = jitter_max_ms
        self.max_queued_ms = max_queued_ms
        self.policy = policy or MediaPeerPolicy()
        self.state = SessionState.IDLE
        self.media: NegotiatedMedia | None = None
        self.codec: AudioCodec | None = None
        self.receiver = RtpReceiver(payload_types=set(), policy=self.policy)
        self.sender = RtpSender(0)
        self.jitter = JitterBuffer(8000, min_delay_ms=jitter_min_ms, max_delay_ms=jitter_max_ms)
        self._events: list[MediaEvent] = []
        self._outbox: list[OutgoingDatagram] = []
        self._receive = _ReceivePath()
        self._send = _SendPath()
        self._last_rx = 0.0
        self.forbidden_source: Address | None = None  # the first source dropped as outside the allow-list
        self._tick_ms = FRAME_MS
        self._pacer = Pacer(FRAME_MS / 1000, start_s=0.0)
        self._last_index = -1
        # Bridge (B2BUA transfer fallback): the other leg while ``bridge_mode`` is not OFF.
        self.bridge_mode = BridgeMode.OFF
        self._peer: MediaSession | None = None
        self._relay_ts_offset: dict[int, int] = {}
        self._bridge_resampler: PcmResampler | None = None

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self, now: float) -> None:
        """The media clock starts (the socket is open): pacing and the inactivity check count from ``now``."""
        self._last_rx = now
        self._pacer.restart(now)

    def configure(self, media: NegotiatedMedia, now: float) -> None:
        """Apply (re-)negotiated media: codec, DTMF payload type, ptime, direction, remote address."""
        previous = self.media
        self.media = media
        if previous is None or previous.codec != media.codec:
            self.codec = AudioCodec(media.codec)
            self.sender.payload_type = media.codec.payload_type
            self.jitter = JitterBuffer(
                media.codec.clock_rate,
                packet_ms=media.ptime_ms,
                min_delay_ms=self.jitter_min_ms,
                max_delay_ms=self.jitter_max_ms,
            )
            self._receive.decode_resampler = PcmResampler(self.codec.audio_rate, self.input_rate)
            self._send.encode_resampler = PcmResampler(self.output_rate, self.codec.audio_rate)
            self._send.clear_encoded()
        accepted = {media.codec.payload_type, COMFORT_NOISE_PT}
        if media.dtmf_payload_type is not None:
            accepted.add(media.dtmf_payload_type)
        self.receiver.payload_types = accepted
        expected_before = self.receiver.expected
        self.receiver.expect((media.remote_host, media.remote_port))  # a new address (re-INVITE) re-latches
        if self.receiver.expected is not expected_before:
            self._send.sent_unheard = 0  # the new address gets the policy's bound, not what the old one used
        self._receive.dtmf.clock_rate = media.dtmf_clock_rate or media.codec.clock_rate
        tick_ms = math.gcd(FRAME_MS, media.ptime_ms) if media.ptime_ms % 10 == 0 else FRAME_MS
        if tick_ms != self._tick_ms or previous is None:
            self._tick_ms = tick_ms
            self._pacer = Pacer(tick_ms / 1000, start_s=now)
            self._last_index = -1
        self._last_rx = now
        if self.state is not SessionState.CLOSED:
            self.state = SessionState.ACTIVE

    def set_pipeline_rates(self, *, input_rate: int | None = None, output_rate: int | None = None) -> None:
        """Change the PCM rates on the pipeline side (the pipecat transport calls this from its setup)."""
        if input_rate is not None and input_rate != self.input_rate:
            self.input_rate = input_rate
            self._receive.playout.clear()
            if self.codec is not None:
                self._receive.decode_resampler = PcmResampler(self.codec.audio_rate, input_rate)
        if output_rate is not None and output_rate != self.output_rate:
            self.output_rate = output_rate
            self._send.outgoing.clear()
            if self.codec is not None:
                self._send.encode_resampler = PcmResampler(output_rate, self.codec.audio_rate)

    def close(self) -> None:
        """Leave any bridge; from now on nothing goes in or out (idempotent).

        The codec's libav encoder/decoder run filter graphs with a thread pool each: drop them now, because the
        endpoint around this session sits in reference cycles that only the garbage collector frees, calls later.
        """
        self.unbridge()
        self.state = SessionState.CLOSED
        self.codec = None

    # ------------------------------------------------------------------------------------------ outputs

    def datagrams_to_send(self) -> list[OutgoingDatagram]:
        """The packets produced since the last call, in order (the owner sends them)."""
        out, self._outbox = self._outbox, []
        return out

    def next_events(self) -> list[MediaEvent]:
        events, self._events = self._events, []
        return events

    def read_audio(self) -> bytes | None:
        """The next 20 ms of the far end's audio (s16 mono at ``input_rate``), or None when none is waiting."""
        heard = self._receive.heard
        return heard.popleft() if heard else None

    @property
    def audio_waiting(self) -> bool:
        return bool(self._receive.heard)

    def next_deadline(self) -> float:
        """When :meth:`advance` has the next pacing tick to run."""
        return self._pacer.next_deadline

    def advance(self, now: float) -> None:
        """Run the pacing ticks due by ``now``: play out the far end's audio, send our packets, check silence."""
        if self.state is SessionState.CLOSED:
            return
        for index in self._pacer.due(now):
            self._tick(index, now)

    # ----------------------------------------------------------------------------------------- pipeline

    def send_audio(self, pcm: bytes) -> bool:
        """Queue bot audio (s16 mono at ``output_rate``); False when it was discarded (closed, or bridged: the
        caller hears staff, not the bot). The owner holds the bot back while :attr:`backlogged`."""
        if self.state is SessionState.CLOSED or self.bridge_mode is not BridgeMode.OFF:
            return False
        self._send.outgoing.push(pcm)
        return True

    @property
    def queued_ms(self) -> float:
        return len(self._send.outgoing) * 1000.0 / (self.output_rate * SAMPLE_WIDTH)

    @property
    def backlogged(self) -> bool:
        """More than ``max_queued_ms`` queued: the rest of the bot's speech should wait upstream, where an
        interruption can still discard it."""
        return self.queued_ms > self.max_queued_ms

    def flush(self) -> None:
        """Drop all queued bot audio now (barge-in): the next packet out is silence."""
        self._send.outgoing.clear()
        self._send.clear_encoded()
        if self._send.encode_resampler is not None:
            self._send.encode_resampler.reset()

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Queue RFC 4733 key presses; raises ValueError for a bad digit or when none was negotiated."""
        if self.media is None or self.media.dtmf_payload_type is None:
            raise ValueError("the peer did not negotiate telephone-event; cannot send DTMF")
        clock_rate = self.media.dtmf_clock_rate or self.media.codec.clock_rate
        for digit in digits:
            packets = encode_digit(digit, clock_rate=clock_rate, duration_ms=duration_ms, packet_ms=FRAME_MS)
            for index, (payload, marker) in enumerate(packets):
                self._send.dtmf.append((payload, marker, index == 0))
            # A short pause between digits (two silent frames) so that repeated digits stay distinct.
            self._send.dtmf.extend([(b"", False, False)] * 2)

    def stats_summary(self) -> dict[str, object]:
        """Numbers for the call record: codec, packets each way, loss, late/shed packets, jitter."""
        rx, jb = self.receiver.stats, self.jitter.stats
        return {
            "codec": self.media.codec.name if self.media else None,
            "ptime_ms": self.media.ptime_ms if self.media else None,
            "packets_received": rx.packets_received,
            "packets_sent": self.sender.stats.packets_sent,
            "packets_lost": rx.packets_lost,
            "packets_late": jb.late,
            "packets_shed": jb.shed,
            "underruns": jb.underruns,
            "jitter_ms": round(self.jitter.jitter_ms, 2),
            "foreign_packets_ignored": rx.ignored_foreign_source,
            "unlatched_packets_ignored": rx.ignored_unlatched,
            "forbidden_packets_ignored": rx.ignored_forbidden_source,
            "first_forbidden_source": address_text(self.forbidden_source),
            "oversize_packets_ignored": rx.ignored_oversize,
            "dtmf_digits_suppressed": self._receive.dtmf.suppressed,
        }

    # ------------------------------------------------------------------------------------------ bridge

    def bridge(self, other: MediaSession) -> None:
        """Relay media between this leg and ``other`` (both ways) until :meth:`unbridge`.

        Same codec on both legs: payloads are forwarded with the outgoing leg's SSRC/seq/timestamps (the packets
        appear in ``other``'s :meth:`datagrams_to_send` as ours arrive). Different codecs: each leg's decoded
        audio is re-encoded by the other leg's paced sender. Either way this leg's decoded audio stays readable
        via :meth:`read_audio` (the transcript keeps going).
        """
        if other is self:
            raise ValueError("cannot bridge an endpoint to itself")
        self.unbridge()
        other.unbridge()
        same = self.media is not None and other.media is not None and self.media.codec == other.media.codec
        for leg, peer in ((self, other), (other, self)):
            leg.flush()
            leg._peer = peer
            leg.bridge_mode = BridgeMode.RELAY if same else BridgeMode.TRANSCODE
            leg._relay_ts_offset.clear()
            leg._bridge_resampler = (
                PcmResampler(leg.input_rate, peer.codec.audio_rate) if peer.codec and not same else None
            )

    def unbridge(self) -> None:
        peer = self._peer
        if peer is None:
            return
        for leg in (self, peer):
            leg._peer = None
            leg.bridge_mode = BridgeMode.OFF
            leg._bridge_resampler = None
            leg.flush()

    @property
    def bridged_to(self) -> MediaSession | None:
        return self._peer

    # ------------------------------------------------------------------------------------------ receive

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """One datagram from ``source``, arrived at ``now``. Never raises for bad input.

        A new SSRC or sequence range (the far end restarted its stream) needs no special case here: the jitter
        buffer resynchronises on a run of packets in the new range and ignores single strays.
        """
        media, codec = self.media, self.codec
        if media is None or codec is None or self.state is SessionState.CLOSED:
            return
        stats = self.receiver.stats
        forbidden_before = stats.ignored_forbidden_source
        packet = self.receiver.receive(data, source)
        if packet is None:
            if self.forbidden_source is None and stats.ignored_forbidden_source > forbidden_before:
                self.forbidden_source = source
                self._events.append(ForbiddenMediaSource(source))
            return
        is_audio = packet.payload_type not in (media.dtmf_payload_type, COMFORT_NOISE_PT)
        if is_audio and not codec.fits(packet.payload):
            self.receiver.stats.ignored_oversize += 1
            return
        self._last_rx = now
        if packet.payload_type == media.dtmf_payload_type:
            digit = self._receive.dtmf.feed(packet.timestamp, packet.payload, now)
            if digit is not None:
                self._events.append(DtmfReceived(digit))
            self.jitter.put(packet.sequence_number, packet.timestamp, None, now)
        elif packet.payload_type == COMFORT_NOISE_PT:
            self.jitter.put(packet.sequence_number, packet.timestamp, b"", now)
        else:
            self.jitter.put(packet.sequence_number, packet.timestamp, packet.payload, now)
        if self._peer is not None and self.bridge_mode is BridgeMode.RELAY:
            self._peer._relay(packet)

    def _relay(self, packet: RtpPacket) -> None:
        """Send a packet received on the bridged peer out of this leg, renumbered as our own stream."""
        media = self.media
        if (
            media is None
            or not media.sends
            or self.state is SessionState.CLOSED
            or self._destination(media) is None
        ):
            return
        peer_media = self._peer.media if self._peer else None
        if peer_media is not None and packet.payload_type == peer_media.dtmf_payload_type:
            if media.dtmf_payload_type is None:
                return
            payload_type = media.dtmf_payload_type
        elif packet.payload_type == COMFORT_NOISE_PT:
            payload_type = COMFORT_NOISE_PT
        else:
            payload_type = media.codec.payload_type
        offset = self._relay_ts_offset.setdefault(packet.ssrc, (self.sender.timestamp - packet.timestamp))
        timestamp = (packet.timestamp + offset) & 0xFFFFFFFF
        self._transmit(
            packet.payload, marker=bool(packet.marker), payload_type=payload_type, timestamp=timestamp
        )

    def _playout_frame(self) -> None:
        """Produce one 20 ms frame of far-end audio from the jitter buffer (concealing gaps)."""
        codec, receive = self.codec, self._receive
        resampler = receive.decode_resampler
        if codec is None or resampler is None:
            return
        need = self.input_rate * FRAME_MS // 1000 * SAMPLE_WIDTH
        packet_bytes = round(self.input_rate * self.jitter.packet_ms / 1000) * SAMPLE_WIDTH
        playout = receive.playout
        while len(playout) < need:
            item = self.jitter.pop()
            if item is None:
                break
            receive.playing = True
            if item is Playout.LOST:
                playout.push(receive.concealer.conceal(packet_bytes))
            elif isinstance(item, BufferedPacket) and item.payload:
                try:
                    pcm = resampler.process(codec.decode(item.payload, item.timestamp))
                except Exception as exc:  # a corrupt payload must not end the call
                    log.debug("undecodable %s payload: %s", codec.name, exc)
                    pcm = receive.concealer.conceal(packet_bytes)
                else:
                    receive.concealer.good(pcm)
                playout.push(pcm)
                excess = len(playout) - self.input_rate * _MAX_PLAYOUT_MS // 1000 * SAMPLE_WIDTH
                if excess > 0:  # never let one packet's worth of decoded audio delay the rest of the call
                    playout.pop(excess - excess % SAMPLE_WIDTH)
            else:
                playout.push(bytes(packet_bytes))
        if len(playout) < need:
            if not receive.playing:
                return
            playout.push(receive.concealer.conceal(need - len(playout)))
        frame = playout.pop(need)
        assert frame is not None
        receive.heard.append(frame)  # a full queue drops its oldest frame
        peer = self._peer
        if (
            peer is not None
            and self.bridge_mode is BridgeMode.TRANSCODE
            and self._bridge_resampler is not None
        ):
            peer._outgoing_from_bridge(self._bridge_resampler.process(frame))

    def _outgoing_from_bridge(self, codec_pcm: bytes) -> None:
        codec_pcm_fifo = self._send.codec_pcm
        codec_pcm_fifo.push(codec_pcm)
        if self.codec is not None and len(codec_pcm_fifo) > _MAX_BRIDGE_FRAMES * self.codec.frame_bytes:
            codec_pcm_fifo.pop(len(codec_pcm_fifo) - _MAX_BRIDGE_FRAMES * self.codec.frame_bytes)

    # --------------------------------------------------------------------------------------------- send

    def _pull_frame(self) -> bool:
        """Move 20 ms of bot audio (or silence) from the queue into the codec-rate PCM buffer.

        Returns whether it was real audio. The queue drains in real time even when nothing is sent.
        """
        send = self._send
        size = self.output_rate * FRAME_MS // 1000 * SAMPLE_WIDTH
        chunk = send.outgoing.pop(size)
        talking = chunk is not None
        if chunk is None:
            rest = send.outgoing.take_all()
            talking = bool(rest)
            chunk = rest + bytes(size - len(rest))
        resampler = send.encode_resampler
        if resampler is not None and self.codec is not None and self.bridge_mode is BridgeMode.OFF:
            if talking:
                send.codec_pcm.push(resampler.process(chunk))
                send.resampler_used = True
            else:
                # Exact digital silence between utterances (the resampler would add +-1 LSB noise), and a
                # fresh resampler for the next utterance.
                send.codec_pcm.push(bytes(self.codec.frame_bytes))
                if send.resampler_used:
                    resampler.reset()
                    send.resampler_used = False
        return talking

    def _encode_available(self, codec: AudioCodec) -> None:
        send = self._send
        while True:
            frame = send.codec_pcm.pop(codec.frame_bytes)
            if frame is None:
                return
            payload = codec.encode_frame(frame)
            if codec.profile.sample_based:
                send.encoded.extend(payload)
            elif payload:
                send.opus_payloads.append(payload)

    def _send_packet_time(self, ptime_ms: int) -> None:
        """Send ``ptime_ms`` of audio (one packet; Opus: one packet per 20 ms)."""
        codec, media, send = self.codec, self.media, self._send
        if codec is None or media is None:
            self._pull_frame()
            return
        frames = max(1, ptime_ms // FRAME_MS)
        if self.bridge_mode is BridgeMode.RELAY:
            # The peer's packets are relayed as they arrive; only keep our media clock running.
            self.sender.advance(codec.clock_rate * ptime_ms // 1000)
            return
        if send.dtmf and media.dtmf_payload_type is not None:
            self._send_dtmf_step(ptime_ms, media.dtmf_payload_type)
            return
        bridged = self.bridge_mode is BridgeMode.TRANSCODE
        talking = False
        if codec.profile.sample_based:
            need = codec.clock_rate * ptime_ms // 1000
            while len(send.encoded) < need:
                before = len(send.encoded)
                talking = self._pull_frame() or talking
                self._encode_available(codec)
                if len(send.encoded) == before and bridged:
                    send.encoded.extend(codec.encode_frame(bytes(codec.frame_bytes)))
            payloads = [bytes(send.encoded[:need])]
            del send.encoded[:need]
            ticks = [need]
        else:
            payloads = []
            for _ in range(frames):
                while not send.opus_payloads:
                    before = len(send.codec_pcm)
                    talking = self._pull_frame() or talking
                    if len(send.codec_pcm) == before and bridged:
                        send.codec_pcm.push(bytes(codec.frame_bytes))
                    self._encode_available(codec)
                payloads.append(send.opus_payloads.popleft())
            ticks = [codec.rtp_ticks(codec.frame_samples)] * len(payloads)
        marker = send.first_packet or (talking and not send.talking)
        send.talking = talking
        for payload, advance in zip(payloads, ticks, strict=True):
            if self._transmit(payload, marker=marker):
                marker = False
            self.sender.advance(advance)

    def _send_dtmf_step(self, ptime_ms: int, payload_type: int) -> None:
        media, queue = self.media, self._send.dtmf
        assert media is not None
        while queue:
            payload, marker, new_event = queue.popleft()
            if new_event:
                self._send.dtmf_timestamp = self.sender.timestamp
            if payload:
                self._transmit(
                    payload, marker=marker, payload_type=payload_type, timestamp=self._send.dtmf_timestamp
                )
            is_end = bool(payload) and payload[1] & 0x80
            # The three end packets go out back to back; everything else one per packet time.
            if not (is_end and queue and queue[0][0] == payload):
                break
        # Bot audio waits (it is not dropped) while a key press goes out; the media clock runs on.
        self.sender.advance(media.codec.clock_rate * ptime_ms // 1000)

    def _transmit(
        self, payload: bytes, *, marker: bool, payload_type: int | None = None, timestamp: int | None = None
    ) -> bool:
        """Number and queue one packet, if we may send now and have somewhere to send it; whether it went."""
        media = self.media
        if self.state is SessionState.CLOSED or media is None or not media.sends:
            return False
        destination = self._destination(media)
        if destination is None:
            return False
        if self.receiver.state is not LatchState.LATCHED:
            self._send.sent_unheard += 1
        data = self.sender.build(payload, marker=marker, payload_type=payload_type, timestamp=timestamp)
        self._send.first_packet = False
        self._outbox.append(OutgoingDatagram(data, destination))
        return True

    def _destination(self, media: NegotiatedMedia) -> Address | None:
        """Where our media goes: the source we latched to; before that the SDP address only within the policy's
        bound (and inside the allow-list), so a forged SDP cannot aim our audio at a third party."""
        if self.receiver.latched is not None:
            return self.receiver.latched
        budget = self.policy.packets_before_receive
        if budget is not None and self._send.sent_unheard >= budget:
            return None
        if media.remote_port == 0 or not self.receiver.allows(media.remote_host):
            return None
        return (media.remote_host, media.remote_port)

    # --------------------------------------------------------------------------------------------- time

    def _tick(self, index: int, now: float) -> None:
        """Pacing tick number ``index`` (every ``tick_ms``: 20 ms, or 10 ms for a 30 ms packet time)."""
        tick_ms = self._tick_ms
        skipped = index - self._last_index - 1 if self._last_index >= 0 else 0
        self._last_index = index
        if skipped > 0 and self.codec is not None:
            self.sender.advance(self.codec.clock_rate * tick_ms * skipped // 1000)
        elapsed_ms = index * tick_ms
        if elapsed_ms % FRAME_MS == 0:
            self._playout_frame()
        ptime = self.media.ptime_ms if self.media else FRAME_MS
        if elapsed_ms % ptime == 0:
            self._send_packet_time(ptime)
        self._check_inactivity(now)

    def _check_inactivity(self, now: float) -> None:
        media, timeout = self.media, self.inactivity_timeout_s
        if media is None or timeout is None or self.state is not SessionState.ACTIVE:
            return
        if media.direction == "inactive" or media.remote_port == 0:
            return
        if now - self._last_rx > timeout:
            self.state = SessionState.SILENT
            self._events.append(MediaTimeout(timeout))


def address_text(address: Address | None) -> str | None:
    """``host:port`` (``[host]:port`` for IPv6), for logs and call records."""
    if address is None:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _ReceivePath:
    """Far-end audio on its way to the pipeline: decoded and resampled, re-chunked into 20 ms frames."""

    def __init__(self) -> None:
        self.dtmf = DtmfDecoder()
        self.concealer = LossConcealer()
        self.decode_resampler: PcmResampler | None = None
        self.playout = PcmFifo()  # decoded audio at input_rate awaiting a whole frame
        self.playing = False  # the far end's audio has started: from now on gaps are concealed, not skipped
        self.heard: deque[bytes] = deque(maxlen=_MAX_INPUT_FRAMES)


class _SendPath:
    """Bot audio on its way to the wire: queued, resampled to the codec rate, encoded, packetised."""

    def __init__(self) -> None:
        self.outgoing = PcmFifo()  # bot audio at output_rate, drained in real time
        self.encode_resampler: PcmResampler | None = None
        self.resampler_used = False
        self.codec_pcm = PcmFifo()  # codec-rate PCM awaiting a whole 20 ms frame
        self.encoded = bytearray()  # sample-based codecs: encoded bytes awaiting a packet
        self.opus_payloads: deque[bytes] = deque()
        self.talking = False  # the last packet time carried bot audio (the next talkspurt gets a marker)
        self.first_packet = True
        self.sent_unheard = 0  # packets sent to the SDP address before the far end had sent any
        self.dtmf: deque[tuple[bytes, bool, bool]] = deque()  # (payload, marker, new event)
        self.dtmf_timestamp = 0

    def clear_encoded(self) -> None:
        self.codec_pcm.clear()
        self.encoded.clear()
        self.opus_payloads.clear()
