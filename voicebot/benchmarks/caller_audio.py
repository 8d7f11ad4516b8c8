"""Synthetic caller audio: questions spoken by espeak-ng, joined with pauses, at any sample rate.

espeak-ng is a worst case for ASR (robotic prosody), which makes it a conservative stand-in for callers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from voicebot.pipeline.espeak import EspeakVoice, espeak_engine, synthesize_blocks


def spoken(text: str, rate: int = 16000, *, voice: str = "de", words_per_minute: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng as int16 mono at ``rate``, leading/trailing silence trimmed."""
    pcm = np.frombuffer(
        b"".join(synthesize_blocks(text, EspeakVoice(voice, words_per_minute))), dtype=np.int16
    )
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 200)
    if loud.size:
        pcm = pcm[loud[0] : loud[-1] + 1]
    source_rate = espeak_engine().sample_rate
    if source_rate != rate:
        pcm = soxr.resample(pcm, source_rate, rate, quality="HQ")
    return np.asarray(pcm, dtype=np.int16)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


@dataclass
class ComposedCall:
    """Caller audio plus where each utterance ends (call time), for latency measurements."""

    audio: np.ndarray
    rate: int
    utterances: list[tuple[str, float, float]]  # (text, start_s, end_s)


def compose_call(parts: list[str | float], rate: int = 16000, *, voice: str = "de") -> ComposedCall:
    """Strings are spoken, numbers are pauses in seconds, in order."""
    pieces: list[np.ndarray] = []
    utterances: list[tuple[str, float, float]] = []
    position = 0
    for part in parts:
        piece = silence(part, rate) if isinstance(part, int | float) else spoken(part, rate, voice=voice)
        if isinstance(part, str):
            utterances.append((part, position / rate, (position + len(piece)) / rate))
        pieces.append(piece)
        position += len(piece)
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
    return ComposedCall(audio, rate, utterances)
