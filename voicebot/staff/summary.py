"""The bot's summary of a call for the member of staff who takes it over (issue 10, staff console).

Built from the call's stored record (the transcript dict of :class:`~voicebot.pipeline.transcript.CallTranscript`,
as :meth:`voicebot.db.store.SqlCallRecordStore.get` returns it), without I/O and without a language model:

- the caller's request in one or two sentences (their own questions, quoted);
- what the bot already answered: each answer with the caller's question and the cited pages (title and URL, from
  a lookup the caller of :func:`summarize` passes; the chunk id when the page is unknown);
- what is still open: the question that led to the hand-off and the hand-off reason in German words;
- the caller's number (the queue entry's, else the number of a call-back request in the record).

An LLM-written request text plugs in as ``writer`` (a function of the record and the turn-built summary): its text
is used only when :func:`grounded` finds nothing in it that the turns do not contain (every number, and not
longer than :data:`MAX_WRITTEN_CHARS`); otherwise the turn-built text stays. The embedded default passes none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Record = Mapping[str, Any]

# The hand-off reasons of voicebot.handoff_policy (event handoff_requested), in the words staff read.
REASON_TEXTS = {
    "handoff_key": "Die anrufende Person hat die Taste für eine persönliche Beratung gedrückt.",
    "caller_asked": "Die anrufende Person möchte mit einem Menschen sprechen.",
    "frustration": "Die anrufende Person war mit den Antworten unzufrieden.",
    "repeat_requests": "Die anrufende Person hat die Antworten mehrmals nicht verstanden.",
    "low_confidence": "Der Bot war sich bei der Antwort nicht sicher genug.",
    "engine_handoff": "Der Bot konnte die Frage nicht beantworten.",
    "emergency": "Möglicher Notfall: Der Bot hat auf 112/110 hingewiesen.",
    "redirect": "Eine andere Behörde ist zuständig.",
    "component_failure": "Ein technischer Fehler im Bot.",
}
NO_HANDOFF_TEXT = "Keine Übergabe verzeichnet."
MAX_QUOTE_CHARS = 160  # one quoted caller question in the request sentence
MAX_WRITTEN_CHARS = 400  # an LLM-written request text
ANSWER_ACTIONS = ("answer", "redirect")  # bot turns that told the caller something about their matter


@dataclass(frozen=True)
class SourceRef:
    """A page an answer cited."""

    id: str
    title: str
    url: str = ""


SourceLookup = Callable[[str], SourceRef | None]
"""A cited source id (chunk id) → the page (None when the knowledge base no longer has it)."""

SummaryWriter = Callable[[Record, "CallSummary"], str]
"""The seam for an LLM: the record and the turn-built summary → the caller's request in one or two sentences."""


@dataclass(frozen=True)
class AnsweredItem:
    question: str  # the caller's question the answer followed ("" when none came before it)
    answer: str
    sources: tuple[SourceRef, ...] = ()


@dataclass(frozen=True)
class CallSummary:
    request: str  # the caller's request, one or two sentences
    questions: tuple[str, ...]  # the caller's questions up to the hand-off (all without one), in order
    answered: tuple[AnsweredItem, ...]
    open_question: str  # the question that led to the hand-off ("" when there was none)
    reason: str  # the machine reason of the hand-off ("" without one)
    reason_text: str  # the same in German words
    group: str = ""
    department: str = ""
    caller_number: str = ""
    written_by: str = "turns"  # "turns", or "llm" when a writer's text passed the check
    problems: tuple[str, ...] = field(default=())  # why a writer's text was not used

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, str) else ""


def _quote(text: str) -> str:
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"
    return f"„{text}“"


def _time(item: Mapping[str, Any], key: str) -> float | None:
    value = item.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _dicts(record: Record, key: str) -> list[Mapping[str, Any]]:
    items = record.get(key)
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


def _source(source_id: str, lookup: SourceLookup | None) -> SourceRef:
    found = lookup(source_id) if lookup is not None else None
    return found if found is not None else SourceRef(id=source_id, title=source_id)


