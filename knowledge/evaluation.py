"""Evaluation of retrieval and answers on a question set (``knowledge/eval/questions.yaml``).

Each item: ``{question, expected: [page ids], action: answer|redirect|emergency|out_of_scope, facts: [...]}``;
a *fact item* (``knowledge/eval/facts*.yaml``) also has ``fact_type`` (what is asked: cost, duration, ...),
``fact`` (a pattern for the asked fact) and optionally ``before`` (earlier caller turns of the same call).
The numbers answer the questions a town asks before switching the bot on:

* recall@1 / recall@3 — for answer/redirect items, is an expected page among the first k retrieved pages?
* action accuracy — did the bot do the right thing? (out_of_scope is right when it clarifies or hands off;
  off_topic — clear words about something a town does not handle — only when it says what the hotline is for
  or hands off: a "please rephrase" is wrong there)
* answer accuracy — right action *and* an expected page cited (answer/redirect items)
* groundedness — of the spoken answers, how many state only facts (numbers, fees, times, dates, weekdays) that
  are in the cited pages; ``ungrounded`` counts the others and must be 0
* fact recall — share of the items' expected facts that the spoken answer contains
* refusal rate — share of out-of-scope questions the bot did not answer
* fact accuracy — of the fact items, the share whose spoken answer contains the asked fact and cites its page
* wrong-fact rate — of the fact items, the share answered with another value of the asked kind (a fee that is not
  the asked fee, the other "Ja/Nein")
* unknown rate — of the fact items, the share where the bot said it does not know and offered the hand-off
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge import phrases, verify
from knowledge.extractive import Retriever
from knowledge.textfold import fold_text
from knowledge.types import Action, Answer, AnswerEngine, AnswerRequest, Chunk, Turn

DEFAULT_SET = Path(__file__).resolve().parent / "eval" / "questions.yaml"
ITEM_ACTIONS = ("answer", "redirect", "emergency", "out_of_scope", "off_topic")

FACT_TYPES = (
    "cost",
    "duration",
    "deadline",
    "hours",
    "place",
    "contact",
    "documents",
    "eligibility",
    "responsible",
    "howto",
    "yesno",
)


class EvalSetError(ValueError):
    """The question file cannot be used (one line saying where and why)."""


@dataclass(frozen=True)
class EvalItem:
    question: str
    action: str
    expected: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    note: str = ""
    fact_type: str = ""  # fact items: what the caller asks for (one of FACT_TYPES)
    fact: str = ""  # fact items: regular expression for the asked fact (matched on folded text)
    before: tuple[str, ...] = ()  # earlier caller turns of the same call, asked first

    @property
    def is_fact_item(self) -> bool:
        return bool(self.fact)


def load_eval_set(path: Path) -> list[EvalItem]:
    """Read and check a question set; raises :class:`EvalSetError` naming the first bad item."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalSetError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise EvalSetError(f"{path} is not valid YAML: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("questions", data.get("items"))
    if not isinstance(data, list) or not data:
        raise EvalSetError(f"{path} must be a non-empty list of {{question, expected, action, facts}} items")
    items: list[EvalItem] = []
    for number, raw in enumerate(data, start=1):
        if not isinstance(raw, dict) or not str(raw.get("question", "")).strip():
            raise EvalSetError(f"{path}: item {number} has no 'question'")
        action = str(raw.get("action", "answer"))
        if action not in ITEM_ACTIONS:
            raise EvalSetError(f"{path}: item {number} has action {action!r}; use one of {ITEM_ACTIONS}")
        expected = raw.get("expected") or []
        if isinstance(expected, str):
            expected = [expected]
        expected = [e for e in expected if e not in ITEM_ACTIONS]
        if action in ("answer", "redirect") and not expected:
            raise EvalSetError(f"{path}: item {number} ({action}) needs 'expected' page ids")
        facts = raw.get("facts") or []
        fact, fact_type = str(raw.get("fact") or ""), str(raw.get("fact_type") or "")
        if fact or fact_type:
            if fact_type not in FACT_TYPES:
                raise EvalSetError(
                    f"{path}: item {number} has fact_type {fact_type!r}; use one of {FACT_TYPES}"
                )
            try:
                re.compile(fold_text(fact))
            except re.error as exc:
                raise EvalSetError(f"{path}: item {number} has a bad fact pattern: {exc}") from exc
            if not fact or not expected:
                raise EvalSetError(f"{path}: item {number} (fact item) needs 'fact' and 'expected'")
        before = raw.get("before") or []
        items.append(
            EvalItem(
                question=str(raw["question"]),
                action=action,
                expected=tuple(str(e) for e in expected),
                facts=tuple(str(f) for f in (facts if isinstance(facts, list) else [facts])),
                note=str(raw.get("note") or ""),
                fact_type=fact_type,
                fact=fact,
                before=tuple(str(b) for b in (before if isinstance(before, list) else [before])),
            )
        )
    return items


