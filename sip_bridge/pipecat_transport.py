"""A pipecat transport for one phone call's RTP media (pipecat has none for SIP).

The input side pushes the endpoint's jitter-buffered, decoded 20 ms frames as ``InputAudioRawFrame`` in real
time and RFC 4733 key presses as ``InputDTMFFrame``. The output side hands bot audio to the endpoint's paced
sender; the endpoint lets at most ~60 ms wait there, so the rest stays in pipecat's own queue where an
interruption discards it, and on ``InterruptionFrame`` the endpoint drops what it holds at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputDTMFFrame,
    OutputDTMFUrgentFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from sip_bridge.media.endpoint import RtpEndpoint

logger = logging.getLogger(__name__)
_KEYPAD = {entry.value: entry for entry in KeypadEntry}


class RtpInputTransport(BaseInputTransport):
    def __init__(self, endpoint: RtpEndpoint, params: TransportParams, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._endpoint = endpoint
        self._reader: asyncio.Task[None] | None = None

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        self._endpoint.set_pipeline_rates(input_rate=self.sample_rate)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)  # creates the queue push_audio_frame feeds
        self._endpoint.on_dtmf = self._on_dtmf
        if self._reader is None:
            self._reader = self.create_task(self._read_audio(), name="rtp-input")

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._stop_reader()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._stop_reader()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop_reader()

    async def _stop_reader(self) -> None:
        self._endpoint.on_dtmf = None
        if self._reader is not None:
            await self.cancel_task(self._reader)
            self._reader = None

    async def _read_audio(self) -> None:
        while True:
            pcm = await self._endpoint.read_audio()
            frame = InputAudioRawFrame(audio=pcm, sample_rate=self._endpoint.input_rate, num_channels=1)
            await self.push_audio_frame(frame)

    def _on_dtmf(self, digit: str) -> None:
        entry = _KEYPAD.get(digit)
        if entry is None:  # A-D exist in RFC 4733 but not on pipecat's keypad
            logger.debug("%s: ignoring DTMF %r", self, digit)
            return
        self.create_task(self.push_frame(InputDTMFFrame(button=entry)), name="rtp-dtmf")


class RtpOutputTransport(BaseOutputTransport):
    def __init__(self, endpoint: RtpEndpoint, params: TransportParams, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._endpoint = endpoint
        self._warned_formats: set[tuple[int, int]] = set()

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        self._endpoint.set_pipeline_rates(output_rate=self.sample_rate)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            # Drop queued bot audio before pipecat even starts clearing its own queue, and again after,
            # in case its audio task slipped one more chunk in meanwhile.
            self._endpoint.flush()
            await super().process_frame(frame, direction)
            self._endpoint.flush()
            return
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if frame.sample_rate != self._endpoint.output_rate or frame.num_channels != 1:
            audio_format = (frame.sample_rate, frame.num_channels)
            if audio_format not in self._warned_formats:  # once per format, not every 20 ms
                self._warned_formats.add(audio_format)
                logger.warning("%s: dropping %s Hz/%s ch audio", self, frame.sample_rate, frame.num_channels)
            return False
        await self._endpoint.send_audio(frame.audio)
        return True

    def _supports_native_dtmf(self) -> bool:
        media = self._endpoint.media
        return media is not None and media.dtmf_payload_type is not None

    async def _write_dtmf_native(self, frame: OutputDTMFFrame | OutputDTMFUrgentFrame) -> None:
        buttons = frame.buttons or ([frame.button] if frame.button else [])
        self._endpoint.send_dtmf("".join(str(button.value) for button in buttons))


class RtpCallTransport(BaseTransport):
    """``transport.input()`` / ``transport.output()`` for one call's :class:`RtpEndpoint`."""

    def __init__(
        self,
        endpoint: RtpEndpoint,
        params: TransportParams | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.endpoint = endpoint
        self._params = params or TransportParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=endpoint.input_rate,
            audio_out_sample_rate=endpoint.output_rate,
            audio_out_10ms_chunks=2,
        )
        self._input: RtpInputTransport | None = None
        self._output: RtpOutputTransport | None = None

    def input(self) -> RtpInputTransport:
        if self._input is None:
            self._input = RtpInputTransport(self.endpoint, self._params, name=f"{self.name}#input")
        return self._input

    def output(self) -> RtpOutputTransport:
        if self._output is None:
            self._output = RtpOutputTransport(self.endpoint, self._params, name=f"{self.name}#output")
        return self._output
