"""Hand-off of a phone call to staff: blind REFER first, a B2BUA bridge when the PBX will not transfer.

1. ``REFER`` the caller to the staff URI (the topic's staff group, else ``sip.staff_uri``) and follow the NOTIFY sipfrag: 2xx → the caller is with staff
   and the bot's leg ends (BYE); a failure (sipfrag ≥ 300) means the transfer target did not take the call.
2. REFER refused outright (405/501/603) or unanswered (408/timeout): the bot INVITEs staff itself and, once staff
   answers, stops the pipeline and bridges the two RTP legs packet by packet, staying in the middle until one side
   hangs up, then BYEs the other. Until staff answers the pipeline keeps running (the caller hears the bot and the
   transcript records the attempt).

From start to end the call is in a transfer state: the pipeline is told (``CallHandle.transfer_status``), so the
caller hears ringback and no silence prompt or goodbye; each step waits at most ``sip.transfer_timeout_s`` (a staff
phone that rings longer is CANCELled). A failed hand-off is told to the caller with the offer of a call-back.

The record gets an event for every step (``transfer_started``, ``transfer_ringing``, ``transfer_referred`` or
``transfer_refer_refused``, ``transfer_bridged``, ``transfer_completed``, ``transfer_failed`` with code and reason,
``transfer_ended``), so a supervisor can see what happened to the caller.

The PBX's own queue (way 1 of issue 10, :mod:`voicebot.telephony.pbx_handoff`): with a database, the transfer opens
a queue entry of mode ``pbx`` first (event ``pbx_queue_entry`` with its id) and carries its summary reference in a
Call-Info and a User-to-User header on the REFER (with ``sip.refer_to_headers`` also in its Refer-To URI) and on the
bot's own INVITE to staff. The
entry is ``answered`` once the PBX has the caller (REFER succeeded, staff answered the bridge) and ``abandoned``
when the transfer failed or the caller left first. Without the database the transfer runs without them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from loguru import logger

from sip_bridge.media import (
    LocalSdpSession,
    RtpEndpoint,
    SdpError,
    SessionDescription,
    accept_answer,
    build_offer,
)
from sip_bridge.sip import events as ev
from voicebot.settings import Settings

if TYPE_CHECKING:
    from voicebot.telephony.pbx_handoff import PbxEntry
    from voicebot.telephony.sip_calls import SipCall, SipCallService

# Why staff was not reached, in the record's words (our own; the peer's reason phrase is not copied).
FAILURE_REASONS = {
    408: "not answered",
    480: "unavailable",
    486: "busy",
    487: "ended by staff",
    488: "no common codec",
    600: "busy",
    603: "declined",
}


def failure_reason(code: int) -> str:
    return FAILURE_REASONS.get(code, f"failed ({code})")


def caller_number(from_uri: str) -> str:
    """The user part of a From URI (``sip:+49301234@pbx`` → ``+49301234``), only characters a number or a SIP user
    name is made of and at most 64 of them: kept as data in the record for a call-back, never used as a path."""
    text = from_uri.strip()
    if "<" in text:
        text = text.split("<", 1)[1].split(">", 1)[0]
    for scheme in ("sips:", "sip:", "tel:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    user = text.split("@", 1)[0].split(";", 1)[0]
    return "".join(c for c in user if c.isascii() and (c.isalnum() or c in "+*#._-"))[:64]


class TransferState(StrEnum):
    """Where a hand-off stands: STARTING → REFERRING → TRANSFERRED, or REFERRING → INVITING → BRIDGED | FAILED."""

    STARTING = "starting"
    REFERRING = "referring"  # REFER sent, waiting for the NOTIFY that says how it went
    TRANSFERRED = "transferred"  # the PBX took the caller to staff; our leg ends
    INVITING = "inviting"  # REFER refused: we call staff ourselves
    BRIDGED = "bridged"  # staff answered: both legs relayed until one hangs up
    FAILED = "failed"  # staff not reached: the caller stays with the bot


@dataclass(frozen=True)
class _MediaLost(ev.Event):
    """No RTP from one bridged leg for ``rtp_inactivity_timeout_s``."""

    leg: str


class Transfer:
    """One hand-off attempt for one call."""

    def __init__(
        self,
        service: SipCallService,
        call: SipCall,
        *,
        reason: str,
        staff_uri: str,
        group: str = "",
        tell_failure: bool = True,
        on_bridged: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``tell_failure``: a failure is told to the pipeline (call-back offer); the bot's queue says no, its
        caller keeps waiting. ``on_bridged`` runs once staff answered and the legs are bridged."""
        self.service = service
        self.call = call
        self.reason = reason
        self.staff_uri = staff_uri
        self.group = group  # the staff group the topic routed to ("" = sip.staff_uri without a group)
        self.entry: PbxEntry | None = None  # the PBX queue entry and the headers that carry its reference
        self._entry_settled = False
        self._late: asyncio.Task[bool] | None = None  # ends an entry written after the caller left
        self.tell_failure = tell_failure
        self.on_bridged = on_bridged
        self.state = TransferState.STARTING
        self.keeps_call = False  # True once bridged: the bridge, not the pipeline, decides when the call ends
        self.staff_call_id: str | None = None
        self.staff_rtp: RtpEndpoint | None = None
        self.bridged = False
        self._counts_at_bridge: dict[str, int] = {}
        self._ringing_noted = False
        self.task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()

    @property
    def settings(self) -> Settings:
        return self.service.settings

    def on_event(self, event: ev.Event) -> None:
        self._events.put_nowait(event)

    def _note(self, kind: str, **data: Any) -> None:
        logger.info(f"{self.call.call_id}: {kind} {data}")
        if self.call.handle is not None:
            with contextlib.suppress(Exception):
                self.call.handle.transcript.add_event(kind, **data)

    async def _next_event(self, timeout_s: float) -> ev.Event | None:
        try:
            return await asyncio.wait_for(self._events.get(), timeout_s)
        except TimeoutError:
            return None

    async def _tell_pipeline(self, phase: str) -> None:
        if self.call.handle is not None and not self.call.finished:
            with contextlib.suppress(Exception):
                await self.call.handle.transfer_status(phase, caller_number(self.call.from_uri))

    def _ringing(self, via: str, **data: Any) -> None:
        if not self._ringing_noted:
            self._ringing_noted = True
            self._note("transfer_ringing", via=via, **data)

    @property
    def headers(self) -> dict[str, str]:
        """The summary reference's header fields for the REFER and the INVITE to staff (none without an entry)."""
        return dict(self.entry.headers) if self.entry is not None else {}

    async def _open_entry(self) -> None:
        """The PBX queue entry of this hand-off (nothing without a database; a database error is logged and the
        transfer goes on without the reference: the caller must reach staff whatever the database does)."""
        handoffs = self.service.pbx_handoffs
        if handoffs is None or self.call.handle is None:
            return
        call_id = self.call.handle.transcript.call_id
        opening = asyncio.ensure_future(
            asyncio.to_thread(
                handoffs.open, call_id, self.group, self.reason, caller_number(self.call.from_uri)
            )
        )
        try:
            self.entry = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The caller left while the entry was being written: once it exists, it ends as abandoned.
            opening.add_done_callback(self._abandon_late_entry)
            raise
        except Exception as error:
            logger.warning(f"{self.call.call_id}: no PBX queue entry ({type(error).__name__}: {error})")
            return
        self._note("pbx_queue_entry", entry=self.entry.entry_id, group=self.group)

    def _abandon_late_entry(self, opening: asyncio.Future[PbxEntry]) -> None:
        handoffs = self.service.pbx_handoffs
        if handoffs is None or opening.cancelled() or opening.exception() is not None:
            return
        entry_id = opening.result().entry_id
        self._late = asyncio.get_running_loop().create_task(asyncio.to_thread(handoffs.ended, entry_id))

    async def _settle_entry(self, *, answered: bool) -> None:
        """The entry's outcome, once: answered by the PBX, or abandoned."""
        handoffs, entry = self.service.pbx_handoffs, self.entry
        if self._entry_settled or handoffs is None or entry is None:
            return
        self._entry_settled = True
        settle = handoffs.answered if answered else handoffs.ended
        try:
            await asyncio.to_thread(settle, entry.entry_id)
        except Exception as error:
            logger.warning(
                f"{self.call.call_id}: PBX queue entry not updated ({type(error).__name__}: {error})"
            )

    async def run(self) -> None:
        staff_uri = self.staff_uri
        self._note("transfer_started", target=staff_uri, reason=self.reason)
        await self._tell_pipeline("started")
        await self._open_entry()
        outcome = await self._blind_refer(staff_uri)
        if outcome == "succeeded":
            self.state = TransferState.TRANSFERRED
            self._note("transfer_referred", target=staff_uri)
            self._note("transfer_completed", via="refer")
            await self._settle_entry(answered=True)
            await self._tell_pipeline("completed")
            await self.service.hangup(self.call, "transferred")
            return
        if outcome == "caller-gone" or self.call.finished:
            await self._settle_entry(answered=False)
            return
        self._note("transfer_refer_refused", code=outcome)
        await self._bridge_to_staff(staff_uri)

    async def ring(self) -> None:
        """Ring ``staff_uri`` ourselves and bridge when it answers (no REFER): a member of staff who accepted a
        caller of the bot's own queue (:mod:`voicebot.telephony.queue`). Returns when the call is over, or
        when staff did not answer (``state`` FAILED) or the caller hung up while it rang."""
        self._note("transfer_started", target=self.staff_uri, reason=self.reason, via="queue")
        await self._tell_pipeline("started")
        await self._bridge_to_staff(self.staff_uri)

    async def _blind_refer(self, staff_uri: str) -> str | int:
        """'succeeded', 'caller-gone', or the failure code."""
        self.state = TransferState.REFERRING
        headers = self.headers
        embedded = headers if self.settings.sip.refer_to_headers else None
        self.service.user_agent.refer(self.call.call_id, staff_uri, headers=headers, target_headers=embedded)
        deadline = asyncio.get_running_loop().time() + self.settings.sip.transfer_timeout_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await self._next_event(max(0.0, remaining))
            match event:
                case None:
                    return 408
                case ev.TransferSucceeded():
                    return "succeeded"
                case ev.TransferFailed(code=code):
                    return code
                case ev.CallEnded(call_id=call_id) if call_id == self.call.call_id:
                    return "caller-gone"
                case ev.ReferAccepted():
                    self._ringing("refer")  # the caller's side now calls staff
                case _:
                    continue

    async def _bridge_to_staff(self, staff_uri: str) -> None:
        self.state = TransferState.INVITING
        service = self.service
        self.staff_rtp = staff_rtp = await service.open_rtp(
            on_timeout=lambda: self.on_event(_MediaLost("staff")), originated=True
        )
        self.call.extra_endpoints.append(staff_rtp)
        caller_codec = self.call.negotiated.codec.name if self.call.negotiated else "PCMU"
        # Offer the caller's codec first: same codec on both legs lets the bridge relay payloads untouched.
        codecs = [caller_codec, *[c for c in self.settings.sip.codecs if c.lower() != caller_codec.lower()]]
        offer = build_offer(
            local_host=service.media_host(),
            local_port=staff_rtp.local_port,
            codecs=codecs,
            session=LocalSdpSession(service.media_host()),
        )
        self.staff_call_id = staff_call_id = service.user_agent.invite(
            staff_uri, offer.serialize().encode(), headers=self.headers
        )
        service.outbound[staff_call_id] = self.call
        deadline = asyncio.get_running_loop().time() + self.settings.sip.transfer_timeout_s
        while True:
            event = await self._next_event(max(0.0, deadline - asyncio.get_running_loop().time()))
            match event:
                case None:
                    service.user_agent.hangup(staff_call_id)  # CANCEL while ringing
                    await self._failed(408)
                    return
                case ev.OutboundCallAnswered(sdp=sdp):
                    try:
                        negotiated = accept_answer(offer, SessionDescription.parse(sdp))
                    except SdpError as error:
                        logger.warning(f"{self.call.call_id}: staff answered with unusable SDP: {error}")
                        service.user_agent.hangup(staff_call_id)
                        await self._failed(488)
                        return
                    break
                case ev.OutboundCallFailed(code=code):
                    await self._failed(code)
                    return
                case ev.CallEnded(call_id=call_id) if call_id == self.call.call_id:
                    service.user_agent.hangup(staff_call_id)
                    await self._settle_entry(answered=False)
                    return
                case ev.CallEnded(call_id=call_id) if call_id == staff_call_id:
                    await self._failed(487)
                    return
                case ev.OutboundCallProgress(code=code) if code in (180, 183):
                    self._ringing("invite", code=code)
                case _:
                    continue
        # Staff answered: the bot steps out of the audio path and the two legs are bridged.
        staff_rtp.configure(negotiated)
        self.keeps_call = True
        self.state = TransferState.BRIDGED
        self._note("transfer_bridged", target=staff_uri, codec=negotiated.codec.name)
        self._note("transfer_completed", via="bridge")
        await self._settle_entry(answered=True)
        if self.call.handle is not None:
            # The bot's part of the call ends here; the transfer events follow in the same record.
            self.call.handle.transcript.end("transferred:bridged")
            await self.call.handle.cancel()
        if self.call.rtp is not None:
            self.call.rtp.bridge(staff_rtp)
            self.bridged = True
            self._counts_at_bridge = self._packet_counts()
        if self.on_bridged is not None:
            try:
                await self.on_bridged()
            except Exception:
                logger.exception(f"{self.call.call_id}: after the bridge")
        await self._wait_for_hangup()

    async def _wait_for_hangup(self) -> None:
        """B2BUA: whichever side hangs up first, BYE the other."""
        service = self.service
        while True:
            event = await self._events.get()
            match event:
                case ev.CallEnded(call_id=call_id) if call_id == self.staff_call_id:
                    self._note("transfer_ended", by="staff", **self.bridge_stats())
                    service.outbound.pop(call_id, None)
                    self.staff_call_id = None
                    await service.hangup(self.call, "staff-hung-up")
                    return
                case ev.CallEnded(call_id=call_id) if call_id == self.call.call_id:
                    self._note("transfer_ended", by="caller", **self.bridge_stats())
                    return  # finish() → close() BYEs staff
                case _MediaLost(leg=leg):
                    self._note("transfer_ended", by=f"{leg}-rtp-timeout", **self.bridge_stats())
                    await service.hangup(self.call, f"{leg}-rtp-timeout")
                    return
                case _:
                    continue

    def _packet_counts(self) -> dict[str, int]:
        caller, staff = self.call.rtp, self.staff_rtp
        if caller is None or staff is None:
            return {}
        return {
            "caller_packets_in": caller.receiver.stats.packets_received,
            "caller_packets_out": caller.sender.stats.packets_sent,
            "staff_packets_in": staff.receiver.stats.packets_received,
            "staff_packets_out": staff.sender.stats.packets_sent,
        }

    def bridge_stats(self) -> dict[str, int]:
        """RTP packets each leg received and sent while bridged (proof that audio flowed both ways)."""
        now = self._packet_counts()
        return {key: value - self._counts_at_bridge.get(key, 0) for key, value in now.items()}

    async def _failed(self, code: int) -> None:
        """Staff could not be reached: the pipeline tells the caller and offers a call-back; the bot stays in the
        call and its silence watchdog works again. One attempt per call: the failed
        transfer stays on the call, so later hand-off requests (the engine may keep asking) do not ring again."""
        self.state = TransferState.FAILED
        self.keeps_call = False
        if self.staff_call_id:
            self.service.outbound.pop(self.staff_call_id, None)
            self.staff_call_id = None
        self._note("transfer_failed", code=code, reason=failure_reason(code))
        await self._settle_entry(answered=False)
        if self.staff_rtp is not None:
            with contextlib.suppress(ValueError):
                self.call.extra_endpoints.remove(self.staff_rtp)
            await self.staff_rtp.close()
            self.staff_rtp = None
        if self.tell_failure:
            await self._tell_pipeline("failed")  # ringback stops; the bot says so and offers a call-back

    async def close(self) -> None:
        """The caller's call is over: stop the bridge and BYE/CANCEL staff if still connected; a PBX queue entry
        still open ends as abandoned (the caller left before the PBX took them)."""
        if self.task is not None and self.task is not asyncio.current_task() and not self.task.done():
            # Let a pending "transfer_ended" note through first, then stop waiting for events.
            await asyncio.sleep(0)
            self.task.cancel()
        await self._settle_entry(answered=False)
        if self.bridged and self.call.rtp is not None:
            self.call.rtp.unbridge()
            self.bridged = False
        if self.staff_call_id is not None:
            with contextlib.suppress(Exception):
                self.service.user_agent.hangup(self.staff_call_id)
            self.service.outbound.pop(self.staff_call_id, None)
            self.staff_call_id = None
