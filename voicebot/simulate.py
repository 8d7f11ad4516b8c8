"""Simulated phone calls: a WAV file is the caller, the real pipeline with the embedded models is the bot.

A file-based pipecat transport feeds the caller audio in 20 ms frames paced like a phone line (``speed`` 1.0 is
real time; tests use 3–4× to stay quick) and keeps feeding silence after the file ends, like an open line. The
output side "plays" the bot audio at the same pace and writes it into a timeline aligned with the input, so
``reply.wav`` holds the bot's audio at the moments it was spoken — barge-ins and latency are visible in it.
Call time is the position in the caller audio (seconds); all timeline positions are in call time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

from voicebot.calls import CallEvent
from voicebot.pipeline.frames import HandoffRequestFrame
from voicebot.pipeline.pipeline import build_call_pipeline
from voicebot.pipeline.resources import CallResources, resident_memory_mb
from voicebot.pipeline.transcript import CallTranscript
from voicebot.privacy.redact import record_redactor
from voicebot.settings import Settings

FRAME_S = 0.02
PLAYOUT_LEAD_S = 0.003
JITTER_BUFFER_S = 0.06
OUTPUT_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
SILENCE_LEVEL = 300  # int16 amplitude below which bot audio counts as silent


class AudioFileError(ValueError):
    """The caller WAV cannot be used (one line saying what to fix)."""


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Any WAV soundfile can read, as int16 mono (stereo is downmixed) plus its sample rate."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    except Exception as error:
        raise AudioFileError(f"cannot read {path} as audio ({error}); give a WAV file") from error
    if rate < 4000 or rate > 192000:
        raise AudioFileError(f"{path}: unsupported sample rate {rate} Hz (use 8–48 kHz)")
    mono = data.mean(axis=1).astype(np.int16) if data.shape[1] > 1 else data[:, 0].copy()
    return mono, int(rate)


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio.astype(np.int16), rate, subtype="PCM_16")


def speech_segments(
    audio: np.ndarray, rate: int, *, level: int = SILENCE_LEVEL, min_gap_s: float = 0.3
) -> list[tuple[float, float]]:
    """Non-silent stretches (start_s, end_s) of ``audio``, measured in 10 ms windows, short gaps merged."""
    window = max(1, rate // 100)
    usable = audio[: len(audio) - len(audio) % window].reshape(-1, window)
    loud = np.abs(usable.astype(np.int32)).max(axis=1) > level if usable.size else np.zeros(0, bool)
    segments: list[tuple[float, float]] = []
    start: int | None = None
    for index, is_loud in enumerate(loud):
        if is_loud and start is None:
            start = index
        elif not is_loud and start is not None:
            segments.append((start * 0.01, index * 0.01))
            start = None
    if start is not None:
        segments.append((start * 0.01, len(loud) * 0.01))
    merged: list[tuple[float, float]] = []
    for segment in segments:
        if merged and segment[0] - merged[-1][1] < min_gap_s:
            merged[-1] = (merged[-1][0], segment[1])
        else:
            merged.append(segment)
    return [(round(a, 2), round(b, 2)) for a, b in merged]


class CallClock:
    """Call time (seconds of caller audio) ↔ wall time, at ``speed``× real time."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._start = time.perf_counter()

    def now(self) -> float:
        return (time.perf_counter() - self._start) * self.speed

    async def sleep_until(self, call_time: float) -> None:
        delay = (call_time - self.now()) / self.speed
        if delay > 0:
            await asyncio.sleep(delay)


class FileInputTransport(BaseInputTransport):
    """Feeds the caller audio in 20 ms frames on the call clock, then silence until the call is stopped."""

    def __init__(
        self,
        audio: np.ndarray,
        rate: int,
        clock: CallClock,
        params: TransportParams,
        dtmf: list[tuple[float, str]] | None = None,
    ) -> None:
        super().__init__(params)
        self._dtmf = sorted(dtmf or [])
        self._audio = audio
        self._rate = rate
        self._clock = clock
        self._feeder: asyncio.Task[None] | None = None
        self.input_finished = asyncio.Event()
        self.duration_s = len(audio) / rate

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._feeder is None:
            self._feeder = self.create_task(self._feed(), name="file-feeder")

    async def stop(self, frame: Any) -> None:
        await self._stop_feeder()
        await super().stop(frame)

    async def cancel(self, frame: Any) -> None:
        await self._stop_feeder()
        await super().cancel(frame)

    async def _stop_feeder(self) -> None:
        if self._feeder is not None:
            await self.cancel_task(self._feeder)
            self._feeder = None

    async def _feed(self) -> None:
        samples_per_frame = int(self._rate * FRAME_S)
        silence = np.zeros(samples_per_frame, dtype=np.int16)
        index = 0
        while True:
            await self._clock.sleep_until(index * FRAME_S)
            chunk = self._audio[index * samples_per_frame : (index + 1) * samples_per_frame]
            if len(chunk) < samples_per_frame:
                if not self.input_finished.is_set():
                    self.input_finished.set()
                chunk = np.concatenate([chunk, silence[: samples_per_frame - len(chunk)]])
            await self.push_audio_frame(
                InputAudioRawFrame(audio=chunk.tobytes(), sample_rate=self._rate, num_channels=1)
            )
            while self._dtmf and self._dtmf[0][0] <= index * FRAME_S:
                _at, digit = self._dtmf.pop(0)
                await self.push_frame(InputDTMFFrame(button=KeypadEntry(digit)))
            index += 1


