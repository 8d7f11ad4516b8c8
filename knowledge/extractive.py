"""Extractive answers: speak the asked fact from the best page, or its curated "Telefonantwort", or ask, or
hand off.

This is the embedded default while no instruction-tuned model is configured. It never writes facts of its own:
a question for a detail (a fee, a duration, the documents ...) gets the page's sentence or list item that states
it (:mod:`knowledge.facts`), turned into a spoken sentence without changing a number, or "this detail is not
known" with the offer of a hand-off; a general question gets the page's curated ``spoken_answer`` (or, for
imported pages without one, the page's own first sentences). Every answer is rewritten for the ear
(:mod:`knowledge.spoken`) and checked against its page (:mod:`knowledge.verify`). Whether retrieval is confident
enough to answer is decided in :mod:`knowledge.confidence`; the guard runs first (:mod:`knowledge.guard`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Protocol

import numpy as np

from knowledge import (
    areas,
    confirm,
    days,
    facts,
    freshness,
    guard,
    layers,
    more,
    phrases,
    scope,
    spoken,
    verify,
)
from knowledge.confidence import (
    PageCandidate,
    TownLexicon,
    content_words,
    is_follow_up,
    judge,
    names_no_topic,
    rank_pages,
)
from knowledge.config import KnowledgeConfig
from knowledge.sentences import split_sentences
from knowledge.textfold import fold_text
from knowledge.types import (
    Action,
    Answer,
    AnswerEvent,
    AnswerRequest,
    Chunk,
    FinalEvent,
    Hit,
    SentenceEvent,
    Turn,
)

# Questions whose answer belongs to one office: the answer must name the office the caller asked about.
_ENTITY_TYPES = (
    facts.FactType.CONTACT,
    facts.FactType.PLACE,
    facts.FactType.HOURS,
    facts.FactType.RESPONSIBLE,
)


class Retriever(Protocol):
    """What the answer engines need from ``knowledge.retrieval.HybridRetriever``."""

    def search(self, query: str, k: int = ...) -> list[Hit]: ...


@dataclass
class Retrieval:
    """What was searched, what came back, and how sure we are about the top page."""

    query: str
    hits: list[Hit]
    pages: list[PageCandidate]
    confidence: float
    close_call: bool
    elapsed_ms: float
    query_vector: np.ndarray | None = field(default=None, repr=False)  # e5 vector of ``query``

    @property
    def top(self) -> PageCandidate | None:
        return self.pages[0] if self.pages else None


def earlier_turns(request: AnswerRequest) -> Sequence[Turn]:
    """The conversation before this question (a history that already ends with the question loses it)."""
    history = request.history
    if (
        history
        and history[-1].role == "caller"
        and fold_text(history[-1].text) == fold_text(request.question)
    ):
        return history[:-1]
    return history


def last_bot_turn(history: Sequence[Turn]) -> Turn | None:
    for turn in reversed(history):
        if turn.role == "bot":
            return turn
    return None


def last_caller_turn(history: Sequence[Turn]) -> Turn | None:
    for turn in reversed(history):
        if turn.role == "caller":
            return turn
    return None


def topic_turn(history: Sequence[Turn], town: TownLexicon, max_back: int = 3) -> Turn | None:
    """The latest caller turn that names a topic ("ich brauch nen Reisepass" before "was kostet der?")."""
    callers = [turn for turn in history if turn.role == "caller"][-max_back:]
    for turn in reversed(callers):
        if not names_no_topic(turn.text, town):
            return turn
    return callers[-1] if callers else None


def combined_query(request: AnswerRequest, town: TownLexicon) -> str | None:
    """The question joined with the previous caller turn, when the question may lean on it (else None).

    Used for replies to "Meinen Sie A oder B?" and for short follow-ups ("und was kostet das?"); a follow-up to a
    follow-up leans on the last turn that named the topic.
    """
    previous = last_caller_turn(earlier_turns(request))
    if previous is None:
        return None
    if names_no_topic(previous.text, town):
        previous = topic_turn(earlier_turns(request), town) or previous
    bot = last_bot_turn(earlier_turns(request))
    answering_choice = bot is not None and bool(phrases.offered_choices(bot.text))
    if answering_choice or is_follow_up(request.question, town) or names_no_topic(request.question, town):
        return f"{previous.text} {request.question}"
    return None


def _pick_offered(
    request: AnswerRequest, pages: Sequence[PageCandidate], town: TownLexicon
) -> PageCandidate | None:
    """The page the caller chose after "Meinen Sie A oder B?" ("A", "das erste", "den zweiten")."""
    bot = last_bot_turn(earlier_turns(request))
    titles = phrases.offered_choices(bot.text) if bot else []
    if not titles:
        return None
    folded = fold_text(request.question)
    chosen: str | None = None
    if re.search(r"\b(erste|ersten|ersteres|first)\b", folded):
        chosen = titles[0]
    elif (
        re.search(r"\b(zweite|zweiten|letzte|letzteren|letzteres|second|last)\b", folded) and len(titles) > 1
    ):
        chosen = titles[1]
    else:
        words = set(content_words(request.question, town))
        best_overlap = 0
        for title in titles:
            overlap = sum(1 for w in content_words(title, town) if any(w[:5] == c[:5] for c in words))
            if overlap > best_overlap:
                chosen, best_overlap = title, overlap
    if chosen is None:
        return None
    return next((p for p in pages if p.chunk.title == chosen), None)


def speakable_text(chunk: Chunk, max_sentences: int = 3) -> str:
    """The page's curated phone answer, or its first sentences without Markdown when it has none."""
    if chunk.spoken_answer.strip():
        return chunk.spoken_answer.strip()
    plain = re.sub(r"^#+\s.*$", " ", chunk.text, flags=re.MULTILINE)
    plain = re.sub(r"[*_`>|]|\[([^\]]*)\]\([^)]*\)", r"\1", plain)
    plain = re.sub(r"^\s*[-+]\s+", "", plain, flags=re.MULTILINE)
    return " ".join(split_sentences(" ".join(plain.split()))[:max_sentences])


