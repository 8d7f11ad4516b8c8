"""The knowledge-gap report (issue 11, "Knowledge-gap report"; decision 0950): the callers' questions the bot could
not answer well, grouped by meaning and ranked by how many calls asked — the knowledge-base editor's to-do list.

A caller turn counts as a gap when the bot's next turn with an action (its answer to it) shows one of:

- ``unbekannt``: the page is known but not the asked fact (engine reason ``fact_unknown…``) or the question is
  outside what the knowledge base covers (``out_of_scope``);
- ``rueckfrage``: the bot asked back (action ``clarify``) — not when it only misheard (``low_asr``,
  ``misheard_repeat``, ``confirm_declined``: an acoustic problem, no gap in the pages);
- ``uebergabe``: the bot handed off (action ``handoff``) — not when the caller asked for a person;
- ``unsicher``: it answered with a confidence below ``handoff.min_answer_confidence``.

- ``korrektur``: a supervisor drafted a correction of that bot turn (status ``draft``: the answer was wrong or
  missed something, and the knowledge base does not know better yet).

A question whose bot turn has an applied correction (status ``approved``, :mod:`voicebot.staff.corrections`) is no
longer a gap: the editor has answered it (a reverted correction makes it one again).

Calls of citizens only (SIP and browser; simulations are tests). At most :data:`MAX_QUESTIONS` questions, the
newest first, so a page request stays bounded. Each question is embedded with e5 (query side, as callers' questions
are at retrieval; vectors kept in a bounded in-process cache) and the questions are grouped greedily, newest first:
a question joins the group whose centroid is most similar if the cosine is at least :data:`SIMILARITY`, else it
starts a group. Deterministic for the same rows. The pages that came closest are the index's passages most similar
to the group's centroid (best passage per page).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from voicebot.db import rows
from voicebot.db.models import Correction
from voicebot.staff import figures

# Cosine (e5-small, query side) from which two questions are taken for the same topic. Measured on German
# callers' questions: two wordings of one matter 0.88–0.93, different matters 0.77–0.87 (decision 0950).
SIMILARITY = 0.88
MAX_QUESTIONS = 1000  # ≈ 30 ms of e5 per question not seen before (2 cores): ≤ 30 s once, then cached
MAX_EXAMPLES = 3
MAX_PAGES = 3
MAX_QUESTION_CHARS = 300  # what is embedded and shown of one question
CACHE_SIZE = 5000
DIM = 384  # e5-small (knowledge.embeddings.DIM; not imported here: the model loads on first use)
ACOUSTIC_REASONS = frozenset({"low_asr", "misheard_repeat", "confirm_declined"})
CALLER_ASKED_REASONS = frozenset({"human_requested", "handoff_accepted"})
UNKNOWN_REASONS = ("fact_unknown", "out_of_scope")
KINDS = {
    "unbekannt": "Nicht in der Wissensbasis",
    "rueckfrage": "Rückfrage",
    "uebergabe": "Übergabe an Mitarbeitende",
    "unsicher": "Antwort unsicher",
    "korrektur": "Korrektur beantragt",
}

CALLS, TURNS = rows.CALLS, rows.TURNS


@dataclass(frozen=True)
class Question:
    call_id: str
    started_at: float
    text: str
    kind: str  # a key of KINDS


@dataclass(frozen=True)
class PageHint:
    doc_id: str
    title: str
    similarity: float


@dataclass
class GapGroup:
    calls: int
    questions: int
    examples: list[str]
    kinds: dict[str, int]
    last_asked: float
    pages: list[PageHint] = field(default_factory=list)


@dataclass(frozen=True)
class GapReport:
    start: date
    end: date
    considered: int  # questions grouped
    truncated: bool  # more than MAX_QUESTIONS in the period: the oldest were left out
    groups: list[GapGroup]

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "timezone": str(figures.BERLIN),
            "similarity": SIMILARITY,
            "questions": self.considered,
            "truncated": self.truncated,
            "groups": [
                {
                    "calls": g.calls,
                    "questions": g.questions,
                    "examples": g.examples,
                    "kinds": g.kinds,
                    "last_asked": datetime.fromtimestamp(g.last_asked, figures.BERLIN).isoformat(
                        timespec="seconds"
                    ),
                    "closest_pages": [
                        {"id": p.doc_id, "title": p.title, "similarity": round(p.similarity, 3)}
                        for p in g.pages
                    ],
                }
                for g in self.groups
            ],
        }


def gap_kind(answer: dict[str, Any], min_answer_confidence: float) -> str | None:
    """Why the bot turn ``answer`` (its stored data) makes the question before it a gap; None if it does not."""
    action = str(answer.get("action") or "")
    reason = str(answer.get("reason") or "")
    if reason.startswith(UNKNOWN_REASONS):
        return "unbekannt"
    if action == "clarify":
        return None if reason in ACOUSTIC_REASONS else "rueckfrage"
    if action == "handoff":
        return None if reason in CALLER_ASKED_REASONS else "uebergabe"
    confidence = answer.get("confidence")
    if action in ("answer", "redirect") and isinstance(confidence, int | float):
        return "unsicher" if confidence < min_answer_confidence else None
    return None


def questions_of_call(
    call_id: str,
    started_at: float,
    turns: Sequence[tuple[str, str, dict[str, Any]]],
    min_conf: float,
    corrected: frozenset[int] = frozenset(),
    drafted: frozenset[int] = frozenset(),
) -> list[Question]:
    """The gap questions of one call from its turns (role, text, data) in order; ``corrected``: the indexes of
    the bot turns with an applied correction (their questions are no gap), ``drafted``: those with a draft."""
    found = []
    for i, (role, text, _data) in enumerate(turns):
        said = " ".join((text or "").split())[:MAX_QUESTION_CHARS]
        if role != "caller" or not said:
            continue
        for j, (later_role, _text, data) in enumerate(turns[i + 1 :], start=i + 1):
            if later_role == "caller":
                break
            if later_role == "bot" and isinstance(data, dict) and data.get("action"):
                kind = "korrektur" if j in drafted else gap_kind(data, min_conf)
                if kind is not None and j not in corrected:
                    found.append(Question(call_id, started_at, said, kind))
                break
    return found


def load(engine: Engine, start: date, end: date, min_answer_confidence: float) -> tuple[list[Question], bool]:
    """The gap questions of the period, newest call first, at most :data:`MAX_QUESTIONS` (and whether more were
    there). Turns are streamed call by call; reading stops once enough questions are found."""
    first, after = figures.period_bounds(start, end)
    query = (
        select(CALLS.c.call_id, CALLS.c.started_at, TURNS.c.idx, TURNS.c.role, TURNS.c.text, TURNS.c.data)
        .join(TURNS, TURNS.c.call_id == CALLS.c.call_id)
        .where(
            CALLS.c.started_at >= first,
            CALLS.c.started_at < after,
            CALLS.c.simulated.is_(False),
            CALLS.c.channel.in_(["sip", "webrtc"]),
            TURNS.c.role.in_(["caller", "bot"]),
        )
        .order_by(CALLS.c.started_at.desc(), CALLS.c.call_id.desc(), TURNS.c.idx)
    )
    found: list[Question] = []
    truncated = False
    with engine.connect() as connection:
        applied: dict[str, set[int]] = {}
        drafts: dict[str, set[int]] = {}
        for corrected_call, turn_index, status in connection.execute(
            select(Correction.call_id, Correction.turn_index, Correction.status).where(
                Correction.status.in_(["approved", "draft"])
            )
        ):
            (applied if status == "approved" else drafts).setdefault(corrected_call, set()).add(
                int(turn_index)
            )
        result = connection.execution_options(stream_results=True, yield_per=500).execute(query)
        current: tuple[str, float] | None = None
        turns: list[tuple[str, str, dict[str, Any]]] = []

        def flush() -> None:
            if current is not None:
                corrected = frozenset(applied.get(current[0], ()))
                drafted = frozenset(drafts.get(current[0], ()))
                found.extend(
                    questions_of_call(
                        current[0], current[1], turns, min_answer_confidence, corrected, drafted
                    )
                )

        for call_id, started_at, idx, role, text, data in result:
            if current is None or current[0] != call_id:
                flush()
                if len(found) >= MAX_QUESTIONS:
                    truncated = True
                    break
                current, turns = (call_id, float(started_at)), []
            while len(turns) < idx:  # keep positions = turn indexes (what a correction names)
                turns.append(("", "", {}))
            turns.append((role, text, data if isinstance(data, dict) else {}))
        else:
            flush()
        result.close()
    if len(found) > MAX_QUESTIONS:
        found, truncated = found[:MAX_QUESTIONS], True
    return found, truncated


class QueryVectors:
    """e5 query vectors of question texts, kept for the next request (bounded, least recently used out). Keyed by
    the text's SHA-256, so the cache holds no caller's words (an erased call's text is not kept in memory)."""

    def __init__(self, embed: Callable[[str], np.ndarray] | None = None, size: int = CACHE_SIZE) -> None:
        self._embed = embed
        self._size = size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            key = hashlib.sha256(text.encode()).hexdigest()
            with self._lock:
                vector = self._cache.get(key)
                if vector is not None:
                    self._cache.move_to_end(key)
            if vector is None:
                vector = self._compute(text)
                with self._lock:
                    self._cache[key] = vector
                    while len(self._cache) > self._size:
                        self._cache.popitem(last=False)
            out[i] = vector
        return out

    def _compute(self, text: str) -> np.ndarray:
        if self._embed is None:
            from knowledge.embeddings import embed_query

            return embed_query(text, threads=1)
        return self._embed(text)


VECTORS = QueryVectors()  # process-wide: the console's page and the CLI


def cluster(vectors: np.ndarray, threshold: float = SIMILARITY) -> list[list[int]]:
    """Greedy grouping in the given order: each row joins the most similar group centroid with cosine ≥
    ``threshold``, else starts a group. Rows are L2-normalised; returns the rows of each group."""
    groups: list[list[int]] = []
    sums = np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else DIM), dtype=np.float64)
    for i, vector in enumerate(vectors):
        if groups:
            norms = np.linalg.norm(sums, axis=1)
            similarity = (sums @ vector) / np.where(norms > 0, norms, 1.0)
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                groups[best].append(i)
                sums[best] += vector
                continue
        groups.append([i])
        sums = np.vstack([sums, vector.astype(np.float64)])
    return groups


