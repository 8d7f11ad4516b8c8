"""Spoken questions end to end: does the bot answer right, confirm first, ask to repeat, or answer wrong?

Each question of an evaluation set (with its expected page) is spoken by espeak-ng German in several voices and
speeds, passed through G.711 µ-law at 8 kHz, transcribed the pipeline's way and answered by the extractive
engine with the recogniser's signals attached. The four shares are what a caller experiences; "answered wrong
without confirmation" is the one that must stay small (issue 9, target ≤ 5 %). The synthesized clips are cached
(8 kHz WAV under ``var/``), so repeated runs only pay for the recogniser.

Also here: how often the recogniser's vocabulary prompt (``asr.initial_prompt``) shows up as words the audio did
not contain, so prompt and no prompt can be compared on the same clips.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel

from knowledge.evaluation import load_eval_set
from knowledge.extractive import ExtractiveAnswerEngine
from knowledge.textfold import fold_text
from knowledge.types import Action, AnswerRequest, AsrSignals
from voicebot.benchmarks.asr import mulaw_roundtrip, normalise_words, transcribe_8k, word_edits
from voicebot.settings import AsrSettings

VOICES = ("de", "de+f2", "de+m3")
SPEEDS = (140, 155, 170, 190)
OUTCOMES = ("right", "confirmed", "repeat", "wrong")
MIN_WORDS = 4


@dataclass(frozen=True)
class SpokenItem:
    question: str
    expected: tuple[str, ...]
    voice: str
    words_per_minute: int


def spoken_items(paths: Sequence[Path], limit: int, *, short: bool = False) -> list[SpokenItem]:
    """``limit`` questions spread evenly over the sets (single-turn, with an expected page, ≥ 4 words; or with
    ``short`` the keyword-like requests of ≤ 3 words), each with the next voice and speed in turn."""
    candidates: list[tuple[str, tuple[str, ...]]] = []
    for path in paths:
        for item in load_eval_set(path):
            single = item.action in ("answer", "redirect") and item.expected and not item.before
            if single and (len(item.question.split()) < MIN_WORDS) == short:
                candidates.append((item.question, item.expected))
    if not candidates:
        return []
    step = max(1.0, len(candidates) / limit)
    chosen = [candidates[int(i * step)] for i in range(min(limit, len(candidates)))]
    return [
        SpokenItem(question, expected, VOICES[i % len(VOICES)], SPEEDS[i % len(SPEEDS)])
        for i, (question, expected) in enumerate(chosen)
    ]


def clip_path(item: SpokenItem, cache_dir: Path) -> Path:
    """Where the clip of ``item`` is cached (named by voice, speed and text)."""
    key = hashlib.sha1(f"{item.voice}|{item.words_per_minute}|{item.question}".encode()).hexdigest()[:16]
    return cache_dir / f"{key}.wav"


def clip_8k(item: SpokenItem, cache_dir: Path) -> np.ndarray:
    """The question as a caller's phone delivers it (espeak-ng → 8 kHz → µ-law round trip), cached."""
    from voicebot.benchmarks.caller_audio import spoken
    from voicebot.simulate import read_wav, write_wav

    path = clip_path(item, cache_dir)
    if path.is_file():
        return read_wav(path)[0]
    pcm = mulaw_roundtrip(
        spoken(item.question, 8000, voice=item.voice, words_per_minute=item.words_per_minute)
    )
    write_wav(path, pcm, 8000)
    return pcm


@dataclass
class SpokenResult:
    item: SpokenItem
    heard: str
    outcome: str  # one of OUTCOMES
    confirmation_right: bool | None  # for "confirmed": was the asked topic the expected page?
    top_right: bool  # would the top page have been right (what answering without the check would have done)
    reason: str
    signals: dict[str, float] = field(default_factory=dict)
    edits: int = 0
    words: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.item.question,
            "voice": f"{self.item.voice}@{self.item.words_per_minute}",
            "heard": self.heard,
            "outcome": self.outcome,
            "confirmation_right": self.confirmation_right,
            "top_right": self.top_right,
            "reason": self.reason,
            "signals": self.signals,
        }


@dataclass
class SpokenReport:
    label: str
    results: list[SpokenResult]
    asr_s: float
    audio_s: float
    prompt_invented: int = 0  # clips whose transcript has a prompt word that the spoken text does not

    def shares(self) -> dict[str, float]:
        counts = Counter(result.outcome for result in self.results)
        total = len(self.results) or 1
        return {outcome: round(counts[outcome] / total, 3) for outcome in OUTCOMES}

    @property
    def wer(self) -> float:
        words = sum(result.words for result in self.results)
        return sum(result.edits for result in self.results) / words if words else 0.0

    @property
    def wrong_without_check(self) -> float:
        """The share answered wrong had the misheard check not been there (its questions answered on the top page)."""
        checked = ("confirm", "misheard_repeat")
        wrong = sum(
            1 for r in self.results if r.outcome == "wrong" or (r.reason in checked and not r.top_right)
        )
        return wrong / len(self.results) if self.results else 0.0

    def to_dict(self, with_items: bool = False) -> dict[str, Any]:
        confirmed = [r for r in self.results if r.outcome == "confirmed"]
        data: dict[str, Any] = {
            "label": self.label,
            "clips": len(self.results),
            "wer": round(self.wer, 3),
            "rtf": round(self.asr_s / self.audio_s, 3) if self.audio_s else 0.0,
            "shares": self.shares(),
            "wrong_without_check": round(self.wrong_without_check, 3),
            "confirmations_right": sum(1 for r in confirmed if r.confirmation_right),
            "confirmations": len(confirmed),
            "prompt_invented": self.prompt_invented,
        }
        if with_items:
            data["items"] = [result.to_dict() for result in self.results]
        return data