class ExtractiveAnswerEngine:
    """The :class:`~knowledge.types.AnswerEngine` of the embedded default."""

    mode = "extractive"

    def __init__(self, config: KnowledgeConfig, retriever: Retriever) -> None:
        self._config = config
        self._retriever = retriever
        self.town = TownLexicon.of(config.town)  # this engine's, not the process's
        self._pages: dict[str, list[Chunk]] | None = None  # doc id → its chunks, for fact selection
        self.today: Callable[[], date] = date.today  # "heute"/"morgen" in a question (tests pass a fixed day)
        self._heard_words: confirm.Vocabulary | None = None  # the knowledge base's words (misheard check)

    # -- retrieval, shared with the LLM mode
    def _search(self, query: str) -> tuple[list[Hit], list[PageCandidate], np.ndarray | None]:
        detailed = getattr(self._retriever, "search_detailed", None)
        cosines: Sequence[float] = ()
        vector: np.ndarray | None = None
        # No lock: searches of simultaneous calls run in worker threads at once (HybridRetriever is safe for that).
        if detailed is not None:  # HybridRetriever also reports each page's cosine
            result = detailed(query, self._config.retrieval.candidates)
            hits, cosines = list(result.hits), list(result.cosines)
            vector = result.query_vector
        else:
            hits = self._retriever.search(query, self._config.retrieval.candidates)
        return hits, rank_pages(hits, cosines), vector

    def retrieve_sync(self, request: AnswerRequest) -> Retrieval:
        """Search the question; a reply to a choice, or an unclear follow-up, is searched with the turn before."""
        started = time.perf_counter()
        combined = combined_query(request, self.town)
        bot = last_bot_turn(earlier_turns(request))
        if combined is not None and bot is not None and phrases.offered_choices(bot.text):
            hits, pages, vector = self._search(combined)
            chosen = _pick_offered(request, pages, self.town)
            if chosen is not None:
                pages = [chosen, *[p for p in pages if p.doc_id != chosen.doc_id]]
                elapsed_ms = (time.perf_counter() - started) * 1000
                return Retrieval(combined, hits, pages, 0.8, False, elapsed_ms, vector)
        hits, pages, vector = self._search(request.question)
        ordered, confidence, close_call = judge(request.question, pages, self.town)
        retrieval = Retrieval(request.question, hits, ordered, confidence, close_call, 0.0, vector)
        no_topic = names_no_topic(request.question, self.town)
        if combined is not None and (no_topic or confidence < self._config.answer.min_confidence):
            hits, pages, vector = self._search(combined)
            ordered, confidence, close_call = judge(combined, pages, self.town)
            if no_topic or confidence > retrieval.confidence:
                retrieval = Retrieval(combined, hits, ordered, confidence, close_call, 0.0, vector)
        if retrieval.confidence < self._config.answer.min_confidence and days.asked_weekdays(
            request.question
        ):
            # "ist das Rathaus samstags offen": the day finds pages about Saturdays, not the office asked about
            plain = days.without_weekdays(request.question)
            hits, pages, vector = self._search(plain)
            ordered, confidence, close_call = judge(plain, pages, self.town)
            if confidence > retrieval.confidence:
                retrieval = Retrieval(plain, hits, ordered, confidence, close_call, 0.0, vector)
        retrieval.elapsed_ms = (time.perf_counter() - started) * 1000
        return retrieval

    async def retrieve(self, request: AnswerRequest) -> Retrieval:
        return await asyncio.to_thread(self.retrieve_sync, request)

    def is_confident(self, retrieval: Retrieval) -> bool:
        return retrieval.top is not None and retrieval.confidence >= self._config.answer.min_confidence

    # -- decisions
    def decide(self, request: AnswerRequest, retrieval: Retrieval) -> Answer:
        """Answer, redirect, clarify or hand off from a finished retrieval (no guard here)."""
        top = retrieval.top
        timings = {"retrieval": round(retrieval.elapsed_ms, 2)}
        if top is None or not self.is_confident(retrieval):
            return self.unsure(request, retrieval.confidence, timings)
        if scope.names_off_topic_subject(request.question, self._vocabulary, self.town):
            return self.out_of_scope(request, retrieval.confidence, timings)  # "regnet es am Wochenende"
        if retrieval.close_call and not _already_clarified(request):
            second = retrieval.pages[1]
            text = phrases.clarify_choice(top.chunk.title, second.chunk.title)
            return Answer(
                text,
                Action.CLARIFY,
                retrieval.confidence,
                [top.chunk.id, second.chunk.id],
                self.mode,
                "de",
                "close_call",
                timings,
            )
        misheard = self.misheard(request, retrieval, timings)
        if misheard is not None:
            return misheard
        return self.not_current(retrieval, timings) or self.page_answer(request, retrieval, timings)

    def not_current(self, retrieval: Retrieval, timings: dict[str, float]) -> Answer | None:
        """An expired (or not yet valid) top page is not spoken: say so and offer the hand-off."""
        top = retrieval.top
        if top is None or freshness.is_current(top.chunk, self.today()):
            return None
        text = phrases.not_current(top.chunk.title)  # ends with the hand-off offer ("ja" connects)
        return Answer(
            text, Action.ANSWER, retrieval.confidence, [top.chunk.id], self.mode, "de", "expired", timings
        )

    # -- may the ASR have misheard? (knowledge.confirm)
    def misheard(
        self, request: AnswerRequest, retrieval: Retrieval, timings: dict[str, float]
    ) -> Answer | None:
        """Confirm the topic or ask to repeat when the spoken question may have been misheard (else None)."""
        top = retrieval.top
        verdict = confirm.decide(self.misheard_signals(request, retrieval))
        if top is None or verdict == confirm.Verdict.ANSWER:
            return None
        if verdict == confirm.Verdict.REPEAT:
            if _already_clarified(request):
                return self.unsure(request, retrieval.confidence, timings)
            text, reason, sources = phrases.CLARIFY_ACOUSTIC, "misheard_repeat", []
        else:
            text, reason, sources = confirm.confirmation_question(top.chunk.title), "confirm", [top.chunk.id]
        return Answer(text, Action.CLARIFY, retrieval.confidence, sources, self.mode, "de", reason, timings)

    def misheard_signals(self, request: AnswerRequest, retrieval: Retrieval) -> confirm.Signals | None:
        """The signals of a spoken German question about its top page (None: typed, no page, other language)."""
        top = retrieval.top
        if request.asr is None or top is None or request.language != "de":
            return None
        if self._heard_words is None:
            self._heard_words = confirm.Vocabulary(getattr(self._retriever, "chunks", ()) or [top.chunk])
        return confirm.signals_of(
            request.question, request.asr, self.page_chunks(top), self._heard_words, self.town
        )

    async def reply_to_confirmation(self, request: AnswerRequest) -> Answer | None:
        """After "Geht es um das Thema …?": "ja"/1 answers the original question on that page, "nein"/2 asks
        what it is about; None for anything else (a new question) or when no confirmation is open."""
        asked = confirm.pending(earlier_turns(request))
        said = confirm.reply(request.question) if asked is not None else None
        if asked is None or said is None:
            return None
        if not said:
            return Answer(
                confirm.CONFIRM_DECLINED, Action.CLARIFY, 1.0, [], self.mode, "de", "confirm_declined", {}
            )
        original = AnswerRequest(asked.question, asked.history, request.language)  # no asr: not asked again
        retrieval = await self.retrieve(original)
        chosen = next((p for p in retrieval.pages if confirm.matches_topic(p.chunk.title, asked.topic)), None)
        if chosen is None:
            return None
        retrieval.pages = [chosen, *[p for p in retrieval.pages if p.doc_id != chosen.doc_id]]
        timings = {"retrieval": round(retrieval.elapsed_ms, 2)}
        answer = self.not_current(retrieval, timings) or self.page_answer(original, retrieval, timings)
        answer.reason = f"confirmed_{answer.reason}"
        return answer

    def page_answer(self, request: AnswerRequest, retrieval: Retrieval, timings: dict[str, float]) -> Answer:
        """The asked fact from the top page, or its curated answer (preferring a page in the caller's language)."""
        assert retrieval.top is not None
        page = retrieval.top
        if request.language != "de":
            same_language = [p for p in retrieval.pages[:3] if p.chunk.language == request.language]
            if same_language:
                page = same_language[0]
        chunk = page.chunk
        if request.language == "de" and chunk.language == "de":
            fact = self.fact_answer(request, retrieval, page, timings)
            if fact is not None:
                if fact.action == Action.REDIRECT and chunk.contact:  # an imported page of another area
                    fact.text = f"{fact.text} {spoken.for_speech(areas.redirect_text(chunk))}"
                return self.offering_more(request, fact, page)
        text = spoken.for_speech(speakable_text(chunk))
        if chunk.language != request.language and request.language in phrases.GERMAN_ONLY_NOTICE:
            text = f"{phrases.GERMAN_ONLY_NOTICE[request.language]} {text}"
        action = Action.ANSWER if chunk.responsible else Action.REDIRECT
        reason = "curated_answer" if chunk.responsible else "other_authority"
        answer = Answer(
            text, action, retrieval.confidence, [chunk.id], self.mode, chunk.language, reason, timings
        )
        return self.offering_more(request, answer, page)

    def citing_corrections(self, answer: Answer, page: PageCandidate) -> Answer:
        """Cite an approved correction of the answered page (knowledge.layers.CORRECTION) whose facts the answer
        says: the correction replaced what the page said, so the review shows "Korrektur vom …" as the source."""
        said = verify.fact_tokens(answer.text)
        for chunk in self.page_chunks(page):
            if chunk.layer != layers.CORRECTION or chunk.id in answer.sources:
                continue
            stated = verify.fact_tokens(f"{chunk.spoken_answer}\n{chunk.text}", lenient=True)
            if said & stated:
                answer.sources = [*answer.sources, chunk.id]
        return answer

    def offering_more(self, request: AnswerRequest, answer: Answer, page: PageCandidate) -> Answer:
        """Short first, more on request: append the offer of the page's next useful part (knowledge.more)."""
        answer = self.citing_corrections(answer, page)
        if not self._config.answer.offer_more or request.language != "de":
            return answer
        asked = self.asked_type(request, facts.classify(request.question, self.town))
        chunks = self.page_chunks(page)
        cited = [source.split("#", 1)[0] for source in answer.sources]
        if cited and cited[0] != page.doc_id and self._pages:  # the fact came from another of the top pages
            chunks = self._pages.get(cited[0], chunks)
        return more.with_offer(answer, asked, chunks, earlier_turns(request)[-4:])

    # -- fact answers
    def page_chunks(self, page: PageCandidate) -> list[Chunk]:
        """All chunks of a page (the retriever returns a page's best chunk only)."""
        if self._pages is None:
            grouped: dict[str, list[Chunk]] = {}
            for chunk in getattr(self._retriever, "chunks", ()):
                grouped.setdefault(chunk.doc_id, []).append(chunk)
            self._pages = grouped
        return self._pages.get(page.doc_id) or [page.chunk]

    def asked_type(self, request: AnswerRequest, question: facts.Question) -> facts.FactType:
        """The question's fact type; a follow-up without one keeps the type asked before ("und für Kinder?")."""
        if question.type != facts.FactType.GENERAL:
            return question.type
        earlier = earlier_turns(request)
        bot = last_bot_turn(earlier)
        leans = is_follow_up(request.question, self.town) or names_no_topic(request.question, self.town)
        if not earlier or not (leans or (bot is not None and phrases.offered_choices(bot.text))):
            return question.type
        callers = [turn for turn in earlier if turn.role == "caller"][-2:]
        for turn in reversed(callers):
            earlier_type = facts.question_type(turn.text)
            if earlier_type != facts.FactType.GENERAL:
                return earlier_type
        return question.type

    def fact_answer(
        self, request: AnswerRequest, retrieval: Retrieval, page: PageCandidate, timings: dict[str, float]
    ) -> Answer | None:
        """The sentence(s) of the page that state the asked fact, or "not known" and the hand-off offer.

        None for a general question (the curated answer is its answer) and when the chosen sentences cannot be
        verified against the page.
        """
        started = time.perf_counter()
        # "heute"/"morgen" mean a weekday or a holiday, which is what the pages name
        question = facts.classify(days.resolve(request.question, self.today()), self.town)
        asked = self.asked_type(request, question)
        if asked == facts.FactType.GENERAL and question.yes_no and days.visits_on_a_day(question.text):
            asked = facts.FactType.HOURS  # "kann ich am Montag zum Wertstoffhof?": is it open that day
        chunks = self.page_chunks(page)
        if asked == facts.FactType.GENERAL and not question.yes_no:
            return None
        vectors = getattr(self._retriever, "fact_vectors", None)
        selection = facts.select_facts(question, chunks, retrieval.query_vector, vectors, asked)
        entities = facts.entity_words(question, page.chunk) if asked in _ENTITY_TYPES else []
        if entities and not question.yes_no and not facts.selection_names(selection, entities, page.chunk):
            # "E-Mail vom Steueramt" found the town hall's page: its e-mail is not the Steueramt's.
            selection = facts.FactSelection(question, asked, ())
            for other in retrieval.pages[1:3]:
                other_chunks = self.page_chunks(other)
                candidate = facts.select_facts(question, other_chunks, retrieval.query_vector, vectors, asked)
                if candidate.found and facts.selection_names(candidate, entities, other.chunk):
                    page, chunks, selection = other, other_chunks, candidate
                    break
        timings["facts"] = round((time.perf_counter() - started) * 1000, 2)
        if selection.general:
            return None
        action = Action.ANSWER if page.chunk.responsible else Action.REDIRECT
        if not selection.found:
            text = phrases.fact_unknown(asked.value if not question.yes_no else "", page.chunk.title)
            return Answer(
                text, action, retrieval.confidence, [page.chunk.id], self.mode, "de", "fact_unknown", timings
            )
        text = spoken.for_speech(" ".join(facts.fact_sentences(selection)))
        if asked == facts.FactType.HOURS and not question.yes_no:  # the asked day, not only the others
            notice = days.closed_notice(question.text, [unit.text for unit in selection.units])
            text = f"{notice} {text}" if notice else text
        sources = tuple(f"{c.title}\n{c.spoken_answer}\n{c.authority}\n{c.text}" for c in chunks)
        if not _supported(text, sources):
            text = spoken.for_speech(" ".join(unit.text for unit in selection.units))
            if not _supported(text, sources):
                return None
        cited = list(dict.fromkeys(unit.chunk_id for unit in selection.units))
        reason = "fact_yes_no" if selection.polarity is not None else "fact_answer"
        return Answer(text, action, retrieval.confidence, cited, self.mode, "de", reason, timings)

    def unsure(self, request: AnswerRequest, confidence: float, timings: dict[str, float]) -> Answer:
        """Clarify on the first miss (asking to repeat when the ASR was unsure), hand off when already asked."""
        if _already_clarified(request):
            text, language = phrases.localize(phrases.HANDOFF_UNSURE, request.language)
            return Answer(
                text, Action.HANDOFF, confidence, [], self.mode, language, "low_confidence_again", timings
            )
        asr = request.asr_confidence
        if asr is not None and asr < self._config.answer.min_asr_confidence:
            text, reason = phrases.CLARIFY_ACOUSTIC, "low_asr"
        elif scope.is_out_of_scope(request.question, self._vocabulary, self.town):
            return self.out_of_scope(request, confidence, timings)
        else:
            text, reason = phrases.CLARIFY_REPHRASE, "low_confidence"
        text, language = phrases.localize(text, request.language)
        return Answer(text, Action.CLARIFY, confidence, [], self.mode, language, reason, timings)

    def out_of_scope(self, request: AnswerRequest, confidence: float, timings: dict[str, float]) -> Answer:
        """Clear words the town's knowledge does not explain: what the hotline is for, not "please repeat"."""
        text = phrases.out_of_scope(self._config.town, self._config.answer.scope_examples)
        text, language = phrases.localize(text, request.language)
        return Answer(text, Action.CLARIFY, confidence, [], self.mode, language, "out_of_scope", timings)

    @property
    def _vocabulary(self) -> scope.Vocabulary | None:
        return getattr(self._retriever, "normalizer", None)

    # -- the AnswerEngine protocol
    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        started = time.perf_counter()
        answer = await self.reply_to_confirmation(request)  # "ja"/"nein" after "Geht es um …?"
        if answer is None:
            follow = more.continue_offer(request, earlier_turns(request), self.mode)
            if isinstance(
                follow, AnswerRequest
            ):  # "ja" to "Möchten Sie wissen, ...?": that question, same topic
                request = follow
            answer = follow if isinstance(follow, Answer) else guarded_answer(request, self.mode)
        if answer is None:
            retrieval = await self.retrieve(request)
            answer = self.decide(request, retrieval)
        async for event in emit(answer, started):
            yield event

    async def answer(self, request: AnswerRequest) -> Answer:
        return await collect(self.stream(request))