def closest_pages(centroid: np.ndarray, index: Any, limit: int = MAX_PAGES) -> list[PageHint]:
    """The pages whose best passage is most similar to ``centroid`` (a :class:`knowledge.index.KnowledgeIndex`)."""
    if index is None or not len(index.chunks):
        return []
    similarity = index.embeddings @ centroid.astype(np.float32)
    best: dict[str, tuple[float, str]] = {}
    for row in np.argsort(-similarity, kind="stable"):
        chunk = index.chunks[int(row)]
        if chunk.doc_id not in best:
            best[chunk.doc_id] = (float(similarity[row]), chunk.title)
            if len(best) >= limit:
                break
    return [PageHint(doc_id, title, score) for doc_id, (score, title) in best.items()]


def compute(
    questions: Sequence[Question],
    *,
    start: date,
    end: date,
    truncated: bool = False,
    index: Any = None,
    vectors: Callable[[Sequence[str]], np.ndarray] = VECTORS,
) -> GapReport:
    """Group ``questions`` (newest first) by meaning and rank the groups by distinct calls, then questions."""
    if not questions:
        return GapReport(start, end, 0, truncated, [])
    matrix = vectors([q.text for q in questions])
    groups = []
    for members in cluster(matrix):
        asked = [questions[i] for i in members]
        examples: list[str] = []
        seen: set[str] = set()
        for question in asked:
            key = question.text.casefold().strip(" ?.!")
            if key not in seen and len(examples) < MAX_EXAMPLES:
                seen.add(key)
                examples.append(question.text)
        kinds: dict[str, int] = {}
        for question in asked:
            kinds[question.kind] = kinds.get(question.kind, 0) + 1
        centroid = matrix[members].mean(axis=0)
        norm = float(np.linalg.norm(centroid))
        groups.append(
            GapGroup(
                calls=len({q.call_id for q in asked}),
                questions=len(asked),
                examples=examples,
                kinds=dict(sorted(kinds.items())),
                last_asked=max(q.started_at for q in asked),
                pages=closest_pages(centroid / norm if norm else centroid, index),
            )
        )
    groups.sort(key=lambda g: (-g.calls, -g.questions, -g.last_asked, g.examples[0]))
    return GapReport(start, end, len(questions), truncated, groups)


