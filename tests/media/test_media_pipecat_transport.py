"""A real pipecat pipeline (input -> gain -> output) over RTP on loopback, with German espeak-ng speech."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputDTMFUrgentFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from sip_bridge.media import (
    LocalSdpSession,
    MediaPeerPolicy,
    RtpEndpoint,
    SessionDescription,
    accept_answer,
    answer_offer,
    build_offer,
)
from sip_bridge.media.codecs import PcmResampler
from sip_bridge.pipecat_transport import RtpCallTransport

pytestmark = pytest.mark.timeout(90)
HOST = "127.0.0.1"
RATE = 16000
PHONE_FIRST = MediaPeerPolicy(packets_before_receive=None)  # the calling phone speaks first; the bot waits


class Gain(FrameProcessor):
    """Turns what the caller says into what the bot says (halved), and notes the caller's key presses."""

    def __init__(self) -> None:
        super().__init__()
        self.digits: list[str] = []
        self.audio_frames = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.audio_frames += 1
            samples = np.frombuffer(frame.audio, dtype=np.int16) // 2
            await self.push_frame(
                OutputAudioRawFrame(samples.astype(np.int16).tobytes(), frame.sample_rate, 1)
            )
            return
        if isinstance(frame, InputDTMFFrame):
            self.digits.append(str(frame.button.value))
        await self.push_frame(frame, direction)


def german_speech(tmp_path: Path) -> bytes:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng (Debian package) is required"
    wav_path = tmp_path / "frage.wav"
    subprocess.run(
        [espeak, "-v", "de", "-w", str(wav_path), "Guten Tag, wann hat das Bürgerbüro geöffnet?"], check=True
    )
    with wave.open(str(wav_path)) as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    return PcmResampler(rate, RATE).process(pcm)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


async def test_pipeline_echoes_german_speech_over_rtp_and_sees_dtmf(tmp_path: Path) -> None:
    speech = german_speech(tmp_path)
    phone = RtpEndpoint(host=HOST, port=0, policy=PHONE_FIRST)
    bot = RtpEndpoint(host=HOST, port=0, input_rate=RATE, output_rate=RATE)
    await phone.open()
    await bot.open()
    offer = build_offer(
        local_host=HOST, local_port=phone.local_port, codecs=["PCMU"], session=LocalSdpSession(HOST)
    )
    answer, bot_media = answer_offer(
        SessionDescription.parse(offer.serialize()),
        local_host=HOST,
        local_port=bot.local_port,
        allowed_codecs=["PCMU"],
        session=LocalSdpSession(HOST),
    )
    phone.configure(accept_answer(offer, answer))
    bot.configure(bot_media)

    transport = RtpCallTransport(bot)
    gain = Gain()
    worker = PipelineWorker(
        Pipeline([transport.input(), gain, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    heard = bytearray()
    try:

        async def listen(frames: int) -> None:
            for _ in range(frames):
                heard.extend(await asyncio.wait_for(phone.read_audio(), 2.0))

        listening = asyncio.create_task(listen(int(len(speech) / (RATE * 2) / 0.02) + 40))
        for start in range(0, len(speech), 640):  # the caller speaks, in real time
            await phone.send_audio(speech[start : start + 640])
        phone.send_dtmf("5")
        await listening
        assert gain.audio_frames > 100
        assert rms(bytes(heard)) > 200  # the bot's echo of the question came back over RTP
        for _ in range(50):
            if gain.digits:
                break
            await asyncio.sleep(0.02)
        assert gain.digits == ["5"]

        # DTMF out through pipecat's frame.
        digits: list[str] = []
        phone.on_dtmf = digits.append
        await worker.queue_frame(OutputDTMFUrgentFrame.from_string("#"))
        for _ in range(50):
            if digits:
                break
            await asyncio.sleep(0.02)
        assert digits == ["#"]

        # Barge-in: 4 s of bot speech is queued; once it is audible, an interruption silences it.
        t = np.arange(RATE * 4) / RATE
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()
        await worker.queue_frame(TTSAudioRawFrame(tone, RATE, 1, context_id="answer"))
        loud = 0
        for _ in range(150):
            loud += rms(await asyncio.wait_for(phone.read_audio(), 2.0)) > 2000
            if loud >= 5:
                break
        assert loud >= 5
        await worker.queue_frame(InterruptionFrame())
        after = [rms(await asyncio.wait_for(phone.read_audio(), 2.0)) > 2000 for _ in range(60)]
        # What was already in flight (jitter buffer, one packet) may still play; the 3.8 s left must not.
        assert sum(after) <= 10, after
    finally:
        await worker.cancel()
        await asyncio.wait_for(running, 10)
        await phone.close()
        await bot.close()