class TimelineOutputTransport(BaseOutputTransport):
    """ "Plays" bot audio on the call clock and records each chunk at the call time it was played."""

    def __init__(self, clock: CallClock, params: TransportParams) -> None:
        super().__init__(params)
        self._clock = clock
        self._cursor = 0.0
        self.chunks: list[tuple[float, bytes]] = []
        self.interruptions: list[float] = []  # call times at which an InterruptionFrame reached the output
        self.last_audio_wall = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self.interruptions.append(self._clock.now())
        await super().process_frame(frame, direction)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        # Continue where the last chunk ended unless the line was idle: writes that are a little late (event loop
        # busy) do not open gaps, as a phone's jitter buffer would hide them.
        now = self._clock.now()
        position = self._cursor if now - self._cursor < JITTER_BUFFER_S else now
        self.chunks.append((position, frame.audio))
        self._cursor = position + len(frame.audio) / 2 / frame.sample_rate
        self.last_audio_wall = time.perf_counter()
        # Return just before this chunk has been played: no audio is buffered ahead, so an interruption cuts the
        # bot off within the chunk being played (20 ms), as on a phone line.
        await self._clock.sleep_until(self._cursor - PLAYOUT_LEAD_S)
        return True

    def render(self, rate: int, duration_s: float) -> np.ndarray:
        end = max([duration_s] + [pos + len(audio) / 2 / rate for pos, audio in self.chunks])
        timeline = np.zeros(int(end * rate) + 1, dtype=np.int16)
        for position, audio in self.chunks:
            samples = np.frombuffer(audio, dtype=np.int16)
            start = round(position * rate)
            timeline[start : start + len(samples)] = samples[: len(timeline) - start]
        return timeline


class FileCallTransport(BaseTransport):
    def __init__(
        self,
        audio: np.ndarray,
        rate: int,
        out_rate: int,
        clock: CallClock,
        dtmf: list[tuple[float, str]] | None = None,
    ) -> None:
        super().__init__()
        in_params = TransportParams(audio_in_enabled=True, audio_in_sample_rate=rate)
        out_params = TransportParams(
            audio_out_enabled=True,
            audio_out_sample_rate=out_rate,
            audio_out_10ms_chunks=2,
            audio_out_end_silence_secs=0,
        )
        self._input = FileInputTransport(audio, rate, clock, in_params, dtmf)
        self._output = TimelineOutputTransport(clock, out_params)

    def input(self) -> FileInputTransport:
        return self._input

    def output(self) -> TimelineOutputTransport:
        return self._output


class TurnActivityObserver(BaseObserver):
    """Knows whether the caller is in the middle of a turn (so the simulation does not stop too early)."""

    def __init__(self) -> None:
        super().__init__()
        self.caller_turn_open = False
        self.dtmf_seen_by: set[str] = set()  # processors that passed a keypad digit on

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, InputDTMFFrame):
            self.dtmf_seen_by.add(type(data.source).__name__)
        elif isinstance(data.frame, UserStartedSpeakingFrame):
            self.caller_turn_open = True
        elif isinstance(data.frame, UserStoppedSpeakingFrame):
            self.caller_turn_open = False


@dataclass
class SimulationResult:
    call_id: str
    transcript: dict[str, Any]
    reply: np.ndarray
    reply_rate: int
    input_duration_s: float
    wall_s: float
    speed: float
    events: list[dict[str, Any]] = field(default_factory=list)
    rss_mb: float = 0.0
    interruptions_s: list[float] = field(default_factory=list)
    dtmf_seen_by: set[str] = field(default_factory=set)

    @property
    def bot_segments(self) -> list[tuple[float, float]]:
        return speech_segments(self.reply, self.reply_rate)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.transcript,
            "simulation": {
                "input_duration_s": round(self.input_duration_s, 2),
                "reply_duration_s": round(len(self.reply) / self.reply_rate, 2),
                "reply_sample_rate": self.reply_rate,
                "speed": self.speed,
                "wall_s": round(self.wall_s, 2),
                "bot_audio_segments_s": self.bot_segments,
                "call_events": self.events,
                "interruptions_at_output_s": [round(t, 3) for t in self.interruptions_s],
                "rss_mb": round(self.rss_mb, 1),
            },
        }