@dataclass
class ItemResult:
    question: str
    expected_action: str
    expected: list[str]
    action: str
    answer: str
    sources: list[str]
    confidence: float
    reason: str
    retrieved: list[str]
    action_correct: bool
    answer_correct: bool
    grounded: bool | None  # None: nothing factual was spoken (no answer/redirect)
    unsupported: list[str] = field(default_factory=list)
    facts_found: int = 0
    facts_total: int = 0
    total_ms: float = 0.0
    fact_type: str = ""
    fact_correct: bool | None = None  # None: no fact item
    fact_wrong: bool = False
    fact_unknown: bool = False


@dataclass
class EvalReport:
    items: int
    recall_at_1: float
    recall_at_3: float
    action_accuracy: float
    answer_accuracy: float
    groundedness: float
    ungrounded: int
    fact_recall: float
    refusal_rate: float
    emergency_recall: float
    by_action: dict[str, dict[str, float]]
    mean_ms: float
    results: list[ItemResult]
    fact_items: int = 0
    fact_accuracy: float | None = None  # None when the set has no fact items
    wrong_fact_rate: float | None = None
    unknown_rate: float | None = None
    fact_by_type: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self, with_items: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not with_items:
            data.pop("results")
        return data

    def failures(self) -> list[ItemResult]:
        return [r for r in self.results if not r.action_correct or r.grounded is False]

    def fact_failures(self) -> list[ItemResult]:
        """Fact items whose answer lacks the asked fact (wrong facts first, then the rest)."""
        missed = [r for r in self.results if r.fact_correct is False]
        return sorted(missed, key=lambda r: not r.fact_wrong)


def _action_correct(expected: str, answer: Answer) -> bool:
    got = answer.action
    if expected == "out_of_scope":
        return got in (Action.HANDOFF, Action.CLARIFY)
    if expected == "off_topic":
        # Asking to say it again is wrong for an off-topic question: the caller was understood.
        return got == Action.HANDOFF or (got == Action.CLARIFY and not phrases.asks_to_repeat(answer.text))
    return got.value == expected


def _source_text(chunk_ids: Sequence[str], all_chunks: Sequence[Chunk]) -> list[str]:
    """Everything the cited pages say (every chunk of each cited page, curated answer included)."""
    doc_ids = {c.split("#", 1)[0] for c in chunk_ids}
    texts = []
    for chunk in all_chunks:
        if chunk.doc_id in doc_ids:
            texts.append("\n".join((chunk.title, chunk.spoken_answer, chunk.authority, chunk.text)))
    return texts


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 4) if denominator else 1.0