@lru_cache(maxsize=512)
def _page_facts(sources: tuple[str, ...]) -> frozenset[str]:
    """Every checkable fact of a page, read generously (cached: the same pages answer again and again)."""
    return frozenset(token for source in sources for token in verify.fact_tokens(source, lenient=True))


def _supported(text: str, sources: tuple[str, ...]) -> bool:
    """Does the page state every number, time, date and weekday of ``text`` (see knowledge.verify)?"""
    return not verify.uncovered(verify.fact_tokens(verify.strip_citations(text)), _page_facts(sources))


def _already_clarified(request: AnswerRequest) -> bool:
    bot = last_bot_turn(earlier_turns(request))
    return bot is not None and phrases.is_clarify(bot.text)


def reply_to_offer(request: AnswerRequest, mode: str) -> Answer | None:
    """ "Ja" after "Soll ich Sie ... verbinden?" hands off; "nein" asks what else (None: no such reply)."""
    bot = last_bot_turn(earlier_turns(request))
    if bot is None or not phrases.offers_handoff(bot.text):
        return None
    reply = phrases.yes_or_no(request.question)
    if reply is None:
        return None
    if reply:
        text, language = phrases.localize(phrases.HANDOFF_REQUESTED, request.language)
        return Answer(text, Action.HANDOFF, 1.0, [], mode, language, "handoff_accepted", {"retrieval": 0.0})
    return Answer(
        phrases.HANDOFF_DECLINED, Action.ANSWER, 1.0, [], mode, "de", "handoff_declined", {"retrieval": 0.0}
    )


