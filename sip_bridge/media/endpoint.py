"""One call leg's RTP media over asyncio UDP: the thin I/O shell around :class:`~.session.MediaSession`.

The session holds every media decision (latching, jitter buffer, codecs, DTMF, pacing schedule, bridge); this
shell owns what needs the event loop: the UDP socket, one task that wakes at the session's next pacing deadline,
the wait of :meth:`RtpEndpoint.read_audio` for the next frame, the backpressure wait of
:meth:`RtpEndpoint.send_audio`, and the callbacks for key presses and a silent line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from .codecs import AudioCodec
from .jitter import JitterBuffer
from .rtp import MediaPeerPolicy, RtpReceiver, RtpSender
from .sdp import NegotiatedMedia
from .session import DtmfReceived, ForbiddenMediaSource, MediaSession, MediaTimeout, address_text

log = logging.getLogger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.endpoint.receive_datagram(data, addr)

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
        policy: MediaPeerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``port`` None picks a free even port in ``port_range``; 0 lets the OS choose (tests). ``policy``:
        whose media counts and whether we may send before hearing the far end (default: strict, we wait)."""
        self.host = host
        self.requested_port = port
        self.port_range = port_range
        self.clock = clock
        self.session = MediaSession(
            input_rate=input_rate,
            output_rate=output_rate,
            inactivity_timeout_s=inactivity_timeout_s,
            jitter_min_ms=jitter_min_ms,
            jitter_max_ms=jitter_max_ms,
            max_queued_ms=max_queued_ms,
            policy=policy,
        )
        # Callbacks (plain functions, called on the event loop).
        self.on_dtmf: Callable[[str], None] | None = None
        self.on_inactivity: Callable[[], None] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._bridged: RtpEndpoint | None = None
        self._audio_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()

    # ------------------------------------------------------------------------- the session, read through

    @property
    def media(self) -> NegotiatedMedia | None:
        return self.session.media

    @property
    def codec(self) -> AudioCodec | None:
        return self.session.codec

    @property
    def receiver(self) -> RtpReceiver:
        return self.session.receiver

    @property
    def sender(self) -> RtpSender:
        return self.session.sender

    @property
    def jitter(self) -> JitterBuffer:
        return self.session.jitter

    @property
    def policy(self) -> MediaPeerPolicy:
        return self.session.policy

    @property
    def input_rate(self) -> int:
        return self.session.input_rate

    @property
    def output_rate(self) -> int:
        return self.session.output_rate

    @property
    def inactivity_timeout_s(self) -> float | None:
        return self.session.inactivity_timeout_s

    @property
    def max_queued_ms(self) -> float:
        return self.session.max_queued_ms

    @property
    def queued_ms(self) -> float:
        return self.session.queued_ms

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
        self.session.start(self.clock())
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
        self.session.configure(media, self.clock())

    def set_pipeline_rates(self, *, input_rate: int | None = None, output_rate: int | None = None) -> None:
        """Change the PCM rates on the pipeline side (the pipecat transport calls this from its setup)."""
        self.session.set_pipeline_rates(input_rate=input_rate, output_rate=output_rate)

    async def close(self) -> None:
        """Stop the media loop and release the port (idempotent)."""
        self.unbridge()
        self.session.close()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._drained.set()

    # ------------------------------------------------------------------------------------- public media

    async def read_audio(self) -> bytes:
        """The next 20 ms of the far end's audio (s16 mono at ``input_rate``), in real time."""
        while (frame := self.session.read_audio()) is None:
            self._audio_ready.clear()
            await self._audio_ready.wait()
        return frame

    def read_audio_nowait(self) -> bytes | None:
        """The next 20 ms frame if one is waiting, else None (for pollers)."""
        return self.session.read_audio()

    async def send_audio(self, pcm: bytes) -> None:
        """Queue bot audio (s16 mono at ``output_rate``); waits while more than ``max_queued_ms`` is queued.

        The wait is the backpressure that keeps most of the bot's speech upstream, where an interruption
        can still discard it, instead of in a send buffer.
        """
        if not self.session.send_audio(pcm):
            return  # closed, or bridged: the caller hears staff, not the bot
        if self.session.backlogged:
            self._drained.clear()
            await self._drained.wait()

    def flush(self) -> None:
        """Drop all queued bot audio now (barge-in): the next packet out is silence."""
        self.session.flush()
        self._drained.set()

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Queue RFC 4733 key presses; raises ValueError for a bad digit or when none was negotiated."""
        self.session.send_dtmf(digits, duration_ms)

    def stats_summary(self) -> dict[str, object]:
        """Numbers for the call record: codec, packets each way, loss, late/shed packets, jitter."""
        return self.session.stats_summary()

    # ------------------------------------------------------------------------------------------ bridge

    def bridge(self, other: RtpEndpoint) -> None:
        """Relay media between this leg and ``other`` (both ways) until :meth:`unbridge`, see
        :meth:`MediaSession.bridge`; this leg's decoded audio stays readable via :meth:`read_audio`."""
        if other is self:
            raise ValueError("cannot bridge an endpoint to itself")
        self.unbridge()
        other.unbridge()
        self.session.bridge(other.session)
        self._bridged, other._bridged = other, self
        for leg in (self, other):
            leg._drained.set()  # the bot's queued speech was dropped: its writer need not wait

    def unbridge(self) -> None:
        peer = self._bridged
        if peer is None:
            return
        self.session.unbridge()
        self._bridged = peer._bridged = None
        for leg in (self, peer):
            leg._drained.set()

    @property
    def bridged_to(self) -> RtpEndpoint | None:
        return self._bridged

    # ---------------------------------------------------------------------------------------------- I/O

    def receive_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram from the socket. Never raises for bad input."""
        self.session.receive_datagram(data, addr, self.clock())
        self._dispatch()
        if self._bridged is not None:
            self._bridged._dispatch()  # a relayed packet leaves through the other leg's socket at once

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(max(0.0, self.session.next_deadline() - self.clock()))
                self.session.advance(self.clock())
                self._dispatch()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("RTP media loop failed")
            raise

    def _dispatch(self) -> None:
        """Carry out what the session produced: send its packets, wake readers and writers, run callbacks."""
        session = self.session
        for data, destination in session.datagrams_to_send():
            if self._transport is not None:
                self._transport.sendto(data, destination)
        if session.audio_waiting:
            self._audio_ready.set()
        if not session.backlogged:
            self._drained.set()
        for event in session.next_events():
            match event:
                case DtmfReceived(digit=digit):
                    if self.on_dtmf is not None:
                        self.on_dtmf(digit)
                case ForbiddenMediaSource(source=source):
                    log.warning(
                        "RTP from %s ignored on port %s: outside the allowed networks%s",
                        address_text(source),
                        self._port_for_log(),
                        self._allow_list_hint(),
                    )
                case MediaTimeout(silent_s=silent_s):
                    log.info("no RTP for %.0f s on port %s", silent_s, self._port_for_log())
                    if session.forbidden_source is not None:
                        log.warning(
                            "no RTP heard for %.0f s, but %d packets from outside the allowed networks were "
                            "dropped (the first from %s)%s",
                            silent_s,
                            session.receiver.stats.ignored_forbidden_source,
                            address_text(session.forbidden_source),
                            self._allow_list_hint(),
                        )
                    if self.on_inactivity is not None:
                        self.on_inactivity()

    def _allow_list_hint(self) -> str:
        hint = self.session.policy.allow_list_hint
        return f"; {hint}" if hint else ""

    def _port_for_log(self) -> int | None:
        return self.local_port if self._transport is not None else None
