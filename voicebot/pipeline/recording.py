"""Recording only after consent (issue 11, § 201 StGB, decision 0970).

- :class:`RecordingConsent` (after the greeting; only where ``privacy.recording`` is on) takes the caller's next
  turn as the answer to ``privacy.recording_question``: keypad 1 or a yes phrase is consent (the yes is not
  answered as a question), anything else is no consent and that turn goes on as a normal question. Event
  ``recording_consent`` with ``granted`` and ``via``.
- :class:`CallRecording` writes the call's audio from the moment of consent as two mono 16-bit WAVs named only by
  the server's call id (:mod:`voicebot.privacy.recordings`), kept aligned by the clock (silence where a side is
  quiet), and stops at ``max_s``; events ``recording_started`` and ``recording_stopped`` with the seconds.
- :class:`AudioTap` hands one side's audio to the recording: the caller's after the input normalizer, the bot's
  after the transport's output (paced as played).
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from pathlib import Path

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot.pipeline.call_script import matches_phrase
from voicebot.pipeline.frames import CallerQuestionFrame
from voicebot.pipeline.speech import say
from voicebot.pipeline.transcript import CallTranscript
from voicebot.privacy.recordings import recording_path

# A side lagging the clock by more than this is filled with silence up to it.
_ALIGN_SLACK_S = 0.2


class _Track:
    def __init__(self, path: Path, sample_rate: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self.samples = 0
        self._file = wave.open(str(path), "wb")  # noqa: SIM115 - closed by CallRecording.stop
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(sample_rate)

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def write(self, pcm: bytes) -> None:
        self._file.writeframes(pcm)
        self.samples += len(pcm) // 2

    def close(self) -> None:
        self._file.close()


class CallRecording:
    """One call's recording: nothing is written before :meth:`start` (the caller's consent)."""

    def __init__(
        self,
        directory: Path,
        transcript: CallTranscript,
        *,
        max_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._transcript = transcript
        self._max_s = max_s
        self._clock = clock
        self._started_at: float | None = None
        self._stopped = False
        self._tracks: dict[str, _Track] = {}

    @property
    def recording(self) -> bool:
        return self._started_at is not None and not self._stopped

    def start(self) -> None:
        if self._started_at is None and not self._stopped:
            self._started_at = self._clock()
            self._transcript.add_event("recording_started", max_s=self._max_s)

    def write(self, track: str, pcm: bytes, sample_rate: int, channels: int) -> None:
        if not self.recording or channels != 1 or not pcm or self._started_at is None:
            return
        side = self._tracks.get(track)
        if side is None:
            path = recording_path(self._directory, self._transcript.call_id, track)
            side = self._tracks[track] = _Track(path, sample_rate)
        if side.sample_rate != sample_rate:
            return  # one rate per file; a transport does not change its rate within a call
        elapsed = min(self._clock() - self._started_at, self._max_s)
        lag = elapsed - side.seconds - len(pcm) / 2 / sample_rate
        if lag > _ALIGN_SLACK_S:
            side.write(b"\x00\x00" * int(lag * sample_rate))
        room = int(self._max_s * sample_rate) - side.samples
        side.write(pcm[: max(0, room) * 2])
        if side.samples >= int(self._max_s * sample_rate):
            self.stop("limit")

    def stop(self, reason: str) -> None:
        if not self.recording:
            return
        self._stopped = True
        for side in self._tracks.values():
            side.close()
        seconds = max((side.seconds for side in self._tracks.values()), default=0.0)
        self._transcript.add_event("recording_stopped", seconds=round(seconds, 2), reason=reason)


class AudioTap(FrameProcessor):
    """Passes every frame on; one side's audio (``track`` "anrufer": input audio, "bot": output audio) also goes
    to the recording, which keeps it only after consent. The call's end reaching the bot's tap (the last
    processor) closes the recording."""

    def __init__(self, recording: CallRecording, track: str) -> None:
        super().__init__()
        self._recording = recording
        self._track = track
        self._kind: type[Frame] = InputAudioRawFrame if track == "anrufer" else OutputAudioRawFrame

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, self._kind) and isinstance(frame, InputAudioRawFrame | OutputAudioRawFrame):
            self._recording.write(self._track, frame.audio, frame.sample_rate, frame.num_channels)
        elif isinstance(frame, EndFrame | CancelFrame) and self._track == "bot":
            self._recording.stop("call_ended")  # the bot's tap is the pipeline's end: the last audio is in
        await self.push_frame(frame, direction)


class RecordingConsent(FrameProcessor):
    """Takes the caller's first turn after the recording question as the answer (see the module doc)."""

    def __init__(
        self,
        *,
        transcript: CallTranscript,
        recording: CallRecording,
        key: str = "1",
        phrases: list[str] | None = None,
        thanks: str = "Vielen Dank. Ihre Frage bitte.",
    ) -> None:
        super().__init__()
        self._transcript = transcript
        self._recording = recording
        self._key = key
        self._phrases = phrases if phrases is not None else ["ja", "ja gerne", "einverstanden"]
        self._thanks = thanks
        self._waiting = True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not self._waiting or direction != FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, InputDTMFFrame):
            granted = str(frame.button.value) == self._key
            self._decide(granted, "dtmf")
            await self.push_frame(frame, direction)
            if granted:
                await say(self, self._transcript, "recording_consent", self._thanks)
            return
        if isinstance(frame, CallerQuestionFrame):
            granted = matches_phrase(frame.text, self._phrases, max_extra_words=1)
            self._decide(granted, "speech")
            if granted:
                await say(self, self._transcript, "recording_consent", self._thanks)
            else:
                await self.push_frame(frame, direction)  # answered as a normal question
            return
        await self.push_frame(frame, direction)

    def _decide(self, granted: bool, via: str) -> None:
        self._waiting = False
        self._transcript.add_event("recording_consent", granted=granted, via=via)
        if granted:
            self._recording.start()
