"""Call glue: what happens to a phone call between the SIP user agent, the RTP media and the voice pipeline.

One :class:`SipCallService` per process owns the SIP endpoint (UDP+TCP, :mod:`sip_bridge.sip`) and reacts to the
user agent's events:

- ``IncomingCall`` → capacity check (503 + Retry-After when full) → SDP answer (488 when no common codec) → an
  RTP endpoint → the call pipeline over :class:`~sip_bridge.pipecat_transport.RtpCallTransport` → 200 OK.
- ``CallEnded`` (BYE/CANCEL from the caller) → the pipeline is cancelled and the RTP port freed.
- the pipeline ends by itself (goodbye, silence) → BYE from the bot. RTP inactivity → BYE as well.
- a :class:`~voicebot.pipeline.frames.HandoffRequestFrame` (the engine's hand-off, or the caller pressed the
  hand-off key) → :mod:`voicebot.telephony.transfer` (REFER, else B2BUA bridge).

Each call lives in one :class:`SipCall`; every exit path runs :meth:`SipCallService.finish` exactly once, which
frees the capacity lease and the RTP ports whatever happened first. The pipeline is reached only through the
typed :class:`~voicebot.calls.CallHandle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from loguru import logger

from sip_bridge.media import (
    LocalSdpSession,
    MediaPeerPolicy,
    NegotiatedMedia,
    RtpEndpoint,
    SdpError,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)
from sip_bridge.pipecat_transport import RtpCallTransport
from sip_bridge.sip import events as ev
from sip_bridge.sip.transport import SipEndpoint
from voicebot.calls import CallEvent, CallHandle, CallLease, CallRegistry, CallRunner
from voicebot.logs import call_context
from voicebot.pipeline.audio import PIPELINE_SAMPLE_RATE
from voicebot.pipeline.frames import HandoffRequestFrame
from voicebot.settings import Settings
from voicebot.telephony.config import media_peer_policy, user_agent_config
from voicebot.telephony.pbx_handoff import PbxHandoffs
from voicebot.telephony.transfer import Transfer, caller_number

if TYPE_CHECKING:
    from voicebot.telephony.browser_leg import BrowserLeg
    from voicebot.telephony.queue import QueueDesk, QueueWait

DRAIN_POLL_S = 0.1
DRAIN_MESSAGE_MAX_S = (
    20.0  # the restart notice is ~6 s of speech; a stuck pipeline must not hold the shutdown
)


@dataclass
class SipCall:
    """Everything one phone call holds, freed together in :meth:`SipCallService.finish`.

    The RTP endpoint hands the pipeline ``PIPELINE_SAMPLE_RATE`` audio and takes it back, whatever the codec."""

    call_id: str
    lease: CallLease
    from_uri: str = ""  # the caller's From URI as received (its number goes into a call-back request)
    rtp: RtpEndpoint | None = None  # the caller leg's media
    sdp_session: LocalSdpSession | None = None
    negotiated: NegotiatedMedia | None = None
    pending_offer: SessionDescription | None = None  # our offer in the 200 of a late-offer INVITE
    handle: CallHandle | None = None
    pipeline_task: asyncio.Task[None] | None = None
    transfer: Transfer | None = None  # the hand-off attempt (one per call), in progress or failed
    queue: QueueWait | None = None  # the wait in the bot's own queue (a group with mode "queue")
    browser: BrowserLeg | None = (
        None  # staff took the queued caller in the browser (telephony/browser_leg.py)
    )
    sip_up: bool = True  # the caller's dialog still exists (no BYE/CANCEL seen, none sent)
    finished: bool = False
    ended_reason: str = ""
    extra_endpoints: list[RtpEndpoint] = field(default_factory=list)


class SipCallService:
    """The phone door of ``voicebot serve``: SIP endpoint + per-call glue."""

    def __init__(
        self,
        settings: Settings,
        registry: CallRegistry,
        runner: CallRunner,
        *,
        pbx_handoffs: PbxHandoffs | None = None,
        queue: QueueDesk | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.runner = runner
        # The queue entries (and summary references) of hand-offs to the PBX's queue; None without a database.
        self.pbx_handoffs = pbx_handoffs
        self.queue = (
            queue  # the bot's own queue (voicebot/telephony/queue.py); None: queue groups act as "pbx"
        )
        self.calls: dict[str, SipCall] = {}
        self.outbound: dict[str, SipCall] = {}  # B2BUA staff leg call-id → the caller's call
        self._endpoint: SipEndpoint | None = None
        self._event_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Whose RTP a caller's leg hears and when it may speak (built here, so a bad network fails at start).
        self.media_policy: MediaPeerPolicy = media_peer_policy(settings.sip)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._endpoint.port) if self._endpoint is not None else self.settings.sip.port

    @property
    def listening(self) -> bool:
        """Every configured SIP listener is really serving (for the health check)."""
        return self._endpoint is not None and self._endpoint.listening

    @property
    def user_agent(self) -> SipEndpoint:
        """Call control (answer, reject, hangup, refer, invite, ...): the UA's methods, flushed to the wire."""
        if self._endpoint is None:
            raise RuntimeError("SIP service not started")
        return self._endpoint

    async def start(self) -> None:
        self._endpoint = await SipEndpoint.start(user_agent_config(self.settings.sip))
        self._event_task = asyncio.create_task(self._dispatch_events(), name="sip-events")
        logger.info(
            f"SIP listening on {self.settings.sip.bind_host}:{self.port} {self.settings.sip.transports}"
        )

    async def _dispatch_events(self) -> None:
        assert self._endpoint is not None
        while True:
            event = await self._endpoint.next_event()
            try:
                self._on_event(event)
            except Exception:
                logger.exception(f"SIP event {event} could not be handled")

    async def stop(self) -> None:
        """Hang up every call (BYE), wait briefly for the pipelines, close the sockets."""
        for call in list(self.calls.values()):
            await self.hangup(call, "shutdown")
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._event_task is not None:
            self._event_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._event_task
            self._event_task = None
        if self._endpoint is not None:
            await self._endpoint.close()
            self._endpoint = None

    async def drain(self, timeout_s: float, message: str) -> None:
        """Graceful shutdown (decision 0900): new calls get 503 + Retry-After (OPTIONS too); the calls in progress,
        phone or browser, go on for up to ``timeout_s``; then every phone call still up hears ``message`` and gets
        a BYE. Browser calls still up are ended when the HTTP side shuts down."""
        self.registry.draining = True
        if self._endpoint is not None:
            self._endpoint.ua.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        logger.info(f"draining: {self.registry.active} call(s) may go on for up to {timeout_s:.0f} s")
        while self.registry.active > 0 and loop.time() < deadline:
            await asyncio.sleep(min(DRAIN_POLL_S, max(0.0, deadline - loop.time())))
        running = [call for call in self.calls.values() if not call.finished]
        if running:
            logger.info(f"drain time over: ending {len(running)} call(s) with the restart notice")
            await asyncio.gather(*(self._end_for_restart(call, message) for call in running))

    async def _end_for_restart(self, call: SipCall, message: str) -> None:
        """Tell the caller the service restarts (unless staff has the call over a bridge), then BYE."""
        handle = call.handle
        bridged = call.transfer is not None and call.transfer.keeps_call
        talking = call.pipeline_task is not None and not call.pipeline_task.done()
        if handle is not None and call.sip_up and talking and not bridged and message:
            try:
                spoken = len(handle.transcript.turns)
                await handle.say("drain", message)
                await self._until_played(call, spoken, DRAIN_MESSAGE_MAX_S)
            except Exception:
                logger.exception(f"{call.call_id}: the restart notice could not be said")
        await self.hangup(call, "drain")

    @staticmethod
    async def _until_played(call: SipCall, after: int, timeout_s: float) -> None:
        """Wait (bounded) until a ``drain`` turn added after turn ``after`` was played, or the call ended."""
        assert call.handle is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not call.finished and loop.time() < deadline:
            turns = call.handle.transcript.turns[after:]
            if any(turn.kind == "drain" and (turn.played or turn.interrupted) for turn in turns):
                return
            await asyncio.sleep(DRAIN_POLL_S)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_failure)
        return task

    # --- events from the user agent ------------------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        # What this event's handling logs, and every task it starts (a call's set-up, its pipeline), names the call.
        with call_context(str(getattr(event, "call_id", "") or "")):
            self._handle_event(event)

    def _handle_event(self, event: ev.Event) -> None:
        match event:
            case ev.IncomingCall():
                self._spawn(self._incoming(event), f"sip-incoming-{event.call_id}")
            case ev.CallEnded(call_id=call_id) if call_id in self.outbound:
                transfer = self.outbound[call_id].transfer
                if transfer is not None:
                    transfer.on_event(event)
            case ev.CallEnded(call_id=call_id):
                call = self.calls.get(call_id)
                if call is not None:
                    call.sip_up = False
                    if call.transfer is not None:
                        call.transfer.on_event(event)
                    self._spawn(self.finish(call, f"caller:{event.reason}"), f"sip-end-{call_id}")
            case ev.CallConfirmed(call_id=call_id, sdp=sdp) if sdp:
                self._late_answer(call_id, sdp)
            case ev.ReInvite():
                self._reinvite(event)
            case (
                ev.ReferAccepted()
                | ev.TransferSucceeded()
                | ev.TransferFailed()
                | ev.OutboundCallProgress()
                | ev.OutboundCallAnswered()
                | ev.OutboundCallFailed()
            ):
                owner = self.outbound.get(event.call_id) or self.calls.get(event.call_id)
                if owner is not None and owner.transfer is not None:
                    owner.transfer.on_event(event)
            case ev.DtmfInfo(call_id=call_id, digit=digit):
                call = self.calls.get(call_id)
                if call is not None and call.rtp is not None and call.rtp.on_dtmf is not None:
                    call.rtp.on_dtmf(digit)  # SIP INFO digits take the same path as RFC 4733 ones
            case _:
                logger.debug(f"SIP event ignored: {event}")

    async def _incoming(self, event: ev.IncomingCall) -> None:
        ua = self.user_agent
        lease = self.registry.try_acquire("sip")
        if lease is None:
            logger.warning(f"{event.call_id}: all {self.registry.max_calls} lines busy → 503")
            ua.reject(event.call_id, 503, "Service Unavailable")
            return
        call = SipCall(event.call_id, lease, from_uri=event.from_uri)
        self.calls[event.call_id] = call
        try:
            call.rtp = await self.open_rtp(on_timeout=lambda: self._rtp_timed_out(call))
            call.sdp_session = LocalSdpSession(self.media_host())
            local_sdp = self._local_sdp(call, event)
            if local_sdp is None:  # no codec in common: the caller got 488
                call.sip_up = False
                await self.finish(call, "sdp")
                return
            transport = RtpCallTransport(call.rtp, name=f"rtp-{call.call_id[:8]}")
            call.handle = handle = await self.runner(
                transport, call.call_id, PIPELINE_SAMPLE_RATE, lambda event: self._pipeline_event(call, event)
            )
            handle.transcript.caller_number = caller_number(event.from_uri)  # offered for a call-back
            if self.settings.sip.ring_s > 0 and call.sip_up:
                ua.ringing(event.call_id)
                await asyncio.sleep(self.settings.sip.ring_s)
            if not call.sip_up or call.finished:  # CANCEL arrived while the pipeline was built (or it rang)
                handle.transcript.end("caller:cancel")
                await self.finish(call, "caller:cancel")
                await call.rtp.close()  # finish() may have run before the port was opened
                return
            ua.answer(event.call_id, local_sdp.serialize().encode())
            codec = (
                f"{call.negotiated.codec.name}/{call.negotiated.codec.clock_rate}"
                if call.negotiated
                else "late offer"
            )
            logger.info(f"{event.call_id}: answered {event.from_uri} ({codec})")
            call.pipeline_task = self._spawn(self._run_pipeline(call), f"pipeline-{call.call_id}")
        except Exception:
            logger.exception(f"{event.call_id}: call set-up failed")
            if call.sip_up:
                ua.reject(event.call_id, 500)
                call.sip_up = False
            await self.finish(call, "setup-error")

    def _local_sdp(self, call: SipCall, event: ev.IncomingCall) -> SessionDescription | None:
        """Our SDP for the 200: the answer to the caller's offer (media configured), or our own offer when the
        INVITE had none; None after rejecting an offer without a usable codec with 488."""
        assert call.rtp is not None and call.sdp_session is not None
        if not event.sdp.strip():
            # Late offer (INVITE without SDP): our 200 carries the offer, the caller answers in the ACK.
            call.pending_offer = build_offer(
                local_host=self.media_host(),
                local_port=call.rtp.local_port,
                codecs=self.settings.sip.codecs,
                session=call.sdp_session,
            )
            return call.pending_offer
        try:
            local_sdp, negotiated = answer_offer(
                SessionDescription.parse(event.sdp),
                local_host=self.media_host(),
                local_port=call.rtp.local_port,
                allowed_codecs=self.settings.sip.codecs,
                session=call.sdp_session,
            )
        except SdpError as error:
            logger.warning(f"{event.call_id}: 488 {error}")
            self.user_agent.reject(event.call_id, 488, reason="Not Acceptable Here")
            return None
        call.negotiated = negotiated
        call.rtp.configure(negotiated)
        return local_sdp

    async def _run_pipeline(self, call: SipCall) -> None:
        assert call.handle is not None
        try:
            await call.handle.run()
        finally:
            # Once bridged, the B2BUA owns the call: it ends it when a side hangs up.
            bridged = (call.transfer is not None and call.transfer.keeps_call) or (
                call.browser is not None and call.browser.keeps_call
            )
            if not bridged:
                await self.hangup(call, "pipeline-ended")

    # --- hand-off ------------------------------------------------------------------------------------------------

    async def _pipeline_event(self, call: SipCall, event: CallEvent) -> None:
        """A hand-off request (after the caller heard the hand-off sentence) starts a transfer."""
        if not isinstance(event, HandoffRequestFrame):
            return  # CallEndingFrame: the pipeline ends by itself right after; _run_pipeline sends the BYE
        if call.finished or call.transfer is not None or call.queue is not None or not call.sip_up:
            return
        if self.queue is not None and event.kind == "handoff":
            from voicebot.telephony.queue import QueueWait, queue_group

            group = queue_group(self.settings, event.group)
            if group is not None:
                call.queue = QueueWait(
                    self, call, self.queue, group, reason=event.reason, summary=event.summary
                )
                call.queue.task = self._spawn(call.queue.run(), f"queue-{call.call_id}")
                return
        call.transfer = Transfer(
            self,
            call,
            reason=event.reason,
            staff_uri=event.staff_uri or self.settings.sip.staff_uri,
            group=event.group,
        )
        call.transfer.task = self._spawn(call.transfer.run(), f"transfer-{call.call_id}")

    # --- ending -------------------------------------------------------------------------------------------------

    async def hangup(self, call: SipCall, reason: str) -> None:
        """End the call from our side: BYE if the dialog still exists, then free everything."""
        if call.sip_up:
            call.sip_up = False
            with contextlib.suppress(Exception):
                self.user_agent.hangup(call.call_id)
        await self.finish(call, reason)

    async def finish(self, call: SipCall, reason: str) -> None:
        if call.finished:
            return
        call.finished = True
        call.ended_reason = reason
        logger.info(f"{call.call_id}: call ended ({reason})")
        if call.transfer is not None:
            await call.transfer.close()
        if call.queue is not None:
            await call.queue.close()  # a caller still waiting for staff is gone: the entry is abandoned
        if call.browser is not None:
            await call.browser.close("caller")  # the staff page learns that the call ended
        if call.handle is not None:
            if call.rtp is not None:  # loss, jitter and the packets dropped as foreign, forbidden or oversize
                call.handle.transcript.add_event("rtp", **call.rtp.stats_summary())
            # Before the cancel (which the pipeline would record as a plain hang-up); a reason the pipeline set
            # itself (goodbye, silence) is kept.
            call.handle.transcript.end(reason)
        if call.handle is not None and call.pipeline_task is not None and not call.pipeline_task.done():
            with contextlib.suppress(Exception):
                await call.handle.cancel()
        for endpoint in [call.rtp, *call.extra_endpoints]:
            if endpoint is not None:
                with contextlib.suppress(Exception):
                    await endpoint.close()
        self.calls.pop(call.call_id, None)
        call.lease.release()

    def _rtp_timed_out(self, call: SipCall) -> None:
        if not call.finished:
            logger.warning(f"{call.call_id}: no RTP for {self.settings.sip.rtp_inactivity_timeout_s} s → BYE")
            self._spawn(self.hangup(call, "rtp-timeout"), f"rtp-timeout-{call.call_id}")

    # --- adapters to the media layer -------------------------------------------------------------------------------

    def media_host(self) -> str:
        """The address written into our SDP: ``public_host``, else the bind address (a wildcard is resolved)."""
        sip = self.settings.sip
        if sip.public_host:
            return sip.public_host
        if sip.bind_host in ("0.0.0.0", "::", ""):
            return _primary_address(ipv6=sip.bind_host == "::")
        return sip.bind_host

    async def open_rtp(self, *, on_timeout: Callable[[], None], originated: bool = False) -> RtpEndpoint:
        """An RTP endpoint for one leg. ``originated``: a leg we call out to the configured staff URI, where we
        may speak first (a staff phone may wait to hear us); a caller's leg waits for the caller's media."""
        sip = self.settings.sip
        policy = replace(self.media_policy, packets_before_receive=None) if originated else self.media_policy
        endpoint = RtpEndpoint(
            host=sip.bind_host,
            port_range=(sip.rtp_port_min, sip.rtp_port_max),
            input_rate=PIPELINE_SAMPLE_RATE,
            output_rate=PIPELINE_SAMPLE_RATE,
            inactivity_timeout_s=sip.rtp_inactivity_timeout_s,
            policy=policy,
        )
        endpoint.on_inactivity = on_timeout
        await endpoint.open()
        return endpoint

    def _late_answer(self, call_id: str, sdp: bytes) -> None:
        """The ACK's SDP answers the offer in our 200 (late offer): now the media can start."""
        call = self.calls.get(call_id)
        if call is None or call.rtp is None or call.pending_offer is None:
            return
        try:
            negotiated = accept_answer(call.pending_offer, SessionDescription.parse(sdp))
        except SdpError as error:
            logger.warning(f"{call_id}: unusable SDP answer in ACK ({error}) → BYE")
            self._spawn(self.hangup(call, "sdp"), f"sdp-{call_id}")
            return
        call.pending_offer = None
        call.negotiated = negotiated
        call.rtp.configure(negotiated)
        logger.info(
            f"{call_id}: late offer answered with {negotiated.codec.name}/{negotiated.codec.clock_rate}"
        )

    def _reinvite(self, event: ev.ReInvite) -> None:
        """Hold/unhold and session refresh: answer with our current media, following the new direction; offer it
        when the re-INVITE carries no SDP."""
        call = self.calls.get(event.call_id)
        if call is None or call.rtp is None or call.sdp_session is None or call.negotiated is None:
            self.user_agent.reject_reinvite(event.call_id, 481)
            return
        if not event.sdp.strip():
            # Offer-less re-INVITE (some PBXs refresh sessions so): our 200 must carry an offer. Offering only the
            # codec in use keeps the media as it is, whatever the peer answers in its ACK.
            offer = build_offer(
                local_host=self.media_host(),
                local_port=call.rtp.local_port,
                codecs=[call.negotiated.codec.name],
                session=call.sdp_session,
                ptime_ms=call.negotiated.ptime_ms,
                direction=call.negotiated.direction,
            )
            self.user_agent.answer_reinvite(event.call_id, offer.serialize().encode())
            return
        try:
            local_sdp, negotiated = answer_offer(
                SessionDescription.parse(event.sdp),
                local_host=self.media_host(),
                local_port=call.rtp.local_port,
                allowed_codecs=[call.negotiated.codec.name],
                session=call.sdp_session,
            )
        except SdpError:
            self.user_agent.reject_reinvite(event.call_id, 488)
            return
        call.negotiated = negotiated
        call.rtp.configure(negotiated)
        self.user_agent.answer_reinvite(event.call_id, local_sdp.serialize().encode())


@functools.cache
def _primary_address(*, ipv6: bool) -> str:
    """The host's address on its default route (a UDP connect sends nothing); loopback if there is none."""
    family, probe, fallback = (
        (socket.AF_INET6, "2001:db8::1", "::1") if ipv6 else (socket.AF_INET, "192.0.2.1", "127.0.0.1")
    )
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            address = str(sock.getsockname()[0])
    except OSError:
        return fallback
    logger.warning(
        f"sip.bind_host is a wildcard; advertising {address} in SDP (set sip.public_host to choose)"
    )
    return address


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.opt(exception=task.exception()).error(f"task {task.get_name()} failed")
