"""espeak-ng speech synthesis, in-process through ctypes, with the Debian binary as a fallback.

Why in-process: starting an ``espeak-ng`` process costs tens of milliseconds per sentence and its ``--stdout``
WAV arrives only when the whole sentence is done. The library (shipped with data, including ``de_dict``, by the
``espeakng-loader`` wheel) hands out PCM in small blocks through a synth callback while it works, so the first
chunk of a sentence is ready after a few milliseconds.

libespeak-ng keeps ONE global synthesizer per process (voice and rate are global state), so every synthesis
holds :data:`_ENGINE_LOCK`; espeak is ~50x faster than real time, so calls queue only briefly.
"""

from __future__ import annotations

import ctypes
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_BUFFER_MS = 60  # size of the blocks the synth callback receives
_ENGINE_LOCK = threading.Lock()

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakUnavailableError(RuntimeError):
    """Neither the espeak-ng library nor the ``espeak-ng`` binary can be used."""


@dataclass(frozen=True)
class EspeakVoice:
    name: str  # espeak voice name, e.g. "de"
    words_per_minute: int = 160


class _EspeakLibrary:
    """The process-wide libespeak-ng, initialised once for synchronous synthesis with a callback."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_dir = Path(espeakng_loader.get_data_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(data_dir.parent).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakUnavailableError(f"espeak_Initialize failed ({rate}) with data at {data_dir}")
        self.sample_rate = int(rate)
        self._sink: queue.SimpleQueue[bytes | None] | None = None
        self._callback = _SynthCallback(self._on_samples)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_samples(self, wav: ctypes._Pointer, num_samples: int, _events: int) -> int:
        if wav and num_samples > 0 and self._sink is not None:
            self._sink.put(ctypes.string_at(wav, num_samples * 2))
        return 0

    def synthesize(self, text: str, voice: EspeakVoice, sink: queue.SimpleQueue[bytes | None]) -> None:
        """Synthesise ``text`` into ``sink`` block by block; puts ``None`` when done (blocking, in a thread)."""
        with _ENGINE_LOCK:
            self._sink = sink
            try:
                if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                    raise EspeakUnavailableError(f"espeak-ng has no voice {voice.name!r}")
                self._lib.espeak_SetParameter(_PARAM_RATE, voice.words_per_minute, 0)
                data = text.encode("utf-8") + b"\0"
                status = self._lib.espeak_Synth(
                    data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                if status != 0:
                    raise EspeakUnavailableError(f"espeak_Synth failed with status {status}")
            finally:
                self._sink = None
                sink.put(None)


class _EspeakBinary:
    """Fallback: the Debian ``espeak-ng`` binary, one process per sentence, WAV on stdout."""

    sample_rate = 22050

    def __init__(self) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise EspeakUnavailableError(
                "neither libespeak-ng (espeakng-loader) nor the espeak-ng binary works"
            )
        self._binary = binary

    def synthesize(self, text: str, voice: EspeakVoice, sink: queue.SimpleQueue[bytes | None]) -> None:
        try:
            result = subprocess.run(
                [self._binary, "-v", voice.name, "-s", str(voice.words_per_minute), "--stdout", text],
                capture_output=True,
                check=True,
                timeout=30,
            )
            sink.put(_pcm_from_wav(result.stdout))
        finally:
            sink.put(None)


def _pcm_from_wav(data: bytes) -> bytes:
    """PCM of espeak's streamed WAV (its header sizes are 0xFFFFFFFF, so the ``wave`` module cannot read it)."""
    marker = data.find(b"data")
    return data[marker + 8 :] if marker >= 0 else b""


_engine: _EspeakLibrary | _EspeakBinary | None = None
_engine_init_lock = threading.Lock()


def espeak_engine() -> _EspeakLibrary | _EspeakBinary:
    """The process-wide espeak engine: the library if it loads, else the binary."""
    global _engine
    with _engine_init_lock:
        if _engine is None:
            try:
                _engine = _EspeakLibrary()
                logger.info(f"espeak-ng: in-process library, {_engine.sample_rate} Hz")
            except (OSError, EspeakUnavailableError, ImportError) as error:
                logger.warning(f"espeak-ng library unusable ({error}); falling back to the espeak-ng binary")
                _engine = _EspeakBinary()
        return _engine


def synthesize_blocks(text: str, voice: EspeakVoice) -> Iterator[bytes]:
    """Synthesise ``text`` and yield 16-bit mono PCM blocks at ``espeak_engine().sample_rate`` (blocking)."""
    engine = espeak_engine()
    sink: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    worker = threading.Thread(target=engine.synthesize, args=(text, voice, sink), daemon=True)
    worker.start()
    while (block := sink.get()) is not None:
        yield block
    worker.join()