def open_index(index_dir: Any) -> Any:
    """The knowledge index for the closest pages (None when there is none yet)."""
    from knowledge.index import KnowledgeIndex

    try:
        return KnowledgeIndex.open(index_dir)
    except (OSError, ValueError):
        return None


def report(
    engine: Engine, start: date, end: date, *, min_answer_confidence: float, index: Any = None
) -> GapReport:
    questions, truncated = load(engine, start, end, min_answer_confidence)
    return compute(questions, start=start, end=end, truncated=truncated, index=index)


def render(result: GapReport, limit: int = 30) -> str:
    """The report as German text (the first ``limit`` groups)."""
    lines = [
        f"Wissenslücken {result.start:%d.%m.%Y} bis {result.end:%d.%m.%Y}: {result.considered} Fragen ohne gute "
        f"Antwort in {len(result.groups)} Themen (Europe/Berlin)"
    ]
    if result.truncated:
        lines.append(f"(nur die neuesten {MAX_QUESTIONS} Fragen ausgewertet)")
    if not result.groups:
        lines.append("(keine)")
    for n, group in enumerate(result.groups[:limit], 1):
        kinds = ", ".join(f"{KINDS[k]} {v}" for k, v in group.kinds.items())
        lines += ["", f"{n}. {group.calls} Anrufe, {group.questions} Fragen ({kinds})"]
        lines += [f"   „{example}“" for example in group.examples]
        if group.pages:
            pages = "; ".join(f"{p.title} ({p.doc_id}, {p.similarity:.2f})" for p in group.pages)
            lines.append(f"   Nächste Seiten: {pages}")
    if len(result.groups) > limit:
        lines += ["", f"… und {len(result.groups) - limit} weitere Themen (--json zeigt alle)"]
    return "\n".join(lines)
