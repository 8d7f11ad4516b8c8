"""One call's voice pipeline as a :class:`~voicebot.calls.CallHandle`, and the production call runner.

Both doors (SIP, browser) start their calls through :func:`pipeline_call_runner`; only the transport differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipecat.pipeline.worker import PipelineWorker
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from voicebot.pipeline.frames import TransferStatusFrame
from voicebot.pipeline.pipeline import build_call_pipeline
from voicebot.pipeline.resources import CallResources
from voicebot.pipeline.speech import bot_turn_frames
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import Settings

if TYPE_CHECKING:
    from voicebot.calls import CallEventHandler, CallRunner


@dataclass
class PipelineCall:
    """The voice pipeline of one call (:mod:`voicebot.pipeline`) as a :class:`~voicebot.calls.CallHandle`."""

    worker: PipelineWorker
    transcript: CallTranscript

    async def run(self) -> None:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        await runner.run()

    async def cancel(self) -> None:
        await self.worker.cancel(reason="hang-up")

    async def say(self, kind: str, text: str) -> None:
        """Speak ``text`` as a bot turn from outside the pipeline."""
        await self.worker.queue_frames(bot_turn_frames(self.transcript, kind, text, interruptible=False))

    async def transfer_status(
        self, phase: str, caller_number: str = "", *, reason: str = "", position: int = 0, wait_s: float = 0.0
    ) -> None:
        """Tell the call script where a hand-off stands (``started``, ``queued``, ``failed``, ``completed``)."""
        await self.worker.queue_frame(
            TransferStatusFrame(
                phase=phase, caller_number=caller_number, reason=reason, position=position, wait_s=wait_s
            )
        )


def pipeline_call_runner(settings: Settings, resources: CallResources, *, channel: str = "sip") -> CallRunner:
    """The production :data:`~voicebot.calls.CallRunner`: the voice pipeline over any transport; ``channel``
    ("sip", "webrtc") is what the call records say about where the calls came in.

    The hand-off keys (``sip.handoff_dtmf``) are listened to only where someone acts on the hand-off (an event
    handler is given): a browser call has no transfer.
    """

    async def run_call(
        transport: BaseTransport, call_id: str, sample_rate: int, on_event: CallEventHandler | None
    ) -> PipelineCall:
        worker, transcript = build_call_pipeline(
            settings,
            transport,
            resources,
            call_id,
            on_event,
            channel=channel,
            audio_out_sample_rate=sample_rate,
            handoff_keys=settings.sip.handoff_dtmf if on_event is not None else "",
            captions=channel == "webrtc",  # the /call page shows them; a phone has no screen
        )
        return PipelineCall(worker, transcript)

    return run_call
