"""A member of staff takes a waiting phone caller in the browser (issue 10, way 2; decision 0850).

The console page sends a WebRTC offer (microphone) for a caller that *this* process holds in the bot's own queue
(:mod:`voicebot.telephony.queue`); the answer comes from an aiortc peer connection, the same stack as the
``/call`` page. The entry is ``offered`` to that member of staff and the caller's :class:`QueueWait` waits (at most
``queue.browser_connect_timeout_s``) for ICE and DTLS to connect. Then, as in the phone bridge, the bot steps out:
its pipeline (announcements, hold audio) is cancelled and the audio is carried by this leg:

- the caller's decoded PCM (:meth:`RtpEndpoint.read_audio`, 20 ms at the pipeline rate) is the browser's track
  (:class:`LineToBrowser`, aiortc encodes it to Opus);
- the browser's decoded frames (48 kHz, usually stereo) are mixed to mono and resampled to the endpoint's output
  rate (:class:`BrowserToLine`) and sent to the caller (:meth:`RtpEndpoint.send_audio` encodes them to the call's
  codec).

Either side ends both: the caller's BYE ends the call (``SipCallService.finish`` closes this leg, the page sees
``ended``); the staff's "Auflegen", a closed or failed peer connection or no audio from the browser for
``sip.rtp_inactivity_timeout_s`` hangs up the caller. Not connected in time → the entry goes back to waiting and the
caller keeps their place (:meth:`QueueWait._in_browser`).

Bounds: one leg per member of staff (:class:`BrowserLegs`), a leg exists only for a call of this process that
already holds a line, the offer SDP is checked like the ``/call`` page's (:mod:`voicebot.web.offer_sdp`), and every
wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    import av
    from aiortc import MediaStreamTrack

    from voicebot.telephony.sip_calls import SipCall, SipCallService

FRAME_S = 0.02
CONNECTING = "connecting"
CONNECTED = "connected"
ENDED = "ended"
# What the console page shows when the leg ended, by who ended it.
ENDED_TEXTS = {
    "caller": "Die anrufende Person hat aufgelegt. Bitte tragen Sie den Abschluss ein.",
    "staff": "Sie haben aufgelegt. Bitte tragen Sie den Abschluss ein.",
    "browser": "Die Verbindung zum Browser ist abgebrochen; der Anruf wurde beendet.",
    "browser-media-timeout": "Vom Mikrofon kam kein Ton mehr; der Anruf wurde beendet.",
    "not-connected": "Die Verbindung kam nicht zustande. Der Anruf wartet wieder in der Warteschlange.",
    "staff-before-connected": "Abgebrochen. Der Anruf wartet wieder in der Warteschlange.",
}


class BrowserToLine:
    """Decoded browser audio (any rate and layout aiortc delivers) → s16 mono PCM at the line's ``rate``."""

    def __init__(self, rate: int) -> None:
        import av

        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def convert(self, frame: av.AudioFrame) -> bytes:
        out = bytearray()
        for resampled in self._resampler.resample(frame):
            out += bytes(resampled.planes[0])[: resampled.samples * 2]
        return bytes(out)


def line_frame(pcm: bytes, rate: int, pts: int) -> av.AudioFrame:
    """s16 mono PCM from the caller's line as an audio frame for aiortc's encoder (timestamps in samples)."""
    import av

    samples = len(pcm) // 2
    frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
    frame.planes[0].update(pcm[: samples * 2])
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, rate)
    return frame


def _line_to_browser_class() -> Any:  # a MediaStreamTrack subclass, built when aiortc is imported
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class LineToBrowser(MediaStreamTrack):
        """The browser's inbound audio: the caller's voice once bridged, silence before (paced at 20 ms)."""

        kind = "audio"

        def __init__(self, rate: int) -> None:
            super().__init__()
            self.rate = rate
            self.source: Any = None  # the caller's RtpEndpoint once bridged
            self.frames = 0  # caller frames passed on (for the record)
            self._pts = 0
            self._started: float | None = None

        async def recv(self) -> av.AudioFrame:
            if self.readyState != "live":
                raise MediaStreamError
            samples = int(self.rate * FRAME_S)
            pcm: bytes | None = None
            if self.source is not None:
                with contextlib.suppress(TimeoutError):
                    pcm = await asyncio.wait_for(self.source.read_audio(), 3 * FRAME_S)
            if pcm is None:
                # Not bridged yet, or the caller's line is quiet: silence in real time.
                now = time.monotonic()
                if self._started is None:
                    self._started = now - self._pts / self.rate
                wait = self._started + self._pts / self.rate - now
                if wait > 0:
                    await asyncio.sleep(wait)
                pcm = bytes(samples * 2)
            else:
                self.frames += 1
                self._started = None  # the line paces while it delivers
            frame = line_frame(pcm, self.rate, self._pts)
            self._pts += len(pcm) // 2
            return frame

    return LineToBrowser