def prompt_words(prompt: str) -> frozenset[str]:
    """The prompt's content words (folded; short words like "und" are left out)."""
    return frozenset(word for word in re.findall(r"[a-z]+", fold_text(prompt)) if len(word) >= 4)


def invents_prompt_word(heard: str, said: str, words: frozenset[str]) -> bool:
    """Does the transcript contain a prompt word (as part of a word) that the spoken text does not?"""
    heard_folded, said_folded = fold_text(heard), fold_text(said)
    return any(word in heard_folded and word not in said_folded for word in words)


def outcome_of(
    engine: ExtractiveAnswerEngine, request: AnswerRequest, expected: Sequence[str]
) -> SpokenResult:
    """Answer one heard question and sort the result into the four outcomes (``item``/``heard`` filled later)."""
    retrieval = engine.retrieve_sync(request)
    signals = engine.misheard_signals(request, retrieval)
    answer = engine.decide(request, retrieval)
    doc_ids = [source.split("#", 1)[0] for source in answer.sources]
    top_right = retrieval.top is not None and retrieval.top.doc_id in expected
    right = bool(doc_ids) and doc_ids[0] in expected
    if answer.reason == "confirm":
        outcome, confirmation_right = "confirmed", right
    elif answer.action in (Action.ANSWER, Action.REDIRECT) and doc_ids:
        outcome, confirmation_right = ("right" if right else "wrong"), None
    else:  # clarify, "Meinen Sie A oder B?", hand-off: the caller is asked again, nothing wrong was said
        outcome, confirmation_right = "repeat", None
    return SpokenResult(
        item=SpokenItem("", (), "", 0),
        heard=request.question,
        outcome=outcome,
        confirmation_right=confirmation_right,
        top_right=top_right,
        reason=answer.reason,
        signals={k: round(v, 3) for k, v in vars(signals).items()} if signals else {},
    )


def run_spoken(
    model: WhisperModel,
    asr: AsrSettings,
    engine: ExtractiveAnswerEngine,
    items: Sequence[SpokenItem],
    cache_dir: Path,
    label: str,
) -> SpokenReport:
    """Speak, transcribe and answer every item; returns the outcomes and the recogniser's WER on them."""
    results: list[SpokenResult] = []
    asr_s = audio_s = 0.0
    words = prompt_words(asr.initial_prompt)
    invented = 0
    for item in items:
        pcm = clip_8k(item, cache_dir)
        started = time.perf_counter()
        heard = transcribe_8k(model, asr, pcm, "de")
        asr_s += time.perf_counter() - started
        audio_s += len(pcm) / 8000
        invented += invents_prompt_word(heard.text, item.question, words)
        if heard.text.strip():
            request = AnswerRequest(
                heard.text,
                asr_confidence=heard.confidence,
                asr=AsrSignals(heard.avg_logprob, heard.no_speech_prob),
            )
            result = outcome_of(engine, request, item.expected)
        else:  # nothing heard: the pipeline sends no question, the caller hears nothing and says it again
            result = SpokenResult(SpokenItem("", (), "", 0), "", "repeat", None, False, "nothing_heard")
        result.item = item
        reference, hypothesis = normalise_words(item.question, "de"), normalise_words(heard.text, "de")
        result.words, result.edits = len(reference), word_edits(reference, hypothesis)
        results.append(result)
    return SpokenReport(label, results, asr_s, audio_s, invented)


def run_prompt_invention_on_recordings(
    model: WhisperModel, asr: AsrSettings, language: str, limit: int
) -> tuple[int, int]:
    """Real recordings the German model cannot read as German (asterisk prompts in ``language``, decoded as
    German): (clips whose transcript has a prompt word, clips). Unclear audio is where a prompt gets copied."""
    from voicebot.benchmarks.asr import asterisk_prompts
    from voicebot.simulate import read_wav

    words = prompt_words(asr.initial_prompt)
    invented = clips = 0
    for wav, text in asterisk_prompts(language, limit):
        pcm, rate = read_wav(wav)
        if rate != 8000:
            continue
        heard = transcribe_8k(model, asr, pcm, "de")
        clips += 1
        invented += invents_prompt_word(heard.text, text, words)
    return invented, clips
