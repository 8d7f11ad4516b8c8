"""ASR benchmark: word error rate and real-time factor on real 8 kHz telephone prompts and on German espeak-ng.

Real speech: Debian's asterisk-core-sounds-{en,fr,es,it,ru}-wav (8 kHz prompts recorded for phone systems); the
text of each prompt is in ``/usr/share/doc/asterisk-core-sounds-<lang>/core-sounds-<lang>.txt.gz``. German:
questions of the evaluation set spoken by espeak-ng, passed through a G.711 µ-law 8 kHz round trip. Every clip
takes the pipeline's own path: 8 → 16 kHz with the low-latency resampler, 0.5 s of trailing silence (as the
segmented STT adds), then :func:`voicebot.pipeline.stt.transcribe_pcm` with the phone-audio options.
"""

from __future__ import annotations

import gzip
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

from voicebot.pipeline.audio import LowLatencyResampler
from voicebot.pipeline.frames import AsrResult
from voicebot.pipeline.whisper_decode import transcribe_pcm
from voicebot.settings import AsrSettings

SOUNDS_DIR = Path("/usr/share/asterisk/sounds")
DOC_DIR = Path("/usr/share/doc")
ASTERISK_LANGUAGES = ("en", "fr", "es", "it", "ru")
MIN_WORDS = 4

_NUMBER_WORDS: dict[str, list[str]] = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
    "de": ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn"],
    "fr": ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"],
    "es": ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez"],
    "it": ["zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci"],
    "ru": ["ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять", "десять"],
}


def normalise_words(text: str, language: str) -> list[str]:
    """Lowercase, no punctuation or annotations, small numbers as digits (so "3" and "three" agree)."""
    text = unicodedata.normalize("NFC", text.lower())
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text)  # [pause], (annotations)
    text = text.replace("’", "'")
    words = re.findall(r"[\w']+", text)
    numbers = {word: str(index) for index, word in enumerate(_NUMBER_WORDS.get(language, []))}
    return [numbers.get(word, word).strip("'") for word in words if word.strip("'")]


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


def mulaw_roundtrip(pcm: np.ndarray) -> np.ndarray:
    """G.711 µ-law encode + decode (the codec of a PSTN call)."""
    x = np.clip(pcm.astype(np.float64) / 32768.0, -1.0, 1.0)
    encoded = np.sign(x) * np.log1p(255 * np.abs(x)) / np.log1p(255)
    quantised = np.round(encoded * 127) / 127
    decoded = np.sign(quantised) * ((1 + 255) ** np.abs(quantised) - 1) / 255
    return (decoded * 32767).astype(np.int16)


def asterisk_prompts(language: str, limit: int) -> list[tuple[Path, str]]:
    """(wav, text) of prompts with at least ``MIN_WORDS`` words, in name order, at most ``limit``."""
    texts = DOC_DIR / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"
    if not texts.is_file():
        return []
    prompts: list[tuple[Path, str]] = []
    with gzip.open(texts, "rt", encoding="utf-8-sig", errors="replace") as lines:
        for line in lines:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            wav = SOUNDS_DIR / language / f"{name.strip()}.wav"
            if wav.is_file() and len(normalise_words(text, language)) >= MIN_WORDS:
                prompts.append((wav, text.strip()))
    return sorted(prompts)[:limit]


@dataclass
class LanguageScore:
    language: str
    source: str
    clips: int = 0
    reference_words: int = 0
    edits: int = 0
    audio_s: float = 0.0
    asr_s: float = 0.0
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.edits / self.reference_words if self.reference_words else 0.0

    @property
    def rtf(self) -> float:
        return self.asr_s / self.audio_s if self.audio_s else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "language": self.language,
            "source": self.source,
            "clips": self.clips,
            "words": self.reference_words,
            "wer": round(self.wer, 3),
            "rtf": round(self.rtf, 3),
            "audio_s": round(self.audio_s, 1),
            "examples": self.examples[:3],
        }


def transcribe_8k(model: WhisperModel, asr: AsrSettings, pcm_8k: np.ndarray, language: str) -> AsrResult:
    """One 8 kHz clip the pipeline's way: 8 → 16 kHz (low-latency resampler), 0.5 s silence appended."""
    audio_16k = LowLatencyResampler(16000).resample(pcm_8k, 8000)
    padded = np.concatenate([audio_16k, np.zeros(8000, dtype=np.int16)]).astype(np.float32) / 32768.0
    return transcribe_pcm(model, padded, asr, language)


def _transcribe_8k(
    model: WhisperModel, asr: AsrSettings, pcm_8k: np.ndarray, language: str
) -> tuple[str, float]:
    started = time.perf_counter()
    result = transcribe_8k(model, asr, pcm_8k, language)
    return result.text, time.perf_counter() - started


def _score(score: LanguageScore, reference: str, hypothesis: str, audio_s: float, asr_s: float) -> None:
    ref = normalise_words(reference, score.language)
    hyp = normalise_words(hypothesis, score.language)
    score.clips += 1
    score.reference_words += len(ref)
    score.edits += word_edits(ref, hyp)
    score.audio_s += audio_s
    score.asr_s += asr_s
    if len(score.examples) < 3:
        score.examples.append({"reference": reference, "hypothesis": hypothesis})


def bench_asterisk(model: WhisperModel, asr: AsrSettings, language: str, limit: int) -> LanguageScore:
    from voicebot.simulate import read_wav

    score = LanguageScore(language, "asterisk-core-sounds (real 8 kHz)")
    for wav, text in asterisk_prompts(language, limit):
        pcm, rate = read_wav(wav)
        if rate != 8000:
            continue
        hypothesis, asr_s = _transcribe_8k(model, asr, pcm, language)
        _score(score, text, hypothesis, len(pcm) / rate, asr_s)
    return score


def bench_german_espeak(model: WhisperModel, asr: AsrSettings, phrases: list[str]) -> LanguageScore:
    from voicebot.benchmarks.caller_audio import spoken

    score = LanguageScore("de", "espeak-ng, µ-law 8 kHz round trip")
    for phrase in phrases:
        pcm = mulaw_roundtrip(spoken(phrase, 8000))
        hypothesis, asr_s = _transcribe_8k(model, asr, pcm, "de")
        _score(score, phrase, hypothesis, len(pcm) / 8000, asr_s)
    return score


def german_phrases(limit: int) -> list[str]:
    """German questions of the evaluation set (already written the way callers say them)."""
    import yaml

    from knowledge.evaluation import DEFAULT_SET

    path = DEFAULT_SET
    items = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else []
    phrases = [
        str(item["question"])
        for item in items or []
        if item.get("language", "de") == "de" and item.get("question")
    ]
    return [p for p in phrases if len(p.split()) >= MIN_WORDS][:limit]


def run_asr_bench(model: WhisperModel, asr: AsrSettings, limit: int = 20) -> list[LanguageScore]:
    scores = [bench_german_espeak(model, asr, german_phrases(limit))]
    for language in ASTERISK_LANGUAGES:
        scores.append(bench_asterisk(model, asr, language, limit))
    return [score for score in scores if score.clips]
