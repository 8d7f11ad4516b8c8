"""LLM answers: an OpenAI-compatible model phrases the answer from retrieved passages, verified per sentence.

The model streams; each sentence is released to text-to-speech as soon as it is complete *and* verified
(:mod:`knowledge.verify`). A sentence without its own citation waits for a later one that cites. Anything
the verifier rejects, a timeout, a connection error or an abstention ends the generation: if nothing was
spoken yet, the extractive answer (when retrieval is confident) or a clarify/handoff is given instead, with
the reason kept in ``Answer.reason`` ("fallback_extractive:unsupported_fact", ...). Sentences already spoken
were verified, so a later failure only shortens the answer.

The answer must also fit the question (issue 9): for a question of a checkable type (cost, duration, deadline,
hours, contact, place) the prompt names what is asked, and verified sentences are held back until the answer
states a value of that kind (an amount or "kostenlos", a duration, a time or day, a number ...); an answer that
never does is rejected ("wrong_type") and the extractive fact answer is spoken instead.

Imported pages (XZuFi) have no curated phone answer, only one the importer cut from the Kurztext. A general
question about such a page asks the model for a short spoken summary of the page's Kurztext and Volltext
instead ("verified_summary"); it is verified like any answer, and when it fails the importer's extractive
summary is what the caller hears (``fallback_extractive:...``).

``Answer.timings_ms["llm_first_token"]`` is the time from sending the request to the first streamed text (the
model server's queueing and prompt processing); the application turns it into its time-to-first-token metric.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date

import httpx
import openai
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from knowledge import days, facts, freshness, layers, more, verify
from knowledge.config import KnowledgeConfig
from knowledge.extractive import (
    ExtractiveAnswerEngine,
    Retrieval,
    collect,
    earlier_turns,
    emit,
    guarded_answer,
)
from knowledge.loaders.xzufi import SUMMARY_HEADINGS
from knowledge.sentences import SentenceSplitter
from knowledge.spoken import speakable_sentence
from knowledge.types import Action, Answer, AnswerEvent, AnswerRequest, FinalEvent, SentenceEvent

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = """Du bist der Telefonassistent der Stadtverwaltung {town}.
Beantworte die Frage der anrufenden Person nur mit Informationen aus den nummerierten Passagen.
Nenne zuerst genau die erfragte Angabe, in höchstens zwei kurzen Sätzen in Einfacher Sprache, so wie man am
Telefon spricht: kurze Sätze, aktiv formuliert („Sie bezahlen 37 Euro.“), keine Amtswörter wie „Beantragung“
oder „Vorlage“, keine Klammern und Abkürzungen, Zahlen deutlich („8 bis 12 Uhr“, „37 Euro“).
Nenne Gebühren, Zeiten, Fristen und Unterlagen genau so, wie sie in den Passagen stehen. Erfinde nichts.
Setze hinter jeden Satz die ID der Passage in eckigen Klammern, zum Beispiel [{example_id}].
Wenn die Passagen die Antwort nicht enthalten, antworte genau: {abstain}"""

# Callers in these languages get the model's answer in their language (numbers are verified the same way).
LANGUAGE_NAMES = {
    "en": "Englisch",
    "tr": "Türkisch",
    "ru": "Russisch",
    "uk": "Ukrainisch",
    "pl": "Polnisch",
    "ar": "Arabisch",
}
# A base model continues the prompt's layout; stop there instead of generating a second prompt.
STOP_SEQUENCES = ["Frage:", "\n\n\n"]
PASSAGE_CHARS = 900  # per passage: keeps three passages + question inside a 2k context of a small local model
SUMMARY_CHARS = 1800  # the one page a summary is written from: Kurztext + Volltext, still inside a 2k context
SUMMARY_HINT = (
    "Gefragt ist ein kurzer Überblick: fasse die Passage in höchstens zwei kurzen Sätzen zusammen, "
    "so wie man es am Telefon erklärt."
)


@dataclass
class _Generation:
    """What came out of the model and what was released so far."""

    released: list[str] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # complete sentences waiting for a citation
    asked: tuple[
        str, ...
    ] = ()  # the asked fact types: nothing is spoken until a value of one of them is said
    held: list[str] = field(default_factory=list)  # verified sentences waiting for the asked kind of value
    summary: bool = False  # a summary of one imported page (no curated answer) instead of an answer
    failure: str = ""
    raw: str = ""
    first_token_ms: float | None = None  # request sent → first streamed text (server queue + prefill)


def passages_for(retrieval: Retrieval, top_k: int, today: date | None = None) -> dict[str, str]:
    """Chunk id → passage text (title, curated answer, body) of the best chunk of each of the top pages; with
    ``today``, pages past their validity are left out (knowledge.freshness: an expired page is not spoken)."""
    passages: dict[str, str] = {}
    for page in retrieval.pages[:top_k]:
        chunk = page.chunk
        if today is not None and not freshness.is_current(chunk, today):
            continue
        parts = [chunk.title]
        if chunk.spoken_answer:
            parts.append(chunk.spoken_answer)
        if not chunk.responsible and chunk.authority:
            parts.append(f"Zuständig: {chunk.authority}")
        parts.append(chunk.text)
        passages[chunk.id] = "\n".join(parts)[:PASSAGE_CHARS]
    return passages


# What the answer must contain for each asked type: said to the model, checked by verify.fits_question_type.
ASKED_HINTS = {
    "cost": "Gefragt ist der Preis: nenne den Betrag in Euro, oder sage, dass es kostenlos ist.",
    "duration": "Gefragt ist die Dauer: nenne, wie lange es dauert (Tage, Wochen, sofort).",
    "deadline": "Gefragt ist die Frist: nenne, bis wann oder wie lange vorher.",
    "hours": "Gefragt sind Zeiten: nenne Tage und Uhrzeiten, oder dass an dem Tag geschlossen ist.",
    "contact": "Gefragt ist der Kontakt: nenne die Telefonnummer oder E-Mail-Adresse.",
    "place": "Gefragt ist der Ort: nenne die Adresse oder die Stelle.",
    "documents": "Gefragt sind die Unterlagen: nenne, was mitzubringen ist.",
}


def build_messages(
    config: KnowledgeConfig,
    request: AnswerRequest,
    passages: dict[str, str],
    asked: tuple[str, ...] = (),
    today: date | None = None,
    summary: bool = False,
) -> list[ChatCompletionMessageParam]:
    example_id = next(iter(passages), "seiten-id")
    system = SYSTEM_PROMPT.format(town=config.town, example_id=example_id, abstain=verify.ABSTAIN_TOKEN)
    if request.language in LANGUAGE_NAMES:
        name = LANGUAGE_NAMES[request.language]
        system += f"\nDie anrufende Person spricht {name}: antworte auf {name}."
    numbered = "\n\n".join(f"[{i}] ID: {pid}\n{text}" for i, (pid, text) in enumerate(passages.items(), 1))
    turns = earlier_turns(request)[-4:]
    earlier = [f"{'Anrufer' if t.role == 'caller' else 'Assistent'}: {t.text}" for t in turns]
    context = ("Bisheriges Gespräch:\n" + "\n".join(earlier) + "\n\n") if earlier else ""
    hints = [ASKED_HINTS[kind] for kind in asked if kind in ASKED_HINTS]
    if summary:
        hints.append(SUMMARY_HINT)
    hint = f"{' '.join(hints)}\n\n" if hints and request.language == "de" else ""
    dated = days.today_line(request.question, today) if today is not None else ""
    hint = f"{dated}\n{hint}" if dated and hint else (f"{dated}\n\n" if dated else hint)
    user = f"Passagen:\n{numbered}\n\n{context}{hint}Frage: {request.question}"
    return [
        ChatCompletionSystemMessageParam(role="system", content=system),
        ChatCompletionUserMessageParam(role="user", content=user),
    ]


def _log_connection_failure(base_url: str | None, error: Exception, *, mid_answer: bool) -> None:
    """Say clearly whether the model server is unreachable or went away while answering.

    A server that accepts the request and then drops the connection has usually crashed (issue 7: a llama.cpp
    build using instructions the CPU cannot run dies on the first completion); the caller hears the fallback
    either way, but the operator must be able to tell the two apart from the log.
    """
    cause = error.__cause__ or error.__context__ or error
    if mid_answer or isinstance(cause, httpx.RemoteProtocolError | httpx.ReadError):
        logger.error(
            "LLM server at %s dropped the connection while answering (%s: %s): it has probably crashed; "
            "see the model server's log. Falling back to the extractive answer.",
            base_url,
            type(cause).__name__,
            cause,
        )
    else:
        logger.error(
            "LLM server at %s is unreachable (%s: %s); falling back to the extractive answer.",
            base_url,
            type(cause).__name__,
            cause,
        )


class LlmAnswerEngine:
    """The :class:`~knowledge.types.AnswerEngine` for an OpenAI-compatible endpoint."""

    mode = "llm"

    def __init__(self, config: KnowledgeConfig, extractive: ExtractiveAnswerEngine) -> None:
        if not config.llm.base_url:
            raise ValueError("LlmAnswerEngine needs llm.base_url")
        self._config = config
        self._extractive = extractive

    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        started = time.perf_counter()
        guarded = await self._extractive.reply_to_confirmation(request)  # "ja" after "Geht es um …?"
        if guarded is None:
            follow = more.continue_offer(request, earlier_turns(request), self.mode)
            if isinstance(follow, AnswerRequest):  # "ja" to the offer of more: that question, same topic
                request = follow
            guarded = follow if isinstance(follow, Answer) else guarded_answer(request, self.mode)
        if guarded is not None:
            async for event in emit(guarded, started):
                yield event
            return
        retrieval = await self._extractive.retrieve(request)
        timings = {"retrieval": round(retrieval.elapsed_ms, 2)}
        if retrieval.top is None or retrieval.confidence < self._config.answer.llm_min_confidence:
            # Nothing on topic to phrase from: asking the model would only cost time.
            why = "no_passages" if retrieval.top is None else "low_confidence"
            async for event in emit(self._fallback(request, retrieval, why, timings), started):
                yield event
            return
        misheard = self._extractive.misheard(request, retrieval, timings)  # confirm the topic first
        if misheard is not None:
            misheard.mode = self.mode
            async for event in emit(misheard, started):
                yield event
            return
        stale = self._extractive.not_current(retrieval, timings)  # an expired page is not phrased either
        if stale is not None:
            stale.mode = self.mode
            async for event in emit(stale, started):
                yield event
            return
        generation = _Generation(asked=self._asked_types(request))
        summary = self._summary_passages(request, retrieval, generation.asked)
        if summary is not None:
            passages, generation.summary = summary, True
        else:
            passages = passages_for(retrieval, self._config.retrieval.top_k, self._extractive.today())
        first_sentence_ms: float | None = None
        async for sentence in self._generate(request, passages, generation):
            if first_sentence_ms is None:
                first_sentence_ms = (time.perf_counter() - started) * 1000
            yield SentenceEvent(sentence)
        if first_sentence_ms is not None:
            timings["first_sentence"] = round(first_sentence_ms, 2)
        if generation.first_token_ms is not None:
            timings["llm_first_token"] = round(generation.first_token_ms, 2)
        if generation.released:
            answer = self._verified_answer(request, retrieval, generation, timings)
        else:
            answer = self._fallback(request, retrieval, generation.failure or "empty", timings)
        async for event in emit_rest(answer, started, already_spoken=bool(generation.released)):
            yield event

    async def answer(self, request: AnswerRequest) -> Answer:
        return await collect(self.stream(request))

    # -- generation
    async def _generate(
        self, request: AnswerRequest, passages: dict[str, str], generation: _Generation
    ) -> AsyncIterator[str]:
        """Yield verified spoken sentences; leave the reason of a stop in ``generation.failure``."""
        llm = self._config.llm
        max_sentences = self._config.answer.max_sentences
        splitter = SentenceSplitter()
        client = openai.AsyncOpenAI(
            base_url=llm.base_url,
            api_key=llm.api_key.get_secret_value(),
            max_retries=0,
            timeout=llm.timeout_s,
        )
        deadline = time.monotonic() + llm.timeout_s
        sent = time.perf_counter()
        try:
            stream = await asyncio.wait_for(
                client.chat.completions.create(
                    model=llm.model,
                    messages=build_messages(
                        self._config,
                        request,
                        passages,
                        generation.asked,
                        self._extractive.today(),
                        summary=generation.summary,
                    ),
                    temperature=llm.temperature,
                    max_tokens=llm.max_tokens,
                    stop=STOP_SEQUENCES,
                    stream=True,
                ),
                timeout=llm.first_token_timeout_s,
            )
            iterator = stream.__aiter__()
            first = True
            while len(generation.released) < max_sentences:
                limit = llm.first_token_timeout_s if first else deadline - time.monotonic()
                try:
                    chunk = await asyncio.wait_for(iterator.__anext__(), timeout=max(0.01, limit))
                except StopAsyncIteration:
                    break
                first = False
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if not delta:
                    continue
                if generation.first_token_ms is None:
                    generation.first_token_ms = (time.perf_counter() - sent) * 1000
                generation.raw += delta
                if verify.is_abstention(generation.raw):
                    generation.failure = "abstained"
                    break
                if verify.echoes_prompt(generation.raw):  # no need to wait for the sentence to end
                    generation.failure = "prompt_echo"
                    break
                for sentence in splitter.feed(delta):
                    for spoken in self._admit(sentence, passages, generation):
                        yield spoken
                if generation.failure:
                    break
            await stream.close()
            if not generation.failure and len(generation.released) < max_sentences:
                for sentence in splitter.flush():
                    for spoken in self._admit(sentence, passages, generation):
                        yield spoken
                if verify.is_abstention(generation.raw):
                    generation.failure = "abstained"
                elif generation.pending and not generation.failure:
                    generation.failure = "no_citation"
                elif generation.held and not generation.failure:
                    generation.failure = "wrong_type"  # the model never stated the asked kind of value
        except (TimeoutError, openai.APITimeoutError):
            generation.failure = "timeout"
        except (openai.APIConnectionError, httpx.HTTPError) as error:
            generation.failure = "connection_error"
            _log_connection_failure(llm.base_url, error, mid_answer=bool(generation.raw))
        except openai.APIStatusError as error:
            generation.failure = f"http_{error.status_code}"
        finally:
            await client.close()

    def _admit(self, sentence: str, passages: dict[str, str], generation: _Generation) -> list[str]:
        """Verify one complete sentence; return what may be spoken now (held sentences included)."""
        if generation.failure or len(generation.released) >= self._config.answer.max_sentences:
            return []
        if verify.is_abstention(sentence):
            generation.failure = "abstained"
            return []
        malformed = verify.form_problem(sentence)
        if malformed:
            generation.failure = malformed
            return []
        own, unknown = verify.resolve_citations(verify.extract_citations(sentence), list(passages))
        if unknown:
            generation.failure = "unknown_citation"
            return []
        if not own and not generation.cited:
            generation.pending.append(sentence)
            return []
        generation.cited.extend(pid for pid in own if pid not in generation.cited)
        checks = [
            verify.check_sentence(c, passages, generation.cited) for c in [*generation.pending, sentence]
        ]
        generation.pending.clear()
        failed = next((check for check in checks if not check.ok), None)
        if failed is not None:
            generation.failure = failed.reason
            return []
        room = self._config.answer.max_sentences - len(generation.released)
        # verified as written, spoken for the ear ("Mo–Fr" → "montags bis freitags"; numbers unchanged)
        spoken = [" ".join(speakable_sentence(check.spoken)) for check in checks if check.spoken][:room]
        if generation.asked and not generation.released:
            # The answer must fit the question: a cost question an amount, a phone question a number ...
            generation.held.extend(spoken)
            said = " ".join(generation.held)
            if not any(verify.fits_question_type(said, kind) for kind in generation.asked):
                if len(generation.held) >= self._config.answer.max_sentences:
                    generation.failure = "wrong_type"
                return []
            spoken, generation.held = generation.held[:room], []
        generation.released.extend(spoken)
        return spoken

    def _asked_types(self, request: AnswerRequest) -> tuple[str, ...]:
        """The fact types the answer must fit, one of them (none checked for other languages and for general
        questions; "Was kostet das und wie lange dauert es?" asks two, and either one fits)."""
        if request.language != "de":
            return ()
        question = facts.classify(request.question, self._extractive.town)
        kinds = [self._extractive.asked_type(request, question).value]
        kinds += [facts.question_type(part).value for part in re.split(r"\bund\b|,", request.question)]
        # a kind without a checkable value (documents, conditions ...) lets any verified answer through
        return tuple(dict.fromkeys(kind for kind in kinds if kind != "general"))

    def _summary_passages(
        self, request: AnswerRequest, retrieval: Retrieval, asked: tuple[str, ...]
    ) -> dict[str, str] | None:
        """The one passage a summary is written from, when the question is general and the top page is an
        imported one whose spoken answer the importer built (an editor's answer is spoken as it is); else None."""
        top = retrieval.top
        if asked or request.language != "de" or top is None:
            return None
        if not top.chunk.spoken_generated or not top.chunk.responsible or top.chunk.language != "de":
            return None
        if self._extractive.asked_type(request, facts.classify(request.question, self._extractive.town)) != (
            facts.FactType.GENERAL
        ):
            return None
        chunks = self._extractive.page_chunks(top)
        lead = next((c for c in chunks if c.id == c.doc_id), None)
        if lead is None:
            return None
        blocks = []  # a short page is one chunk with inline headings: keep only the Kurztext and Volltext blocks
        for chunk in chunks:
            for heading, block in layers.sections(chunk.text):
                if (heading or chunk.section) in SUMMARY_HEADINGS and block.strip() != heading:
                    blocks.append(block.strip())
        if not blocks:
            return None
        return {lead.id: "\n".join([lead.title, *blocks])[:SUMMARY_CHARS]}

    # -- results
    def _verified_answer(
        self, request: AnswerRequest, retrieval: Retrieval, generation: _Generation, timings: dict[str, float]
    ) -> Answer:
        chunks = {page.chunk.id: page.chunk for page in retrieval.pages}
        cited_chunks = [chunks[c] for c in generation.cited if c in chunks]
        redirect = bool(cited_chunks) and all(not c.responsible for c in cited_chunks)
        reason = "verified_summary" if generation.summary else "verified"
        if generation.failure:
            reason = f"verified_partial:{generation.failure}"
        return Answer(
            " ".join(generation.released),
            Action.REDIRECT if redirect else Action.ANSWER,
            retrieval.confidence,
            list(generation.cited),
            self.mode,
            request.language if request.language in LANGUAGE_NAMES else "de",
            reason,
            timings,
        )

    def _fallback(
        self, request: AnswerRequest, retrieval: Retrieval, why: str, timings: dict[str, float]
    ) -> Answer:
        """The extractive answer when retrieval is confident, else clarify once / hand off."""
        if retrieval.top is not None and self._extractive.is_confident(retrieval):
            answer = self._extractive.page_answer(request, retrieval, timings)
            answer.reason = f"fallback_extractive:{why}"
        else:
            answer = self._extractive.unsure(request, retrieval.confidence, timings)
            what = "out_of_scope" if answer.reason == "out_of_scope" else answer.action.value
            answer.reason = f"fallback_{what}:{why}"
        answer.mode = self.mode
        return answer


async def emit_rest(answer: Answer, started: float, *, already_spoken: bool) -> AsyncIterator[AnswerEvent]:
    """Finish a stream: speak the fallback's sentences unless the model's verified sentences were spoken."""
    if already_spoken:
        answer.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
        yield FinalEvent(answer)
        return
    async for event in emit(answer, started):
        yield event