async def evaluate(
    items: Sequence[EvalItem],
    engine: AnswerEngine,
    retriever: Retriever,
    chunks: Sequence[Chunk],
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run every item through retrieval and the engine; ``chunks`` are all indexed chunks (for groundedness)."""
    results: list[ItemResult] = []
    for number, item in enumerate(items, start=1):
        history: list[Turn] = []
        for earlier in item.before:  # a dialogue: the earlier turns are asked first, their answers kept
            reply = await engine.answer(AnswerRequest(earlier, history=tuple(history)))
            history += [Turn("caller", earlier), Turn("bot", reply.text)]
        retrieved = [h.chunk.doc_id for h in retriever.search(item.question, 3)]
        started = time.perf_counter()
        answer: Answer = await engine.answer(AnswerRequest(item.question, history=tuple(history)))
        elapsed_ms = (time.perf_counter() - started) * 1000
        results.append(score_item(item, answer, retrieved, chunks, elapsed_ms))
        if progress:
            progress(number, len(items))
    return summarize(results)


def score_item(
    item: EvalItem, answer: Answer, retrieved: list[str], chunks: Sequence[Chunk], elapsed_ms: float = 0.0
) -> ItemResult:
    """Judge one answer: right action, right page, facts found, and every spoken fact in the cited pages."""
    cited_docs = {s.split("#", 1)[0] for s in answer.sources}
    action_correct = _action_correct(item.action, answer)
    spoke_facts = answer.action in (Action.ANSWER, Action.REDIRECT)
    grounded: bool | None = None
    unsupported: list[str] = []
    found = 0
    if spoke_facts:
        sources = _source_text(answer.sources, chunks)
        unsupported = verify.unsupported_facts(answer.text, sources) if sources else ["no_sources"]
        source_blob = "\n".join(sources)
        for fact in item.facts:
            if verify.contains_fact(answer.text, fact):
                found += 1
                if not verify.contains_fact(source_blob, fact):
                    unsupported.append(f"fact:{fact}")
        grounded = not unsupported
    fact_correct: bool | None = None
    fact_wrong = fact_unknown = False
    if item.is_fact_item:
        fact_unknown = said_unknown(answer)
        fact_correct = not fact_unknown and spoke_facts and bool(cited_docs & set(item.expected))
        fact_correct = fact_correct and states_fact(answer.text, item.fact)
        fact_wrong = not fact_correct and not fact_unknown and spoke_facts
        fact_wrong = fact_wrong and not states_fact(answer.text, item.fact)  # right value, other page: a miss
        fact_wrong = fact_wrong and states_other_value(answer.text, item.fact_type, item.fact)
    return ItemResult(
        question=item.question,
        expected_action=item.action,
        expected=list(item.expected),
        action=answer.action.value,
        answer=answer.text,
        sources=list(answer.sources),
        confidence=answer.confidence,
        reason=answer.reason,
        retrieved=retrieved,
        action_correct=action_correct,
        answer_correct=action_correct and bool(cited_docs & set(item.expected)),
        grounded=grounded,
        unsupported=unsupported,
        facts_found=found,
        facts_total=len(item.facts) if item.action in ("answer", "redirect") else 0,
        total_ms=round(elapsed_ms, 2),
        fact_type=item.fact_type,
        fact_correct=fact_correct,
        fact_wrong=fact_wrong,
        fact_unknown=fact_unknown,
    )


# ---- fact items: is the asked fact said, or another value of its kind, or "not known"?
_DIGIT_GAP = re.compile(r"(?<=\d)[ ,/–-]+(?=\d)")


def _squeeze_digits(text: str) -> str:
    """Digits with only spaces, commas or dashes between them joined: a phone number spoken digit by digit."""
    return _DIGIT_GAP.sub("", text)


def states_fact(answer_text: str, pattern: str) -> bool:
    """Does the answer state the fact? ``pattern`` is searched in the folded answer, then with digits joined."""
    folded, folded_pattern = fold_text(answer_text), fold_text(pattern)
    if re.search(folded_pattern, folded):
        return True
    try:
        return bool(re.search(_squeeze_digits(folded_pattern), _squeeze_digits(folded)))
    except re.error:  # joining digits inside a character class or repetition can break a pattern
        return False


_AMOUNT = r"\d[\d.,]*\s*(?:euro|prozent)|kostenlos|gebuhrenfrei|beitragsfrei|\bfrei\b|gratis|umsonst"
_SPAN = r"\b(?:\d+|ein|eine|einen|einem|zwei|drei|vier|wenige[n]?|einige[n]?)\s+(?:werk)?(?:tag|woche|monat|jahr|stunde|minute)"
_CLOCK = r"\b\d{1,2}(?:[:.]\d{2})?\s*uhr\b"
_DAY = r"\b(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|wochenende)s?\b"
_DATE = (
    r"\b\d{1,2}\.\s*(?:januar|februar|marz|april|mai|juni|juli|august|september|oktober|november|dezember)"
)
_MONTH = r"\b(?:januar|februar|marz|april|mai|juni|juli|august|september|oktober|november|dezember)\b"
_KIND_VALUES = {
    "cost": _AMOUNT,
    "duration": rf"{_SPAN}|\bsofort\b",
    "deadline": rf"{_SPAN}|{_CLOCK}|{_DATE}|\bsofort\b",
    "hours": rf"{_CLOCK}|{_DAY}|{_DATE}|{_MONTH}|\balle \d+ wochen\b|\bjede woche\b",
    "place": r"(?:strasse|weg|platz|allee|gasse)\s+\d+|\bzimmer\s+\d+|\d\.\s*etage|erdgeschoss|\bam bahnhof\b",
    "contact": r"\b0\d[\d ,/-]{5,}\d|@|\b116 116\b",
}
_UNKNOWN_REASONS = ("fact_unknown",)


def said_unknown(answer: Answer) -> bool:
    """The bot said it does not know (the fact engine's "not known" answer, or a hand-off for lack of an answer)."""
    return answer.reason.startswith(_UNKNOWN_REASONS) or answer.action == Action.HANDOFF


def states_other_value(answer_text: str, fact_type: str, pattern: str) -> bool:
    """Does the answer state a value of the asked kind (a fee, a time, a phone number ...) that is not the fact?

    For yes/no items: the other "Ja"/"Nein" first. Kinds without a checkable value (documents, how-to, ...) never
    count as wrong facts; an answer without the fact is then only missed.
    """
    folded = fold_text(answer_text)
    if fact_type == "yesno":
        expected = re.match(r"\^(ja|nein)", fold_text(pattern))
        said = re.match(r"(ja|nein)\b", folded)
        return bool(expected and said and expected.group(1) != said.group(1))
    kind = _KIND_VALUES.get(fact_type)
    return bool(kind and re.search(kind, folded))


def summarize(results: Sequence[ItemResult]) -> EvalReport:
    retrieval_items = [r for r in results if r.expected_action in ("answer", "redirect")]
    at1 = sum(1 for r in retrieval_items if set(r.retrieved[:1]) & set(r.expected))
    at3 = sum(1 for r in retrieval_items if set(r.retrieved[:3]) & set(r.expected))
    spoken = [r for r in results if r.grounded is not None]
    out_of_scope = [r for r in results if r.expected_action in ("out_of_scope", "off_topic")]
    emergencies = [r for r in results if r.expected_action == "emergency"]
    by_action: dict[str, dict[str, float]] = {}
    for action in ITEM_ACTIONS:
        group = [r for r in results if r.expected_action == action]
        if group:
            by_action[action] = {
                "items": len(group),
                "action_accuracy": _ratio(sum(r.action_correct for r in group), len(group)),
            }
    facts_total = sum(r.facts_total for r in retrieval_items)
    facts_found = sum(r.facts_found for r in retrieval_items if r.facts_total)
    fact_items = [r for r in results if r.fact_correct is not None]
    fact_by_type: dict[str, dict[str, float]] = {}
    for fact_type in FACT_TYPES:
        group = [r for r in fact_items if r.fact_type == fact_type]
        if group:
            fact_by_type[fact_type] = {
                "items": len(group),
                "fact_accuracy": _ratio(sum(bool(r.fact_correct) for r in group), len(group)),
                "wrong": sum(r.fact_wrong for r in group),
                "unknown": sum(r.fact_unknown for r in group),
            }
    return EvalReport(
        items=len(results),
        recall_at_1=_ratio(at1, len(retrieval_items)),
        recall_at_3=_ratio(at3, len(retrieval_items)),
        action_accuracy=_ratio(sum(r.action_correct for r in results), len(results)),
        answer_accuracy=_ratio(sum(r.answer_correct for r in retrieval_items), len(retrieval_items)),
        groundedness=_ratio(sum(1 for r in spoken if r.grounded), len(spoken)),
        ungrounded=sum(1 for r in spoken if not r.grounded),
        fact_recall=_ratio(facts_found, facts_total),
        refusal_rate=_ratio(sum(r.action_correct for r in out_of_scope), len(out_of_scope)),
        emergency_recall=_ratio(sum(r.action_correct for r in emergencies), len(emergencies)),
        by_action=by_action,
        mean_ms=round(sum(r.total_ms for r in results) / len(results), 2) if results else 0.0,
        results=list(results),
        fact_items=len(fact_items),
        fact_accuracy=_ratio(sum(bool(r.fact_correct) for r in fact_items), len(fact_items))
        if fact_items
        else None,
        wrong_fact_rate=_ratio(sum(r.fact_wrong for r in fact_items), len(fact_items))
        if fact_items
        else None,
        unknown_rate=_ratio(sum(r.fact_unknown for r in fact_items), len(fact_items)) if fact_items else None,
        fact_by_type=fact_by_type,
    )