def _call_is_settled(
    transport: FileCallTransport,
    observer: TurnActivityObserver,
    transcript_turns: list[Any],
    input_end_wall: float,
) -> bool:
    """Input over, the caller's last turn answered, every bot turn played or interrupted, output quiet."""
    now = time.perf_counter()
    if now - input_end_wall < 1.5 or observer.caller_turn_open:
        return False
    if now - transport.output().last_audio_wall < 0.6:
        return False
    last_question = max((i for i, t in enumerate(transcript_turns) if t.role == "caller"), default=-1)
    last_bot = max((i for i, t in enumerate(transcript_turns) if t.role == "bot"), default=-1)
    if last_question > last_bot:
        return False
    return all(t.played or t.interrupted for t in transcript_turns if t.role == "bot")


async def simulate_call(
    settings: Settings,
    resources: CallResources,
    audio: np.ndarray,
    rate: int,
    *,
    speed: float = 1.0,
    max_tail_s: float = 30.0,
    dtmf: list[tuple[float, str]] | None = None,
) -> SimulationResult:
    """Run one call with ``audio`` as the caller (``dtmf``: keypad digits at call times); returns the transcript
    and the reply timeline."""
    if speed <= 0:
        raise ValueError("speed must be > 0")
    out_rate = rate if rate in OUTPUT_RATES else 16000
    clock = CallClock(speed)
    transport = FileCallTransport(audio, rate, out_rate, clock, dtmf)
    events: list[dict[str, Any]] = []

    def on_event(frame: CallEvent) -> None:
        details: dict[str, Any] = {"reason": frame.reason}
        if isinstance(frame, HandoffRequestFrame):
            details.update(summary=frame.summary, sources=frame.sources)
        events.append({"t": round(clock.now(), 2), "type": type(frame).__name__, **details})

    started = time.perf_counter()
    transcript = CallTranscript(
        settings.paths.calls_dir,
        channel="simulation",
        store=resources.record_store_for(settings),
        call_clock=clock.now,
        speed=speed,
        redactor=record_redactor(settings),
    )
    call_id = transcript.call_id
    worker, transcript = build_call_pipeline(
        settings,
        transport,
        resources,
        None,
        on_event=on_event,
        channel="simulation",
        audio_out_sample_rate=out_rate,
        silence_timeout_s=settings.call.silence_timeout_s / speed,
        max_call_s=settings.call.max_call_s / speed,
        transcript=transcript,
    )
    observer = TurnActivityObserver()
    worker.add_observer(observer)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run_task = asyncio.create_task(runner.run())
    input_end_wall: float | None = None
    deadline_call_time = transport.input().duration_s + max_tail_s
    try:
        while not run_task.done():
            await asyncio.sleep(0.05)
            if input_end_wall is None and transport.input().input_finished.is_set():
                input_end_wall = time.perf_counter()
            if input_end_wall is not None and _call_is_settled(
                transport, observer, transcript.turns, input_end_wall
            ):
                break
            if clock.now() > deadline_call_time:
                logger.warning(
                    f"simulated call {call_id}: still busy {max_tail_s:.0f} s after the input ended"
                )
                transcript.add_event("simulation_timeout")
                break
        rss = resident_memory_mb()
        if not run_task.done():
            timed_out = any(event["kind"] == "simulation_timeout" for event in transcript.events)
            transcript.end("simulation_timeout" if timed_out else "caller_audio_ended")
            await worker.end(reason="simulation finished")
            try:
                await asyncio.wait_for(asyncio.shield(run_task), timeout=10)
            except TimeoutError:
                await worker.cancel(reason="simulation stuck")
                await asyncio.wait_for(run_task, timeout=10)
    finally:
        if not run_task.done():
            run_task.cancel()
    reply = transport.output().render(out_rate, transport.input().duration_s)
    return SimulationResult(
        call_id=call_id,
        transcript=transcript.to_dict(),
        reply=reply,
        reply_rate=out_rate,
        input_duration_s=transport.input().duration_s,
        wall_s=time.perf_counter() - started,
        speed=speed,
        events=events,
        rss_mb=rss,
        interruptions_s=list(transport.output().interruptions),
        dtmf_seen_by=set(observer.dtmf_seen_by),
    )
