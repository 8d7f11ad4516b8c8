"""The data that crosses module boundaries: knowledge chunks, search hits and answers.

The voice pipeline, the CLI and the evaluation all talk to the answer engine through :class:`AnswerEngine`
only, so that ``llm`` and ``extractive`` modes are interchangeable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Action(StrEnum):
    """What the call should do after this answer."""

    ANSWER = "answer"  # speak the answer
    CLARIFY = "clarify"  # ask the caller to rephrase / pick between topics
    HANDOFF = "handoff"  # transfer to staff
    REDIRECT = "redirect"  # another authority is responsible; say which and how to reach it
    EMERGENCY = "emergency"  # tell the caller to dial 112/110


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage of a knowledge document (a page or a heading section of a long document)."""

    id: str  # stable: "<doc_id>" for the page's lead chunk, "<doc_id>#<n>" for later sections
    doc_id: str
    title: str
    text: str
    spoken_answer: str = ""  # the curated "Telefonantwort", 1–3 sentences; may be empty for imported pages
    department: str = ""
    authority: str = ""  # responsible authority, e.g. "Kreis Musterkreis – Straßenverkehrsamt"
    responsible: bool = True  # False: a page that says which *other* authority is responsible
    source_url: str = ""
    source_path: str = ""
    valid_until: str = ""  # ISO date or ""
    language: str = "de"
    synonyms: tuple[str, ...] = ()
    section: str = ""  # heading path inside the document
    valid_from: str = ""  # ISO date or "": not to be spoken before (imported XZuFi validity)
    areas: tuple[str, ...] = ()  # area keys (XZuFi Gebiet-IDs) the page is valid for; () = everywhere
    contact: str = ""  # how the responsible office is reached (phone, e-mail, opening hours), one line
    catalog_key: str = ""  # the page's key in an outside catalogue, e.g. "leika:99018005012000"
    layer: str = ""  # "base" (imported, shared) or "town" ("" = town): knowledge.layers
    overrides: str = ""  # a town page amending this base page id (knowledge.layers)
    spoken_generated: bool = False  # spoken_answer built by an importer, not written by an editor


@dataclass(frozen=True)
class Hit:
    """A chunk with its fused score and the ranks it had in each retriever (1-based, 0 = not retrieved)."""

    chunk: Chunk
    score: float
    bm25_rank: int = 0
    embedding_rank: int = 0


@dataclass(frozen=True)
class Turn:
    role: str  # "caller" | "bot"
    text: str


@dataclass(frozen=True)
class AsrSignals:
    """What the recogniser knew about a spoken question, for "may it have misheard?" (knowledge.confirm)."""

    min_avg_logprob: float  # lowest average token log-probability over the turn's segments (0 = certain)
    max_no_speech_prob: float  # highest no-speech probability over the turn's segments


@dataclass(frozen=True)
class AnswerRequest:
    question: str
    history: Sequence[Turn] = ()
    language: str = "de"
    asr_confidence: float | None = None  # 0..1 from the ASR, None for typed questions
    asr: AsrSignals | None = None  # spoken questions only


@dataclass
class Answer:
    """The final result of one question."""

    text: str
    action: Action
    confidence: float
    sources: list[str] = field(default_factory=list)  # chunk ids
    mode: str = "extractive"
    language: str = "de"
    reason: str = ""  # short machine-readable why, e.g. "verified", "low_confidence", "injection"
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SentenceEvent:
    """A whole, already verified sentence that may be spoken now."""

    text: str


@dataclass(frozen=True)
class FinalEvent:
    answer: Answer


AnswerEvent = SentenceEvent | FinalEvent


class AnswerEngine(Protocol):
    """Question in, speakable sentences out (streamed), then the final :class:`Answer`."""

    def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]: ...

    async def answer(self, request: AnswerRequest) -> Answer: ...