def summarize(
    record: Record,
    *,
    sources: SourceLookup | None = None,
    caller_number: str = "",
    writer: SummaryWriter | None = None,
) -> CallSummary:
    """The summary of ``record`` (see the module docstring)."""
    turns = _dicts(record, "turns")
    events = _dicts(record, "events")
    handoff = next((e for e in reversed(events) if e.get("kind") == "handoff_requested"), None)
    handoff_t = _time(handoff, "t") if handoff is not None else None

    questions: list[tuple[int, str]] = []  # (turn index, text)
    answered: list[AnsweredItem] = []
    answered_questions: set[int] = set()
    last_question: tuple[int, str] | None = None
    for index, turn in enumerate(turns):
        text = _text(turn.get("text"))
        if turn.get("role") == "caller" and turn.get("kind") == "question" and text:
            last_question = (index, text)
            questions.append(last_question)
        elif turn.get("role") == "bot" and turn.get("kind") == "answer" and text:
            if str(turn.get("action") or "") not in ANSWER_ACTIONS:
                continue
            cited = turn.get("sources")
            refs = tuple(
                _source(s, sources) for s in (cited if isinstance(cited, list) else []) if isinstance(s, str)
            )
            question = last_question[1] if last_question is not None else ""
            if last_question is not None:
                answered_questions.add(last_question[0])
            answered.append(AnsweredItem(question=question, answer=text, sources=_unique(refs)))

    before_handoff = [
        (index, text)
        for index, text in questions
        if handoff_t is None or (_time(turns[index], "start_s") or 0.0) <= handoff_t
    ]
    reason = str(handoff.get("reason") or "") if handoff is not None else ""
    open_question = ""
    if before_handoff:
        candidates = before_handoff
        if reason == "caller_asked" and len(candidates) > 1:
            candidates = candidates[:-1]  # the last one is the request for a person itself
        unanswered = [text for index, text in candidates if index not in answered_questions]
        open_question = unanswered[-1] if unanswered else candidates[-1][1]

    number = caller_number or next(
        (
            _text(e.get("number"))
            for e in reversed(events)
            if e.get("kind") == "callback_requested" and _text(e.get("number"))
        ),
        "",
    )
    summary = CallSummary(
        # What the caller said after the hand-off (a call-back dialogue, questions while waiting) is in the
        # transcript; the request is what they came with.
        request=_request_text([text for _index, text in before_handoff], open_question),
        questions=tuple(text for _index, text in before_handoff),
        answered=tuple(answered),
        open_question=open_question,
        reason=reason,
        reason_text=(REASON_TEXTS.get(reason, f"Übergabe ({reason}).") if reason else NO_HANDOFF_TEXT),
        group=_text(handoff.get("group")) if handoff is not None else "",
        department=_text(handoff.get("department")) if handoff is not None else "",
        caller_number=number,
    )
    if writer is None:
        return summary
    try:
        written = " ".join(writer(record, summary).split())
    # The model's endpoint is down, slow or answers nonsense: the turns' text stays.
    except Exception as error:
        return CallSummary(**{**_fields(summary), "problems": (f"Fehler: {type(error).__name__}",)})
    problems = grounded(written, record)
    if problems:
        return CallSummary(**{**_fields(summary), "problems": tuple(problems)})
    return CallSummary(**{**_fields(summary), "request": written, "written_by": "llm"})


def _fields(summary: CallSummary) -> dict[str, Any]:
    return {name: getattr(summary, name) for name in summary.__dataclass_fields__}


def _unique(refs: Sequence[SourceRef]) -> tuple[SourceRef, ...]:
    seen: dict[tuple[str, str], SourceRef] = {}
    for ref in refs:
        seen.setdefault((ref.title, ref.url), ref)  # sections of one page count once
    return tuple(seen.values())


def _request_text(questions: Sequence[str], open_question: str) -> str:
    if not questions:
        return "Die anrufende Person hat keine Frage gestellt."
    first = questions[0]
    if len(questions) == 1:
        return f"Die anrufende Person fragte: {_sentence_end(first)}"
    last = open_question if open_question and open_question != first else questions[-1]
    more = len(questions) - 2
    if more > 0:
        between = f"({more} weitere Frage{'n' if more > 1 else ''} dazwischen)."
        return f"Die anrufende Person fragte zuerst: {_quote(first)} {between} Zuletzt: {_sentence_end(last)}"
    return f"Die anrufende Person fragte zuerst: {_sentence_end(first)} Zuletzt: {_sentence_end(last)}"


def _sentence_end(text: str) -> str:
    """The quote, closing the sentence: a quote that ends with ?, ! or . needs no full stop after it."""
    quoted = _quote(text)
    return quoted + ("" if quoted[:-1].rstrip().endswith(("?", "!", ".", "…")) else ".")


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def grounded(text: str, record: Record) -> list[str]:
    """What in a written summary text the call's turns do not back (empty: the text may be shown): it must not
    be empty or longer than :data:`MAX_WRITTEN_CHARS`, and every number in it must occur in a turn."""
    if not text:
        return ["leer"]
    problems = []
    if len(text) > MAX_WRITTEN_CHARS:
        problems.append(f"länger als {MAX_WRITTEN_CHARS} Zeichen")
    spoken = " ".join(_text(turn.get("text")) for turn in _dicts(record, "turns"))
    spoken_numbers = set(_NUMBER.findall(spoken))
    problems.extend(
        f"Zahl {number} kommt im Gespräch nicht vor"
        for number in _NUMBER.findall(text)
        if number not in spoken_numbers
    )
    return problems