class BrowserLeg:
    """One member of staff's browser leg to one waiting phone caller (see the module docstring)."""

    def __init__(
        self,
        service: SipCallService,
        call: SipCall,
        *,
        entry_id: int,
        staff_user_id: int,
        staff_name: str,
        connect_timeout_s: float,
        media_timeout_s: float,
    ) -> None:
        self.service = service
        self.call = call
        self.entry_id = entry_id
        self.staff_user_id = staff_user_id
        self.staff_name = staff_name
        self.connect_timeout_s = connect_timeout_s
        self.media_timeout_s = media_timeout_s
        self.state = CONNECTING
        self.ended_by = ""
        self.keeps_call = False  # True once bridged: this leg, not the pipeline, decides when the call ends
        self.frames_from_browser = 0
        self._pc: Any = None
        self._to_browser: Any = None
        self._from_browser: Any = None
        self._changed = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.state != ENDED

    @property
    def ended_text(self) -> str:
        if self.ended_by == "staff" and not self.keeps_call:
            return ENDED_TEXTS["staff-before-connected"]
        return ENDED_TEXTS.get(self.ended_by, "Der Anruf ist beendet.")

    async def answer(self, offer_sdp: str) -> dict[str, str]:
        """The SDP answer to the page's offer (ValueError & co. from aiortc for an offer it cannot use)."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        rtp = self.call.rtp
        rate = rtp.input_rate if rtp is not None else 16000
        # No ICE servers, as for the /call page: aiortc's default would ask a public STUN server (Google's) from
        # a server that is usually offline; staff browsers reach the voicebot's own address.
        self._pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._to_browser = _line_to_browser_class()(rate)

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self._from_browser is None:
                self._from_browser = track

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            self._changed.set()
            if pc.connectionState in ("failed", "closed") and self.keeps_call and self.active:
                asyncio.get_running_loop().create_task(self.hang_up("browser"))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(self._to_browser)
        await pc.setLocalDescription(await pc.createAnswer())
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def wait_connected(self) -> bool:
        """True once ICE and DTLS are connected and the browser's audio track is known; False when the
        connection failed, the leg was closed or ``connect_timeout_s`` passed."""
        pc = self._pc
        if pc is None:
            return False
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                while self.active and pc.connectionState not in ("failed", "closed"):
                    if pc.connectionState == "connected" and self._from_browser is not None:
                        return True
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.5)
        except TimeoutError:
            pass
        return False

    async def bridge(self) -> None:
        """The bot steps out (its pipeline ends, hold audio stops) and audio runs caller ↔ browser."""
        call = self.call
        self.keeps_call = True
        self.state = CONNECTED
        if call.handle is not None:
            call.handle.transcript.end("transferred:browser")
            with contextlib.suppress(Exception):
                await call.handle.cancel()
        if call.rtp is not None:
            call.rtp.flush()  # what the bot still had queued (hold audio) is not played to staff's caller
            self._to_browser.source = call.rtp
        self._pump = asyncio.create_task(self._browser_to_caller(), name=f"browser-leg-{self.entry_id}")

    async def _browser_to_caller(self) -> None:
        rtp, track = self.call.rtp, self._from_browser
        if rtp is None or track is None:
            return
        from aiortc.mediastreams import MediaStreamError

        convert = BrowserToLine(rtp.output_rate)
        ended_by = "browser"
        try:
            while self.active:
                try:
                    frame = await asyncio.wait_for(track.recv(), self.media_timeout_s)
                except TimeoutError:
                    ended_by = "browser-media-timeout"
                    break
                except MediaStreamError:
                    break
                pcm = convert.convert(frame)
                if pcm:
                    self.frames_from_browser += 1
                    await rtp.send_audio(pcm)
        except asyncio.CancelledError:
            return
        except Exception:
            logger.exception(f"{self.call.call_id}: browser audio to the caller failed")
        if self.active:
            await self.hang_up(ended_by)

    def stats(self) -> dict[str, int]:
        """Audio frames carried each way (proof that both directions flowed)."""
        to_browser = self._to_browser.frames if self._to_browser is not None else 0
        return {"frames_to_browser": to_browser, "frames_from_browser": self.frames_from_browser}

    async def hang_up(self, by: str) -> None:
        """Staff (or their browser) ends the call: once bridged the caller gets a BYE; before, only this leg ends
        and the caller's wait puts them back in the queue (:meth:`QueueWait._in_browser`)."""
        if not self.active:
            return
        self.ended_by = by
        if self.keeps_call:
            await self.service.hangup(self.call, f"{by}-hung-up" if by == "staff" else by)
        await self.close(by)

    async def close(self, by: str = "caller") -> None:
        """Idempotent: the peer connection is closed and the page learns that the call ended."""
        if self.state == ENDED:
            return
        was_bridged = self.keeps_call
        self.state = ENDED
        self.ended_by = self.ended_by or by
        self._changed.set()
        if was_bridged:
            self._note("browser_leg_ended", by=self.ended_by, **self.stats())
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self._to_browser is not None:
            self._to_browser.source = None
            self._to_browser.stop()
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await self._pc.close()
        self._changed.set()  # a wait for the connection ends now

    def _note(self, kind: str, **data: Any) -> None:
        logger.info(f"{self.call.call_id}: {kind} {data}")
        if self.call.handle is not None:
            with contextlib.suppress(Exception):
                self.call.handle.transcript.add_event(kind, **data)


class BrowserLegs:
    """The browser legs of this process, at most one live leg per member of staff; the last one of each member is
    kept after it ended so that their page can read how it ended (bounded by the number of accounts)."""

    def __init__(self) -> None:
        self._by_staff: dict[int, BrowserLeg] = {}

    def of(self, staff_user_id: int) -> BrowserLeg | None:
        return self._by_staff.get(staff_user_id)

    def busy(self, staff_user_id: int) -> bool:
        leg = self._by_staff.get(staff_user_id)
        return leg is not None and leg.active

    def add(self, leg: BrowserLeg) -> None:
        if self.busy(leg.staff_user_id):
            raise ValueError(f"staff user {leg.staff_user_id} already has a live browser leg")
        self._by_staff[leg.staff_user_id] = leg

    def live(self) -> list[BrowserLeg]:
        return [leg for leg in self._by_staff.values() if leg.active]
