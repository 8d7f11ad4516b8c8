"""Admission of browser calls: an offer becomes a pending peer connection, and only a connected one takes a line.

Before, every POST of an offer started a call pipeline and took one of the process's lines at once, whether or not
a browser ever connected; eight POSTs filled every line for ~15 s and phone calls got 503. Now:

- a new offer is admitted only while a line is free (503 + Retry-After otherwise) and while fewer than
  ``max_pending`` offers (``max_pending_per_source`` from one address, 429) wait for their browser;
- a pending offer holds no line and no pipeline; when ICE and DTLS are connected (media can flow) a line is
  taken and the call starts; if none is free by then, or nothing connects within ``connect_timeout_s``, the peer
  connection is closed;
- an offer naming a ``pc_id`` renegotiates that connection (it already holds its pending slot or its line);
  an unknown ``pc_id`` is 404, never a new connection behind the capacity check.

The pending table is bounded by ``max_pending``; the per-source count is taken from it, so it is bounded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from aiortc import RTCIceCandidate
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

    from voicebot.calls import CallLease, CallRegistry

# Runs one browser call over a connected peer connection; must release the lease when the call is over.
BrowserCallRunner = Callable[["SmallWebRTCConnection", "CallLease"], Awaitable[None]]

BUSY_DETAIL = "Alle Leitungen sind belegt. Bitte versuchen Sie es in einigen Minuten erneut."
# Fixed text: aiortc's own error messages may quote the offer, and the answer must not echo peer input.
UNUSABLE_DETAIL = "Das SDP-Angebot ist nicht verwendbar."
ENDED_STATES = frozenset({"failed", "closed"})


@dataclass
class OfferRefused(Exception):
    """An offer that gets no peer connection: HTTP status, German detail, Retry-After seconds if any."""

    status: int
    detail: str
    retry_after_s: int | None = None


@dataclass
class _Pending:
    source: str
    peer: SmallWebRTCConnection
    watchdog: asyncio.Task[None] | None = None


class BrowserCallDesk:
    """Peer connections of browser calls, from offer to hang-up (see the module docstring)."""

    def __init__(
        self,
        calls: CallRegistry,
        run_call: BrowserCallRunner,
        *,
        max_pending: int,
        max_pending_per_source: int,
        connect_timeout_s: float,
        busy_retry_after_s: int,
    ) -> None:
        self.calls = calls
        self.run_call = run_call
        self.max_pending = max_pending
        self.max_pending_per_source = max_pending_per_source
        self.connect_timeout_s = connect_timeout_s
        self.busy_retry_after_s = busy_retry_after_s
        self._pending: dict[str, _Pending] = {}
        self._in_call: dict[str, SmallWebRTCConnection] = {}
        self._call_tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Offers answered whose browser has not connected yet (they hold no line)."""
        return len(self._pending)

    @property
    def in_call(self) -> int:
        return len(self._in_call)

    async def offer(self, sdp: str, *, source: str, pc_id: str | None, restart_pc: bool) -> dict[str, str]:
        """The SDP answer for a checked offer (see :mod:`voicebot.web.offer_sdp`), or :class:`OfferRefused`."""
        if pc_id is not None:
            return await self._renegotiate(pc_id, sdp, restart_pc)
        self._admit(source)
        from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

        peer = SmallWebRTCConnection(connection_timeout_secs=max(1, math.ceil(self.connect_timeout_s)))
        pending = _Pending(source, peer)
        self._pending[peer.pc_id] = pending  # reserved before the first await: concurrent offers see it
        try:
            await peer.initialize(sdp=sdp, type="offer")
            answer = peer.get_answer()
            if answer is None:
                raise ValueError("no answer")
        except Exception as error:  # aiortc raises ValueError & co. on SDP it cannot use
            self._pending.pop(peer.pc_id, None)
            await _close_quietly(peer)
            logger.warning(f"WebRTC offer from {source} rejected by aiortc: {str(error)[:200]!r}")
            raise OfferRefused(400, UNUSABLE_DETAIL) from None
        except BaseException:  # the request was cancelled: nothing may stay behind
            self._pending.pop(peer.pc_id, None)
            await _close_quietly(peer)
            raise
        pending.watchdog = asyncio.create_task(
            self._await_media(pending), name=f"webrtc-pending-{peer.pc_id}"
        )
        return dict(answer)

    def _admit(self, source: str) -> None:
        if self.calls.full:
            raise OfferRefused(503, BUSY_DETAIL, self.busy_retry_after_s)
        retry_after = max(1, math.ceil(self.connect_timeout_s))  # a pending slot frees within that time
        if len(self._pending) >= self.max_pending:
            raise OfferRefused(
                503,
                "Zu viele Verbindungen werden gerade aufgebaut. Bitte versuchen Sie es gleich erneut.",
                retry_after,
            )
        from_source = sum(1 for p in self._pending.values() if p.source == source)
        if from_source >= self.max_pending_per_source:
            raise OfferRefused(
                429,
                "Von Ihrem Anschluss werden bereits Verbindungen aufgebaut. Bitte warten Sie kurz.",
                retry_after,
            )

    async def _renegotiate(self, pc_id: str, sdp: str, restart_pc: bool) -> dict[str, str]:
        """A new offer for an existing connection: it already holds its pending slot or its line."""
        peer = self.connection(pc_id)
        if restart_pc:
            raise OfferRefused(
                400, "Ein Neuaufbau der Verbindung wird nicht unterstützt. Bitte rufen Sie neu an."
            )
        try:
            await peer.renegotiate(sdp=sdp, type="offer", restart_pc=False)
        except Exception as error:
            logger.warning(f"WebRTC renegotiation of {pc_id} rejected by aiortc: {str(error)[:200]!r}")
            raise OfferRefused(400, UNUSABLE_DETAIL) from None
        answer = peer.get_answer()
        if answer is None:
            raise OfferRefused(400, UNUSABLE_DETAIL)
        return dict(answer)

    def connection(self, pc_id: str) -> SmallWebRTCConnection:
        """The pending or connected peer connection ``pc_id``; :class:`OfferRefused` 404 when there is none."""
        pending = self._pending.get(pc_id)
        peer = pending.peer if pending is not None else self._in_call.get(pc_id)
        if peer is None:
            raise OfferRefused(404, "Diese Verbindung besteht nicht (mehr). Bitte rufen Sie erneut an.")
        return peer

    async def add_ice_candidates(self, pc_id: str, candidates: list[RTCIceCandidate]) -> None:
        """Trickled candidates for a known connection; 404 for an unknown one."""
        peer = self.connection(pc_id)
        for candidate in candidates:
            await peer.add_ice_candidate(candidate)

    async def _await_media(self, pending: _Pending) -> None:
        """Wait until ICE+DTLS are connected, then take a line and start the call; else close the connection."""
        peer = pending.peer
        pc_id = peer.pc_id
        changed = asyncio.Event()
        peer.pc.on("connectionstatechange", changed.set)
        state = peer.pc.connectionState
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                while state != "connected" and state not in ENDED_STATES:
                    changed.clear()
                    await changed.wait()
                    state = peer.pc.connectionState
        except TimeoutError:
            state = "timeout"
        finally:
            self._pending.pop(pc_id, None)
            peer.pc.remove_listener("connectionstatechange", changed.set)
        if state != "connected":
            logger.info(f"WebRTC offer {pc_id} from {pending.source} never connected ({state}): closed")
            await _close_quietly(peer)
            return
        lease = self.calls.try_acquire("webrtc")
        if lease is None:
            logger.warning(f"WebRTC {pc_id} connected, but all {self.calls.max_calls} lines are busy: closed")
            await _close_quietly(peer)
            return
        self._in_call[pc_id] = peer
        task = asyncio.create_task(self._call(pc_id, peer, lease), name=f"webrtc-call-{pc_id}")
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)

    async def _call(self, pc_id: str, peer: SmallWebRTCConnection, lease: CallLease) -> None:
        try:
            await self.run_call(peer, lease)
        except Exception:
            logger.exception(f"WebRTC call {pc_id} failed")
        finally:
            lease.release()  # idempotent: run_call normally released it already
            self._in_call.pop(pc_id, None)
            await _close_quietly(peer)

    async def close(self) -> None:
        """Shutdown: close pending connections and end running calls (each closes its transcript)."""
        peers = [p.peer for p in self._pending.values()] + list(self._in_call.values())
        tasks = [p.watchdog for p in self._pending.values() if p.watchdog is not None]
        tasks += self._call_tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for peer in peers:
            await _close_quietly(peer)
        self._pending.clear()
        self._in_call.clear()


async def _close_quietly(peer: SmallWebRTCConnection) -> None:
    with contextlib.suppress(Exception):
        await peer.disconnect()
