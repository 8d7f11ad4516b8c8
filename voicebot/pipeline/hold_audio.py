"""Hold audio for callers waiting in the bot's own queue (:mod:`voicebot.pipeline.waiting_room`).

The default is generated here, so nothing has to be licensed or downloaded: a slow, soft chime melody on a major
pentatonic scale (no semitone steps, so no phrase sounds unresolved), each note a sine with a little second
harmonic and a bell-like decay, then a rest. It is clearly not ringback (no 425 Hz cadence): the caller knows
they are waiting, not being connected. Its level stays well below speech (peak −16 dBFS) so announcements stand out.

A town may configure its own file instead (``queue.hold_audio_file``): mono, 16-bit PCM WAV at 8 or 16 kHz,
checked by :func:`load_hold_audio` when ``voicebot serve`` starts, so a wrong file is a clear start-up error and
never a silent call.
"""

from __future__ import annotations

import functools
import math
import wave
from pathlib import Path

import numpy as np

HOLD_RATE = 8000
HOLD_PEAK = 0.16  # ≈ −16 dBFS peak: soft, far below the bot's speech and far from clipping after G.711
# Major pentatonic around C5 (Hz) and the melody, in scale steps; one note every NOTE_S, then REST_S of quiet.
_SCALE_HZ = (523.25, 587.33, 659.26, 783.99, 880.00, 1046.50)
_MELODY = (0, 2, 4, 3, 5, 4, 2, 3, 1, 2, 0)
NOTE_S = 0.55
DECAY_S = 1.1  # a note rings on under the next one, like a chime
REST_S = 2.5
ALLOWED_RATES = (8000, 16000)
MAX_FILE_S = 600.0  # a hold file is looped; longer than ten minutes is a mistake (and memory)


class HoldAudioError(ValueError):
    """The configured hold audio file cannot be used (the message says what to fix)."""


@functools.lru_cache(maxsize=2)
def generate_hold_melody(rate: int = HOLD_RATE) -> bytes:
    """One loop of the default hold melody as 16-bit mono PCM at ``rate`` (about 9 s)."""
    length = len(_MELODY) * NOTE_S + DECAY_S + REST_S
    out = np.zeros(int(length * rate))
    ring = int(DECAY_S * rate * 1.6)
    t = np.arange(ring) / rate
    attack = int(0.008 * rate)
    envelope = np.exp(-t / (DECAY_S / 3.0))
    envelope[:attack] *= np.linspace(0.0, 1.0, attack)
    for index, step in enumerate(_MELODY):
        hz = _SCALE_HZ[step]
        note = np.sin(2 * math.pi * hz * t) + 0.25 * np.sin(2 * math.pi * 2 * hz * t)
        start = int(index * NOTE_S * rate)
        end = min(len(out), start + ring)
        out[start:end] += (note * envelope)[: end - start]
    fade = int(0.05 * rate)
    out[-fade:] *= np.linspace(1.0, 0.0, fade)
    out *= HOLD_PEAK / float(np.max(np.abs(out)))
    return (out * 32767).astype("<i2").tobytes()


def load_hold_audio(path: Path | None) -> tuple[bytes, int]:
    """The hold audio to loop: ``path`` (mono 16-bit WAV, 8 or 16 kHz) or, without one, the generated melody.
    Returns (PCM, sample rate); :class:`HoldAudioError` with one line saying what is wrong with the file."""
    if path is None:
        return generate_hold_melody(), HOLD_RATE
    return _load_file(path)


@functools.lru_cache(maxsize=4)
def _load_file(path: Path) -> tuple[bytes, int]:
    where = f"queue.hold_audio_file {path}"
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate, frames = (
                wav.getnchannels(),
                wav.getsampwidth(),
                wav.getframerate(),
                wav.getnframes(),
            )
            if channels != 1 or width != 2 or rate not in ALLOWED_RATES:
                raise HoldAudioError(
                    f"{where}: must be mono 16-bit PCM WAV at 8000 or 16000 Hz, is {channels} channel(s), "
                    f"{8 * width}-bit, {rate} Hz (convert it: sox IN -r 8000 -c 1 -b 16 OUT.wav)"
                )
            if frames < rate // 2 or frames > MAX_FILE_S * rate:
                raise HoldAudioError(f"{where}: must last between 0.5 s and {MAX_FILE_S:.0f} s")
            pcm = wav.readframes(frames)
    except FileNotFoundError as error:
        raise HoldAudioError(f"{where}: no such file") from error
    except (wave.Error, EOFError, OSError) as error:
        raise HoldAudioError(f"{where}: not a readable WAV file ({error})") from error
    samples = np.frombuffer(pcm, dtype="<i2")
    if len(samples) == 0 or int(np.max(np.abs(samples.astype(np.int32)))) < 64:
        raise HoldAudioError(f"{where}: is silent")
    return pcm, rate
