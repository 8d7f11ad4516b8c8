"""One helper every script step uses to say something: record the bot turn, then queue its sentences for TTS."""

from __future__ import annotations

from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.processors.frame_processor import FrameProcessor

from voicebot.pipeline.frames import BotTurnEndFrame, SpeechLanguageFrame
from voicebot.pipeline.transcript import CallTranscript, TranscriptTurn


def speak_frame(text: str, *, interruptible: bool = True) -> TTSSpeakFrame:
    frame = TTSSpeakFrame(text=text, append_to_context=False)
    frame.interruptible = interruptible
    return frame


async def say(
    processor: FrameProcessor,
    transcript: CallTranscript,
    kind: str,
    text: str,
    *,
    language: str = "de",
    interruptible: bool = True,
) -> TranscriptTurn:
    """Speak ``text`` as one bot turn of ``kind`` (greeting, repeat, silence_prompt, goodbye, ...)."""
    turn = transcript.add_bot_turn(kind, text, language, interruptible=interruptible)
    await processor.push_frame(SpeechLanguageFrame(language=language))
    await processor.push_frame(speak_frame(text, interruptible=interruptible))
    await end_turn(processor, transcript, turn)
    return turn


async def end_turn(processor: FrameProcessor, transcript: CallTranscript, turn: TranscriptTurn) -> None:
    """Queue the marker that tells the playout tracker this turn's audio is complete."""
    marker = BotTurnEndFrame(turn_index=transcript.index_of(turn))
    marker.interruptible = turn.interruptible
    await processor.push_frame(marker)


def bot_turn_frames(
    transcript: CallTranscript, kind: str, text: str, *, language: str = "de", interruptible: bool = False
) -> list[Frame]:
    """Frames that speak ``text`` as one bot turn when queued from outside the pipeline
    (``worker.queue_frames(...)``, e.g. the hand-off announcement of the SIP layer)."""
    turn = transcript.add_bot_turn(kind, text, language, interruptible=interruptible)
    marker = BotTurnEndFrame(turn_index=transcript.index_of(turn))
    marker.interruptible = interruptible
    return [SpeechLanguageFrame(language=language), speak_frame(text, interruptible=interruptible), marker]
