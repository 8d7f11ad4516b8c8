"""Decoding one caller utterance with faster-whisper, tuned for phone questions (blocking; called in a thread).

Why not just ``WhisperModel.transcribe``: it always runs Whisper's encoder on a 30 s window (padded), which costs
≈ 620 ms for whisper-base on 2 cores, while a phone question lasts 1–6 s. The encoder runs fine on a shorter
window (the same trick as whisper.cpp's ``audio_ctx``): for an 8 s window it takes ≈ 60–90 ms, and on the real 8 kHz
Asterisk recordings the text is the same (see docs/decisions/0403-whisper-short-window.md). So utterances up to
``MAX_SHORT_WINDOW_S`` are encoded on a window just longer than the audio and decoded with CTranslate2 directly;
longer ones take the standard path. Both use temperature 0 (the fallback loops on µ-law audio), anti-repetition
settings, no conditioning on earlier text, and ``asr.initial_prompt`` (if set) for the default language.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from voicebot.pipeline.frames import AsrResult
from voicebot.settings import AsrSettings

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 100
MAX_SHORT_WINDOW_S = 28
NO_SPEECH_THRESHOLD = 0.6  # with LOGPROB_THRESHOLD: Whisper's own rule for "this was not speech"
LOGPROB_THRESHOLD = -1.0
MIN_DETECTION_PROBABILITY = 0.3
ECHO_LOGPROB = -1.5  # confidence given to a transcript that echoed the prompt (exp(-1.5) ≈ 0.22)

# Whisper's well-known inventions on silence/noise (German subtitling credits and the like).
_HALLUCINATIONS = re.compile(
    r"^\W*(untertitel.*|.*zdf.*|vielen dank (für|fürs) zuschauen.*|thanks? for watching.*|\.+|…)\W*$",
    re.IGNORECASE,
)


def transcribe_pcm(
    model: WhisperModel, audio: np.ndarray, settings: AsrSettings, language: str | None = None
) -> AsrResult:
    """Transcribe 16 kHz float32 mono audio; ``language`` None = pick among ``settings.languages``."""
    return transcribe_batch(model, [audio], settings, language)[0]


def transcribe_batch(
    model: WhisperModel, audios: Sequence[np.ndarray], settings: AsrSettings, language: str | None = None
) -> list[AsrResult]:
    """Transcribe several utterances at once (one per caller, from :mod:`voicebot.pipeline.asr_worker`).

    Utterances with the same encoder window go through Whisper's encoder and decoder as one batch: the decoder
    runs one token step for all of them instead of one per utterance, which is most of what batching saves on a
    CPU. Each result is the one :func:`transcribe_pcm` gives for that utterance alone; ``asr_ms`` is the time
    the batch took (what each caller waited for)."""
    started = time.perf_counter()
    results: list[AsrResult | None] = [None] * len(audios)
    windows: dict[int, list[tuple[int, np.ndarray]]] = {}
    for index, audio in enumerate(audios):
        if settings.adaptive_window and len(audio) <= MAX_SHORT_WINDOW_S * SAMPLE_RATE:
            features = _window_features(model, audio, settings)
            windows.setdefault(features.shape[-1], []).append((index, features))
        else:
            results[index] = _decode_standard(model, audio, settings, language)
    for group in windows.values():
        decoded = _decode_short_windows(
            model, np.stack([features for _index, features in group]), settings, language
        )
        for (index, _features), result in zip(group, decoded, strict=True):
            result.audio_s = len(audios[index]) / SAMPLE_RATE
            results[index] = result
    elapsed_ms = (time.perf_counter() - started) * 1000
    done = [result for result in results if result is not None]
    for result in done:
        result.asr_ms = elapsed_ms
    return done


def _window_features(model: WhisperModel, audio: np.ndarray, settings: AsrSettings) -> np.ndarray:
    """Log-mel features on a window just longer than ``audio`` (at least ``min_window_s``), zero-padded."""
    features = model.feature_extractor(audio)
    frames = features.shape[-1]
    window = min(
        30 * FRAMES_PER_SECOND,
        max(
            settings.min_window_s * FRAMES_PER_SECOND,
            math.ceil(frames / FRAMES_PER_SECOND + 1) * FRAMES_PER_SECOND,
        ),
    )
    features = features[:, :window]
    if features.shape[-1] < window:
        features = np.pad(features, ((0, 0), (0, window - features.shape[-1])))
    return features


def _decode_short_windows(
    model: WhisperModel, features: np.ndarray, settings: AsrSettings, language: str | None
) -> list[AsrResult]:
    """Encode a batch of equal windows ``(n, mels, frames)`` and decode it, one generate per distinct prompt."""
    encoder_output = model.encode(features)
    if language is not None:
        languages: list[tuple[str, float | None]] = [(language, None)] * len(features)
    else:
        detected = model.model.detect_language(encoder_output)  # per item: [("<|de|>", p), ...]
        languages = [
            _choose_language({token[2:-2]: p for token, p in ranked}, settings) for ranked in detected
        ]
    by_language: dict[str, list[int]] = {}
    for index, (code, _probability) in enumerate(languages):
        by_language.setdefault(code, []).append(index)
    results: list[AsrResult | None] = [None] * len(features)
    for code, indices in by_language.items():
        # Prompts differ by language: a mixed batch (language detection on) is decoded per language.
        output = encoder_output if len(by_language) == 1 else model.encode(features[indices])
        for index, result in zip(
            indices, _generate(model, output, len(indices), settings, code), strict=True
        ):
            result.language_probability = languages[index][1]
            results[index] = result
    return [result for result in results if result is not None]


def _generate(
    model: WhisperModel, encoder_output: Any, count: int, settings: AsrSettings, language: str
) -> list[AsrResult]:
    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    vocabulary = settings.initial_prompt.strip() if language == settings.language else ""
    previous = tokenizer.encode(" " + vocabulary) if vocabulary else []
    prompt = model.get_prompt(tokenizer, previous, without_timestamps=True)
    generated = model.model.generate(
        encoder_output,
        [prompt] * count,
        beam_size=settings.beam_size,
        patience=1,
        length_penalty=1,
        repetition_penalty=settings.repetition_penalty,
        no_repeat_ngram_size=settings.no_repeat_ngram_size,
        max_length=model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, (-1,)),
    )
    return [_result(tokenizer, result, vocabulary, language) for result in generated]


def _result(tokenizer: Tokenizer, result: Any, vocabulary: str, language: str) -> AsrResult:
    sequence = result.sequences_ids[0]
    avg_logprob = result.scores[0] * len(sequence) / (len(sequence) + 1)  # as faster-whisper reports it
    text = tokenizer.decode([token for token in sequence if token < tokenizer.eot]).strip()
    not_speech = result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD
    if not_speech or _HALLUCINATIONS.match(text):
        text = ""
    text, echoed = strip_prompt_echo(text, vocabulary)
    if echoed:  # unclear audio: Whisper repeated its prompt; keep what is left, but as uncertain
        avg_logprob = min(avg_logprob, ECHO_LOGPROB)
    return AsrResult(
        text=text,
        language=language,
        avg_logprob=float(avg_logprob),
        no_speech_prob=float(result.no_speech_prob),
        audio_s=0.0,
        asr_ms=0.0,
    )


def _decode_standard(
    model: WhisperModel, audio: np.ndarray, settings: AsrSettings, language: str | None
) -> AsrResult:
    language_probability: float | None = None
    if language is None:
        _best, _probability, all_probabilities = model.detect_language(audio)
        language, language_probability = _choose_language(dict(all_probabilities), settings)
    segments, _info = model.transcribe(
        audio,
        language=language,
        beam_size=settings.beam_size,
        temperature=settings.temperature,
        no_repeat_ngram_size=settings.no_repeat_ngram_size,
        repetition_penalty=settings.repetition_penalty,
        initial_prompt=settings.initial_prompt if language == settings.language else None,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,
    )
    texts: list[str] = []
    weighted_logprob = 0.0
    weight = 0.0
    no_speech = 0.0
    for segment in segments:
        duration = max(0.01, segment.end - segment.start)
        weighted_logprob += segment.avg_logprob * duration
        weight += duration
        no_speech = max(no_speech, segment.no_speech_prob)
        if not _HALLUCINATIONS.match(segment.text.strip()):
            texts.append(segment.text.strip())
    return AsrResult(
        text=" ".join(t for t in texts if t).strip(),
        language=language,
        avg_logprob=weighted_logprob / weight if weight else -10.0,
        no_speech_prob=no_speech,
        audio_s=len(audio) / SAMPLE_RATE,
        asr_ms=0.0,
        language_probability=language_probability,
    )


def strip_prompt_echo(text: str, prompt: str) -> tuple[str, bool]:
    """Remove runs of three or more words copied in order from the prompt (on unclear audio Whisper says e.g.
    "Rathaus Musterstadt, Bürgerbüro"); vocabulary words a caller says stay. Returns (text, echo found)."""
    if not text or not prompt:
        return text, False
    prompt_words = _words(prompt)
    prompt_triples = set(zip(prompt_words, prompt_words[1:], prompt_words[2:], strict=False))
    words = text.split()
    keys = [next(iter(_words(word)), "") for word in words]
    echoed = [False] * len(words)
    for index in range(len(words) - 2):
        if tuple(keys[index : index + 3]) in prompt_triples:
            echoed[index] = echoed[index + 1] = echoed[index + 2] = True
    if not any(echoed):
        return text, False
    kept = " ".join(word for word, copied in zip(words, echoed, strict=True) if not copied).strip(" ,.")
    return (kept or text), True


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _choose_language(probabilities: dict[str, float], settings: AsrSettings) -> tuple[str, float]:
    """The most probable of the configured caller languages; the default language when unsure."""
    allowed = {code: p for code, p in probabilities.items() if code in settings.languages}
    if not allowed:
        return settings.language, 0.0
    code, probability = max(allowed.items(), key=lambda item: item[1])
    if probability < MIN_DETECTION_PROBABILITY:
        return settings.language, probability
    return code, probability
