"""One call leg's RTP media over asyncio UDP: the thin I/O shell around the sans-I/O media cores.

Incoming packets -> symmetric-RTP latch -> jitter buffer (or RFC 4733 decoder) -> decoded, resampled 20 ms
PCM frames on :meth:`RtpEndpoint.read_audio`. Outgoing PCM (pipeline rate) waits in a queue that one paced
loop drains in real time, whether or not the far end may hear it (on hold the bot's speech is discarded at
the speed it would have been played, so the pipeline's timing stays true). :meth:`flush` empties that queue
at once for barge-in. :meth:`bridge` relays RTP between two legs for the B2BUA transfer fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .clock import Pacer
from .codecs import FRAME_MS, SAMPLE_WIDTH, AudioCodec, PcmFifo, PcmResampler
from .dtmf import DtmfDecoder, encode_digit
from .jitter import BufferedPacket, JitterBuffer, LossConcealer, Playout
from .rtp import Address, RtpPacket, RtpReceiver, RtpSender
from .sdp import NegotiatedMedia

if TYPE_CHECKING:
    from voicebot.settings import SipSettings

log = logging.getLogger(__name__)

COMFORT_NOISE_PT = 13
_MAX_INPUT_FRAMES = 250  # 5 s of undelivered caller audio: beyond that the reader is gone, drop the oldest


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.endpoint._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)  # ICMP unreachable while the peer is not listening yet


class RtpEndpoint:
    """RTP media for one call leg. ``open()``, then ``configure(negotiated)`` after the offer/answer."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        port_range: tuple[int, int] = (20000, 20999),
        input_rate: int = 16000,
        output_rate: int = 16000,
        inactivity_timeout_s: float | None = 30.0,
        jitter_min_ms: float = 40.0,
        jitter_max_ms: float = 200.0,
        max_queued_ms: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``port`` None picks a free even port in ``port_range``; 0 lets the OS choose (tests)."""
        self.host = host
        self.requested_port = port
        self.port_range = port_range
        self.input_rate = input_rate
        self.output_rate = output_rate
        self.inactivity_timeout_s = inactivity_timeout_s
        self.jitter_min_ms = jitter_min_ms
        self.jitter_max_ms = jitter_max_ms
        self.max_queued_ms = max_queued_ms
        self.clock = clock
        # Callbacks (plain functions, called on the event loop).
        self.on_dtmf: Callable[[str], None] | None = None
        self.on_inactivity: Callable[[], None] | None = None

        self.media: NegotiatedMedia | None = None
        self.codec: AudioCodec | None = None
        self.receiver = RtpReceiver(payload_types=set())
        self.sender = RtpSender(0)
        self.jitter = JitterBuffer(8000, min_delay_ms=jitter_min_ms, max_delay_ms=jitter_max_ms)
        self._dtmf_decoder = DtmfDecoder()
        self._concealer = LossConcealer()
        self._transport: asyncio.DatagramTransport | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False

        # Receive path.
        self._decode_resampler: PcmResampler | None = None
        self._playout = PcmFifo()
        self._playing = False
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._rx_ssrc: int | None = None
        self._last_rx = clock()
        self._inactivity_fired = False

        # Send path.
        self._outgoing = PcmFifo()  # bot audio at output_rate, drained in real time
        self._drained = asyncio.Event()
        self._drained.set()
        self._encode_resampler: PcmResampler | None = None
        self._resampler_used = False
        self._codec_pcm = PcmFifo()  # codec-rate PCM awaiting a whole 20 ms frame
        self._encoded = bytearray()  # sample-based codecs: encoded bytes awaiting a packet
        self._opus_payloads: deque[bytes] = deque()
        self._talking = False
        self._first_packet = True
        self._dtmf_out: deque[tuple[bytes, bool, bool]] = deque()  # (payload, marker, new event)
        self._dtmf_timestamp = 0
        self._tick_ms = FRAME_MS
        self._pacer = Pacer(FRAME_MS / 1000, clock=clock)
        self._last_index = -1

        # Bridge (B2BUA transfer fallback).
        self._peer: RtpEndpoint | None = None
        self._peer_forward = False  # same codec: relay payloads instead of decoding/re-encoding
        self._relay_ts_offset: dict[int, int] = {}
        self._bridge_resampler: PcmResampler | None = None

    @classmethod
    def from_settings(
        cls, sip: SipSettings, *, input_rate: int = 16000, output_rate: int = 16000, port: int | None = None
    ) -> RtpEndpoint:
        return cls(
            host=sip.bind_host,
            port=port,
            port_range=(sip.rtp_port_min, sip.rtp_port_max),
            input_rate=input_rate,
            output_rate=output_rate,
            inactivity_timeout_s=sip.rtp_inactivity_timeout_s,
        )

    # ----------------------------------------------------------------------------------------- lifecycle

    @property
    def local_port(self) -> int:
        if self._transport is None:
            raise RuntimeError("RtpEndpoint.open() has not been called")
        return int(self._transport.get_extra_info("sockname")[1])

    async def open(self) -> int:
        """Bind the UDP socket and start the paced media loop; returns the local port for the SDP."""
        loop = asyncio.get_running_loop()
        for port in self._candidate_ports():
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), local_addr=(self.host, port)
                )
            except OSError:
                continue
            self._transport = transport
            break
        else:
            raise OSError(f"no free RTP port in {self.port_range[0]}-{self.port_range[1]} on {self.host}")
        self._last_rx = self.clock()
        self._pacer.restart()
        self._loop_task = asyncio.create_task(self._run(), name=f"rtp-{self.local_port}")
        return self.local_port

    def _candidate_ports(self) -> list[int]:
        if self.requested_port is not None:
            return [self.requested_port]
        low, high = self.port_range
        ports = list(range(low + (low % 2), high + 1, 2))
        random.shuffle(ports)
        return ports[:200]

    def configure(self, media: NegotiatedMedia) -> None:
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
            self._decode_resampler = PcmResampler(self.codec.audio_rate, self.input_rate)
            self._encode_resampler = PcmResampler(self.output_rate, self.codec.audio_rate)
            self._codec_pcm.clear()
            self._encoded.clear()
            self._opus_payloads.clear()
        accepted = {media.codec.payload_type, COMFORT_NOISE_PT}
        if media.dtmf_payload_type is not None:
            accepted.add(media.dtmf_payload_type)
        self.receiver.payload_types = accepted
        if previous is not None and (previous.remote_host, previous.remote_port) != (
            media.remote_host,
            media.remote_port,
        ):
            self.receiver.relatch()
        tick_ms = math.gcd(FRAME_MS, media.ptime_ms) if media.ptime_ms % 10 == 0 else FRAME_MS
        if tick_ms != self._tick_ms or previous is None:
            self._tick_ms = tick_ms
            self._pacer = Pacer(tick_ms / 1000, clock=self.clock)
            self._last_index = -1
        self._last_rx = self.clock()
        self._inactivity_fired = False

    def set_pipeline_rates(self, *, input_rate: int | None = None, output_rate: int | None = None) -> None:
        """Change the PCM rates on the pipeline side (the pipecat transport calls this from its setup)."""
        if input_rate is not None and input_rate != self.input_rate:
            self.input_rate = input_rate
            self._playout.clear()
            if self.codec is not None:
                self._decode_resampler = PcmResampler(self.codec.audio_rate, input_rate)
        if output_rate is not None and output_rate != self.output_rate:
            self.output_rate = output_rate
            self._outgoing.clear()
            if self.codec is not None:
                self._encode_resampler = PcmResampler(output_rate, self.codec.audio_rate)

    async def close(self) -> None:
        """Stop the media loop and release the port (idempotent)."""
        self._closed = True
        self.unbridge()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        # The codec's libav encoder/decoder run filter graphs with a thread pool each; drop them now, because the
        # endpoint itself sits in reference cycles that only the garbage collector frees, calls later.
        self.codec = None
        self._drained.set()

    # ------------------------------------------------------------------------------------- public media

    async def read_audio(self) -> bytes:
        """The next 20 ms of the far end's audio (s16 mono at ``input_rate``), in real time."""
        return await self._incoming.get()

    async def send_audio(self, pcm: bytes) -> None:
        """Queue bot audio (s16 mono at ``output_rate``); waits while more than ``max_queued_ms`` is queued.

        The wait is the backpressure that keeps most of the bot's speech upstream, where an interruption
        can still discard it, instead of in a send buffer.
        """
        if self._closed or self._peer is not None:
            return  # while bridged the caller hears staff, not the bot
        self._outgoing.push(pcm)
        if self.queued_ms > self.max_queued_ms:
            self._drained.clear()
            await self._drained.wait()

    @property
    def queued_ms(self) -> float:
        return len(self._outgoing) * 1000.0 / (self.output_rate * SAMPLE_WIDTH)

    def flush(self) -> None:
        """Drop all queued bot audio now (barge-in): the next packet out is silence."""
        self._outgoing.clear()
        self._codec_pcm.clear()
        self._encoded.clear()
        self._opus_payloads.clear()
        if self._encode_resampler is not None:
            self._encode_resampler.reset()
        self._drained.set()

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Queue RFC 4733 key presses; raises ValueError for a bad digit or when none was negotiated."""
        if self.media is None or self.media.dtmf_payload_type is None:
            raise ValueError("the peer did not negotiate telephone-event; cannot send DTMF")
        clock_rate = self.media.dtmf_clock_rate or self.media.codec.clock_rate
        for digit in digits:
            packets = encode_digit(digit, clock_rate=clock_rate, duration_ms=duration_ms, packet_ms=FRAME_MS)
            for index, (payload, marker) in enumerate(packets):
                self._dtmf_out.append((payload, marker, index == 0))
            # A short pause between digits (two silent frames) so that repeated digits stay distinct.
            self._dtmf_out.extend([(b"", False, False)] * 2)

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
        }

    # ------------------------------------------------------------------------------------------ bridge

    def bridge(self, other: RtpEndpoint) -> None:
        """Relay media between this leg and ``other`` (both ways) until :meth:`unbridge`.

        Same codec on both legs: payloads are forwarded with the outgoing leg's SSRC/seq/timestamps. Different
        codecs: each leg's decoded audio is re-encoded by the other leg's paced sender. Either way this leg's
        decoded audio stays readable via :meth:`read_audio` (the transcript keeps going).
        """
        if other is self:
            raise ValueError("cannot bridge an endpoint to itself")
        self.unbridge()
        other.unbridge()
        same = self.media is not None and other.media is not None and self.media.codec == other.media.codec
        for leg, peer in ((self, other), (other, self)):
            leg.flush()
            leg._peer = peer
            leg._peer_forward = same
            leg._relay_ts_offset.clear()
            leg._bridge_resampler = (
                PcmResampler(leg.input_rate, peer.codec.audio_rate) if peer.codec else None
            )

    def unbridge(self) -> None:
        peer = self._peer
        if peer is None:
            return
        for leg in (self, peer):
            leg._peer = None
            leg._peer_forward = False
            leg._bridge_resampler = None
            leg.flush()

    @property
    def bridged_to(self) -> RtpEndpoint | None:
        return self._peer

    # ------------------------------------------------------------------------------------------ receive

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        media = self.media
        if media is None or self._closed:
            return
        packet = self.receiver.receive(data, addr)
        if packet is None:
            return
        now = self.clock()
        self._last_rx = now
        if packet.ssrc != self._rx_ssrc:
            if (
                self._rx_ssrc is not None
            ):  # the far end restarted its stream (or a new source after re-INVITE)
                self.jitter.reset()
            self._rx_ssrc = packet.ssrc
        if packet.payload_type == media.dtmf_payload_type:
            digit = self._dtmf_decoder.feed(packet.timestamp, packet.payload)
            if digit is not None and self.on_dtmf is not None:
                self.on_dtmf(digit)
            self.jitter.put(packet.sequence_number, packet.timestamp, None, now)
        elif packet.payload_type == COMFORT_NOISE_PT:
            self.jitter.put(packet.sequence_number, packet.timestamp, b"", now)
        else:
            self.jitter.put(packet.sequence_number, packet.timestamp, packet.payload, now)
        if self._peer is not None and self._peer_forward:
            self._peer._relay(packet)

    def _relay(self, packet: RtpPacket) -> None:
        """Send a packet received on the bridged peer out of this leg, renumbered as our own stream."""
        media = self.media
        if media is None or not media.sends or self._transport is None:
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
        data = self.sender.build(
            packet.payload, marker=bool(packet.marker), payload_type=payload_type, timestamp=timestamp
        )
        self._transport.sendto(data, self._destination())

    def _playout_frame(self) -> None:
        """Produce one 20 ms frame of far-end audio from the jitter buffer (concealing gaps)."""
        codec, resampler = self.codec, self._decode_resampler
        if codec is None or resampler is None:
            return
        need = self.input_rate * FRAME_MS // 1000 * SAMPLE_WIDTH
        packet_bytes = round(self.input_rate * self.jitter.packet_ms / 1000) * SAMPLE_WIDTH
        while len(self._playout) < need:
            item = self.jitter.pop()
            if item is None:
                break
            self._playing = True
            if item is Playout.LOST:
                self._playout.push(self._concealer.conceal(packet_bytes))
            elif isinstance(item, BufferedPacket) and item.payload:
                try:
                    pcm = resampler.process(codec.decode(item.payload, item.timestamp))
                except Exception as exc:  # a corrupt payload must not end the call
                    log.debug("undecodable %s payload: %s", codec.name, exc)
                    pcm = self._concealer.conceal(packet_bytes)
                else:
                    self._concealer.good(pcm)
                self._playout.push(pcm)
            else:
                self._playout.push(bytes(packet_bytes))
        if len(self._playout) < need:
            if not self._playing:
                return
            self._playout.push(self._concealer.conceal(need - len(self._playout)))
        frame = self._playout.pop(need)
        assert frame is not None
        if self._incoming.qsize() >= _MAX_INPUT_FRAMES:
            self._incoming.get_nowait()
        self._incoming.put_nowait(frame)
        peer = self._peer
        if peer is not None and not self._peer_forward and self._bridge_resampler is not None:
            peer._outgoing_from_bridge(self._bridge_resampler.process(frame))

    def _outgoing_from_bridge(self, codec_pcm: bytes) -> None:
        self._codec_pcm.push(codec_pcm)
        # Keep at most ~100 ms: a bridge must not build up delay when the two legs' clocks differ.
        if self.codec is not None and len(self._codec_pcm) > 5 * self.codec.frame_bytes:
            self._codec_pcm.pop(len(self._codec_pcm) - 5 * self.codec.frame_bytes)

    # --------------------------------------------------------------------------------------------- send

    def _pull_frame(self) -> bool:
        """Move 20 ms of bot audio (or silence) from the queue into the codec-rate PCM buffer.

        Returns whether it was real audio. The queue drains in real time even when nothing is sent.
        """
        size = self.output_rate * FRAME_MS // 1000 * SAMPLE_WIDTH
        chunk = self._outgoing.pop(size)
        talking = chunk is not None
        if chunk is None:
            rest = self._outgoing.take_all()
            talking = bool(rest)
            chunk = rest + bytes(size - len(rest))
        if self.queued_ms <= self.max_queued_ms:
            self._drained.set()
        if self._encode_resampler is not None and self.codec is not None and self._peer is None:
            if talking:
                self._codec_pcm.push(self._encode_resampler.process(chunk))
                self._resampler_used = True
            else:
                # Exact digital silence between utterances (the resampler would add +-1 LSB noise), and a
                # fresh resampler for the next utterance.
                self._codec_pcm.push(bytes(self.codec.frame_bytes))
                if self._resampler_used:
                    self._encode_resampler.reset()
                    self._resampler_used = False
        return talking

    def _encode_available(self) -> None:
        codec = self.codec
        assert codec is not None
        while True:
            frame = self._codec_pcm.pop(codec.frame_bytes)
            if frame is None:
                return
            payload = codec.encode_frame(frame)
            if codec.profile.sample_based:
                self._encoded.extend(payload)
            elif payload:
                self._opus_payloads.append(payload)

    def _send_packet_time(self, ptime_ms: int) -> None:
        """Send ``ptime_ms`` of audio (one packet; Opus: one packet per 20 ms)."""
        codec, media = self.codec, self.media
        if codec is None or media is None:
            self._pull_frame()
            return
        frames = max(1, ptime_ms // FRAME_MS)
        if self._peer is not None and self._peer_forward:
            # The peer's packets are relayed as they arrive; only keep our media clock running.
            self.sender.advance(codec.clock_rate * ptime_ms // 1000)
            return
        if self._dtmf_out and media.dtmf_payload_type is not None:
            self._send_dtmf_step(ptime_ms)
            return
        talking = False
        if codec.profile.sample_based:
            need = codec.clock_rate * ptime_ms // 1000
            while len(self._encoded) < need:
                before = len(self._encoded)
                talking = self._pull_frame() or talking
                self._encode_available()
                if len(self._encoded) == before and self._peer is not None:
                    self._encoded.extend(codec.encode_frame(bytes(codec.frame_bytes)))
            payloads = [bytes(self._encoded[:need])]
            del self._encoded[:need]
            ticks = [need]
        else:
            payloads = []
            for _ in range(frames):
                while not self._opus_payloads:
                    before = len(self._codec_pcm)
                    talking = self._pull_frame() or talking
                    if len(self._codec_pcm) == before and self._peer is not None:
                        self._codec_pcm.push(bytes(codec.frame_bytes))
                    self._encode_available()
                payloads.append(self._opus_payloads.popleft())
            ticks = [codec.rtp_ticks(codec.frame_samples)] * len(payloads)
        marker = self._first_packet or (talking and not self._talking)
        self._talking = talking
        for payload, advance in zip(payloads, ticks, strict=True):
            if media.sends:
                self._transmit(self.sender.build(payload, marker=marker))
                marker = False
            self.sender.advance(advance)

    def _send_dtmf_step(self, ptime_ms: int) -> None:
        media = self.media
        assert media is not None and media.dtmf_payload_type is not None
        while self._dtmf_out:
            payload, marker, new_event = self._dtmf_out.popleft()
            if new_event:
                self._dtmf_timestamp = self.sender.timestamp
            if payload:
                data = self.sender.build(
                    payload,
                    marker=marker,
                    payload_type=media.dtmf_payload_type,
                    timestamp=self._dtmf_timestamp,
                )
                self._transmit(data)
            is_end = bool(payload) and payload[1] & 0x80
            # The three end packets go out back to back; everything else one per packet time.
            if not (is_end and self._dtmf_out and self._dtmf_out[0][0] == payload):
                break
        # Bot audio waits (it is not dropped) while a key press goes out; the media clock runs on.
        self.sender.advance(media.codec.clock_rate * ptime_ms // 1000)

    def _transmit(self, data: bytes) -> None:
        media = self.media
        if self._transport is None or media is None or not media.sends:
            return
        self._first_packet = False
        self._transport.sendto(data, self._destination())

    def _destination(self) -> Address:
        assert self.media is not None
        return self.receiver.latched or (self.media.remote_host, self.media.remote_port)

    # --------------------------------------------------------------------------------------------- loop

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._pacer.delay())
                for index in self._pacer.due():
                    self._tick(index)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("RTP media loop failed")
            raise

    def _tick(self, index: int) -> None:
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
        self._check_inactivity()

    def _check_inactivity(self) -> None:
        media = self.media
        if media is None or self.inactivity_timeout_s is None or self._inactivity_fired:
            return
        if media.direction == "inactive" or media.remote_port == 0:
            return
        if self.clock() - self._last_rx > self.inactivity_timeout_s:
            self._inactivity_fired = True
            log.info("no RTP for %.0f s on port %s", self.inactivity_timeout_s, self.local_port)
            if self.on_inactivity is not None:
                self.on_inactivity()
