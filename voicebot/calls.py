"""What the two doors of the hotline (phone calls over SIP, browser calls over WebRTC) share.

- :class:`CallRegistry` counts active calls across both doors against one limit (``sip.max_calls``), so the CPU
  work of the whole process is bounded; a door takes one :class:`CallLease` per call and releases it once.
- :class:`CallHandle` is everything a door does with a running call pipeline, and a :data:`CallRunner` builds one
  over the door's transport; the pipeline tells the door about hand-off and end of call through a
  :data:`CallEventHandler`.

The doors (:mod:`voicebot.telephony`, :mod:`voicebot.web`) import this module; only ``voicebot serve`` imports the
composition root (:mod:`voicebot.server`) that wires them together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from pipecat.transports.base_transport import BaseTransport

    from voicebot.pipeline.frames import CallEndingFrame, HandoffRequestFrame
    from voicebot.pipeline.transcript import CallTranscript

# What the pipeline hands the door once the caller heard the words that go with it: a hand-off request (the
# door transfers the call where it can) or the end of the call (the pipeline ends by itself right after).
CallEvent: TypeAlias = "HandoffRequestFrame | CallEndingFrame"
CallEventHandler: TypeAlias = "Callable[[CallEvent], Awaitable[None] | None]"


class CallHandle(Protocol):
    """A running call pipeline, as the doors see it."""

    @property
    def transcript(self) -> CallTranscript:
        """The call's record: a door adds its events (transfer steps) and the reason the call ended."""

    async def run(self) -> None:
        """Run the call until the pipeline ends (goodbye, silence, hand-off) or it is cancelled."""

    async def cancel(self) -> None:
        """Stop the call now (the far end hung up, or a bridge took the caller over)."""

    async def say(self, kind: str, text: str) -> None:
        """Speak ``text`` to the caller as a bot turn of ``kind`` from outside the pipeline (not interruptible)."""

    async def transfer_status(
        self, phase: str, caller_number: str = "", *, reason: str = "", position: int = 0, wait_s: float = 0.0
    ) -> None:
        """Where a hand-off stands: ``started`` (ringback, no silence prompts), ``queued`` (hold audio, announce
        ``position`` and ``wait_s``), ``failed`` (say so with ``reason``, offer a call-back for
        ``caller_number``), ``completed`` (staff has the caller)."""


# (transport, call id, the transport's output sample rate, event handler) → a call ready to run. The handler is
# None where nobody acts on a hand-off (a browser call): then the hand-off keys are not listened to either.
CallRunner: TypeAlias = "Callable[[BaseTransport, str, int, CallEventHandler | None], Awaitable[CallHandle]]"


@dataclass
class CallLease:
    """One slot of the process's call capacity; release exactly once when the call is over."""

    registry: CallRegistry
    kind: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.registry._release(self)


@dataclass
class CallRegistry:
    """Counts active calls across SIP and WebRTC against one limit (health check and 503/Retry-After)."""

    max_calls: int
    sip_listening: bool = False
    sip_probe: Callable[[], bool] | None = None  # the SIP listeners' real state (closed transport: False)
    # A graceful shutdown (SIGTERM) is under way: no new call on either door; the running ones go on.
    draining: bool = False
    _active: dict[str, int] = field(default_factory=dict)

    @property
    def sip_serving(self) -> bool:
        """SIP was started and its listeners still serve: what /healthz reports as ``sip_listening``."""
        return self.sip_listening and (self.sip_probe is None or self.sip_probe())

    @property
    def active(self) -> int:
        return sum(self._active.values())

    def active_by_kind(self) -> dict[str, int]:
        """Active calls per door ("sip", "webrtc")."""
        return dict(self._active)

    @property
    def full(self) -> bool:
        """No new call now: every line taken, or draining."""
        return self.draining or self.active >= self.max_calls

    def try_acquire(self, kind: str) -> CallLease | None:
        if self.full:
            return None
        self._active[kind] = self._active.get(kind, 0) + 1
        return CallLease(self, kind)

    def _release(self, lease: CallLease) -> None:
        self._active[lease.kind] = max(0, self._active.get(lease.kind, 0) - 1)