def guarded_answer(request: AnswerRequest, mode: str) -> Answer | None:
    """The guard's answer, if it has one; a second clarify in a row becomes a handoff. A reply to the hand-off
    offer is answered here too, before the guard would call a bare "ja" meaningless."""
    offered = reply_to_offer(request, mode)
    if offered is not None:
        return offered
    verdict = guard.check(request.question, request.language)
    if verdict is None:
        return None
    action, text, reason, language = verdict.action, verdict.text, verdict.reason, verdict.language
    if action == Action.CLARIFY and _already_clarified(request):
        action, text, reason = Action.HANDOFF, phrases.HANDOFF_UNSURE, f"{reason}_again"
    if language == "de":
        text, language = phrases.localize(text, request.language)
    return Answer(text, action, 1.0, [], mode, language, reason, {"retrieval": 0.0})


async def emit(answer: Answer, started: float) -> AsyncIterator[AnswerEvent]:
    """Yield a finished answer sentence by sentence, then the final event with timings filled in."""
    first_sentence_ms: float | None = None
    for sentence in split_sentences(answer.text):
        if first_sentence_ms is None:
            first_sentence_ms = (time.perf_counter() - started) * 1000
        yield SentenceEvent(sentence)
    total_ms = (time.perf_counter() - started) * 1000
    answer.timings_ms.setdefault("first_sentence", round(first_sentence_ms or total_ms, 2))
    answer.timings_ms["total"] = round(total_ms, 2)
    yield FinalEvent(answer)


async def collect(events: AsyncIterator[AnswerEvent]) -> Answer:
    """Drain a stream and return its final answer."""
    final: Answer | None = None
    async for event in events:
        if isinstance(event, FinalEvent):
            final = event.answer
    if final is None:  # pragma: no cover - every engine ends with a FinalEvent
        raise RuntimeError("answer stream ended without a final answer")
    return final
