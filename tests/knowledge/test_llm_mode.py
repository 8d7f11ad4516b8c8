"""LLM mode against a scripted OpenAI-compatible server (a real aiohttp server on 127.0.0.1 streaming SSE).

Each test registers the exact token stream the "model" sends for one question, then checks what the caller
would hear: verified sentences released one by one, and every kind of failure falling back to the curated
answer, a clarifying question or a handoff, with the reason recorded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from knowledge.config import AnswerConfig, KnowledgeConfig, LlmConfig
from knowledge.engine import build_answer_engine
from knowledge.extractive import Retriever
from knowledge.index import load_retriever
from knowledge.types import Action, AnswerEvent, AnswerRequest, AsrSignals, FinalEvent, SentenceEvent, Turn

PAGES = {
    "personalausweis.md": """---
id: personalausweis-beantragen
title: Personalausweis beantragen
department: Bürgerbüro
authority: Stadt Musterstadt – Bürgerbüro
spoken_answer: "Den Personalausweis beantragen Sie im Bürgerbüro. Er kostet 37 Euro, unter 24 Jahren 22,80 Euro."
synonyms: [Perso, Ausweis verlängern]
source_url: https://www.musterstadt.example/personalausweis
---
# Personalausweis beantragen
Gebühr: 37,00 Euro, für Antragstellende unter 24 Jahren 22,80 Euro. Die Herstellung dauert 3 bis 4 Wochen.
Bürgerbüro: montags bis freitags 8 bis 12 Uhr, donnerstags 14 bis 18 Uhr.
""",
    "hundesteuer.md": """---
id: hundesteuer-anmelden
title: Hundesteuer anmelden
department: Steueramt
spoken_answer: "Melden Sie Ihren Hund innerhalb von 2 Wochen beim Steueramt an. Die Steuer beträgt 96 Euro im Jahr."
synonyms: [Hund anmelden, Hundemarke]
---
# Hundesteuer anmelden
Für den ersten Hund 96 Euro im Jahr, für jeden weiteren 120 Euro.
""",
    "kfz.md": """---
id: kfz-zulassung
title: Kfz-Zulassung
authority: Kreis Musterkreis – Straßenverkehrsamt
responsible: false
spoken_answer: "Für die Zulassung von Autos ist die Zulassungsstelle des Kreises Musterkreis zuständig."
synonyms: [Auto anmelden, Auto zulassen, Nummernschild]
---
# Kfz-Zulassung
Die Stadt Musterstadt lässt keine Fahrzeuge zu. Das macht der Kreis Musterkreis in der Kreisstraße 5.
""",
}

PERSO = "Was kostet ein Personalausweis?"
# What the extractive engine says to a question for the fee: the page's sentence that states it.
EXTRACTIVE_PERSO_FEE = "Er kostet 37 Euro, unter 24 Jahren 22,80 Euro."


@dataclass
class Script:
    """What the fake model answers to one question."""

    tokens: list[str]
    delay_before_s: float = 0.0
    gate_after_token: int | None = None  # wait for ScriptedServer.gate before sending this token
    status: int = 200
    die_after_token: int | None = None  # drop the connection here, as a crashing model server does


@dataclass
class ScriptedServer:
    url: str = ""
    scripts: dict[str, Script] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)


def _sse(content: str | None, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


def _app(server: ScriptedServer) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        server.requests.append(body)
        question = body["messages"][-1]["content"].rsplit("Frage:", 1)[-1].strip()
        script = server.scripts.get(question, Script(["KEINE_ANTWORT"]))
        if script.status != 200:
            return web.json_response({"error": {"message": "scripted failure"}}, status=script.status)
        if script.delay_before_s:
            await asyncio.sleep(script.delay_before_s)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for number, token in enumerate(script.tokens):
            if number == script.gate_after_token:
                await asyncio.get_running_loop().run_in_executor(None, server.gate.wait, 10.0)
            if number == script.die_after_token and request.transport is not None:
                request.transport.abort()
                return response
            await response.write(_sse(token))
        await response.write(_sse(None, "stop"))
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedServer]:
    """The fake model server on a free loopback port, in its own thread and event loop."""
    server = ScriptedServer()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(_app(server))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.url = f"http://127.0.0.1:{port}/v1"
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "scripted server did not start"
    yield server
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture(scope="module")
def kb_config(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeConfig:
    root = tmp_path_factory.mktemp("llm-kb")
    kb = root / "kb"
    kb.mkdir()
    for name, text in PAGES.items():
        (kb / name).write_text(text, encoding="utf-8")
    return KnowledgeConfig(town="Musterstadt", index_dir=root / "index", kb_sources=[kb])


@pytest.fixture(scope="module")
def retriever(kb_config: KnowledgeConfig) -> Retriever:
    return load_retriever(kb_config)


def _config(base: KnowledgeConfig, url: str, **llm: float) -> KnowledgeConfig:
    return replace(
        base,
        llm=LlmConfig(
            base_url=url,
            timeout_s=llm.get("timeout_s", 5.0),
            first_token_timeout_s=llm.get("first_token_timeout_s", 2.0),
        ),
        answer=AnswerConfig(mode="llm", llm_min_confidence=llm.get("llm_min_confidence", 0.3)),
    )


async def _run(config: KnowledgeConfig, retriever: Retriever, request: AnswerRequest) -> list[AnswerEvent]:
    engine = build_answer_engine(config, retriever)
    return [event async for event in engine.stream(request)]


def _spoken(events: list[AnswerEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, SentenceEvent)]


def _final(events: list[AnswerEvent]) -> Any:
    assert isinstance(events[-1], FinalEvent)
    return events[-1].answer


async def test_verified_sentences_are_released_one_by_one(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Was kostet der Perso für mich?"
    scripted_server.gate.clear()
    scripted_server.scripts[question] = Script(
        [
            "Der Ausweis ",
            "kostet 37 Euro ",
            "[personalausweis-beantragen].",
            " Unter 24 ",
            "Jahren sind ",
            "es 22,80 Euro [personalausweis-beantragen].",
        ],
        gate_after_token=4,  # the model "stalls" after the second sentence has begun
    )
    engine = build_answer_engine(_config(kb_config, scripted_server.url), retriever)
    events: list[AnswerEvent] = []
    gate_open_at_first_sentence: bool | None = None
    async for event in engine.stream(AnswerRequest(question)):
        if isinstance(event, SentenceEvent) and gate_open_at_first_sentence is None:
            gate_open_at_first_sentence = scripted_server.gate.is_set()
            scripted_server.gate.set()
        events.append(event)
    assert gate_open_at_first_sentence is False, "the first sentence must be spoken before the model finishes"
    assert _spoken(events) == ["Der Ausweis kostet 37 Euro.", "Unter 24 Jahren sind es 22,80 Euro."]
    answer = _final(events)
    assert (answer.action, answer.reason, answer.mode) == (Action.ANSWER, "verified", "llm")
    assert answer.sources == ["personalausweis-beantragen"]
    assert answer.text == "Der Ausweis kostet 37 Euro. Unter 24 Jahren sind es 22,80 Euro."
    assert {"retrieval", "first_sentence", "total"} <= set(answer.timings_ms)


async def test_citations_after_the_full_stop_belong_to_the_sentence_before(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Perso Kosten bitte"
    scripted_server.scripts[question] = Script(
        ["Er kostet 37 Euro. [personalausweis-beantragen]", " Unter 24 Jahren 22,80 Euro. [1]"]
    )
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    assert _spoken(events) == ["Er kostet 37 Euro.", "Unter 24 Jahren 22,80 Euro."]
    assert _final(events).reason == "verified"


async def test_prompt_carries_numbered_passages_ids_and_abstain_token(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    scripted_server.scripts[PERSO] = Script(["Er kostet 37 Euro [personalausweis-beantragen]."])
    scripted_server.requests.clear()
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(PERSO))
    assert _final(events).reason == "verified"
    body = scripted_server.requests[-1]
    assert body["stream"] is True
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "KEINE_ANTWORT" in system and "Einfache" in system
    assert "[1] ID: personalausweis-beantragen" in user
    assert "37,00 Euro" in user


@pytest.mark.parametrize(
    ("tokens", "reason"),
    [
        (["Der Ausweis kostet 73 Euro [personalausweis-beantragen]."], "unsupported_fact"),
        (["Der Ausweis kostet 37 Euro [reisepass-beantragen]."], "unknown_citation"),
        (["Der Ausweis kostet 37 Euro."], "no_citation"),
        (["Das Bürgerbüro hat samstags ", "offen [personalausweis-beantragen]."], "unsupported_fact"),
        (["Passagen:\n[1] ID: personalausweis-beantragen\nGebühr: 37,00 Euro."], "prompt_echo"),
    ],
)
async def test_unverifiable_output_falls_back_to_the_extractive_answer(
    scripted_server: ScriptedServer,
    kb_config: KnowledgeConfig,
    retriever: Retriever,
    tokens: list[str],
    reason: str,
) -> None:
    scripted_server.scripts[PERSO] = Script(tokens)
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(PERSO))
    spoken = _spoken(events)
    assert spoken[0] == EXTRACTIVE_PERSO_FEE
    assert not any("73" in s or "samstags" in s for s in spoken)
    answer = _final(events)
    assert (answer.action, answer.reason) == (Action.ANSWER, f"fallback_extractive:{reason}")
    assert answer.sources == ["personalausweis-beantragen"]


async def test_a_late_failure_keeps_only_the_verified_sentences(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Was kostet der Ausweis und wie lange dauert es?"
    scripted_server.scripts[question] = Script(
        [
            "Er kostet 37 Euro [personalausweis-beantragen].",
            " Es dauert 9 Wochen [personalausweis-beantragen].",
        ]
    )
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    assert _spoken(events) == ["Er kostet 37 Euro."]
    answer = _final(events)
    assert answer.reason == "verified_partial:unsupported_fact"
    assert answer.text == "Er kostet 37 Euro."


async def test_timeout_falls_back(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Wie teuer ist ein neuer Personalausweis?"
    scripted_server.scripts[question] = Script(["Er kostet 37 Euro [personalausweis-beantragen]."], 3.0)
    config = _config(kb_config, scripted_server.url, first_token_timeout_s=0.5, timeout_s=1.0)
    events = await _run(config, retriever, AnswerRequest(question))
    answer = _final(events)
    assert answer.reason == "fallback_extractive:timeout"
    assert _spoken(events)[0] == EXTRACTIVE_PERSO_FEE
    assert "llm_first_token" not in answer.timings_ms  # no token came


async def test_the_answer_carries_the_llms_time_to_first_token(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    """The model server holds the request 0.3 s (as a busy vLLM queues it) before it streams."""
    question = "Was kostet ein Personalausweis bei Ihnen?"
    scripted_server.scripts[question] = Script(["Er kostet 37 Euro [personalausweis-beantragen]."], 0.3)
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    answer = _final(events)
    assert answer.reason == "verified"
    # Measured from the request, so it holds the server's wait and lies within the time to the first sentence.
    assert 300 <= answer.timings_ms["llm_first_token"] <= answer.timings_ms["first_sentence"]


async def test_connection_error_and_server_error_fall_back(
    scripted_server: ScriptedServer,
    kb_config: KnowledgeConfig,
    retriever: Retriever,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    events = await _run(
        _config(kb_config, f"http://127.0.0.1:{closed_port}/v1"), retriever, AnswerRequest(PERSO)
    )
    assert _final(events).reason == "fallback_extractive:connection_error"
    assert any("is unreachable" in r.getMessage() for r in caplog.records), caplog.text
    question = "Personalausweis Gebühr?"
    scripted_server.scripts[question] = Script([], status=500)
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    assert _final(events).reason == "fallback_extractive:http_500"


async def test_a_server_that_dies_mid_answer_is_named_in_the_log(
    scripted_server: ScriptedServer,
    kb_config: KnowledgeConfig,
    retriever: Retriever,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A model server that crashes (issue 7: illegal instruction in llama.cpp) must not read as 'unreachable'."""
    question = "Was kostet der Ausweis im Bürgerbüro?"
    scripted_server.scripts[question] = Script(["Der Ausweis", " kostet"], die_after_token=1)
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    assert _final(events).reason == "fallback_extractive:connection_error"
    messages = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("dropped the connection while answering" in m and "crashed" in m for m in messages), messages


async def test_abstention_on_an_unknown_topic_clarifies_then_hands_off(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Wie wird das Wetter morgen?"
    scripted_server.scripts[question] = Script(["KEINE", "_ANTWORT"])
    config = _config(kb_config, scripted_server.url, llm_min_confidence=0.0)
    first = _final(await _run(config, retriever, AnswerRequest(question)))
    # understood, but nothing the town's pages know: what the hotline is for (issue 14 item 3)
    assert (first.action, first.reason) == (Action.CLARIFY, "fallback_out_of_scope:abstained")
    history = (Turn("caller", question), Turn("bot", first.text))
    second = _final(await _run(config, retriever, AnswerRequest(question, history=history)))
    assert (second.action, second.reason) == (Action.HANDOFF, "fallback_handoff:abstained")


async def test_off_topic_questions_do_not_wait_for_the_model(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    scripted_server.requests.clear()
    config = _config(kb_config, scripted_server.url)
    answer = _final(await _run(config, retriever, AnswerRequest("Wie wird das Wetter morgen?")))
    assert (answer.action, answer.reason) == (Action.CLARIFY, "fallback_out_of_scope:low_confidence")
    assert answer.text.startswith("Dazu kann ich leider nichts sagen.")
    assert scripted_server.requests == []


async def test_answer_citing_another_authority_is_a_redirect(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Wo kann ich mein Auto zulassen?"
    scripted_server.scripts[question] = Script(
        ["Das macht die Zulassungsstelle des Kreises Musterkreis [kfz-zulassung]."]
    )
    answer = _final(await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question)))
    assert (answer.action, answer.reason, answer.sources) == (Action.REDIRECT, "verified", ["kfz-zulassung"])


async def test_english_caller_gets_the_answer_in_english(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "How much is an ID card?"
    scripted_server.scripts[question] = Script(["The ID card costs 37 euros [personalausweis-beantragen]."])
    scripted_server.requests.clear()
    config = _config(kb_config, scripted_server.url, llm_min_confidence=0.0)  # German-only KB here
    answer = _final(await _run(config, retriever, AnswerRequest(question, language="en")))
    assert (answer.text, answer.language, answer.reason) == ("The ID card costs 37 euros.", "en", "verified")
    assert "antworte auf Englisch" in scripted_server.requests[-1]["messages"][0]["content"]


async def test_the_guard_answers_before_the_model_is_asked(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    scripted_server.requests.clear()
    events = await _run(
        _config(kb_config, scripted_server.url), retriever, AnswerRequest("Hilfe, es brennt im Keller!")
    )
    answer = _final(events)
    assert answer.action == Action.EMERGENCY and "112" in _spoken(events)[-1]
    assert scripted_server.requests == []


# ---- issue 9 item 3: the answer must fit the asked question type, else the extractive fact answer
async def test_an_answer_of_the_wrong_type_falls_back_to_the_extractive_fact_answer(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Was kostet ein Personalausweis bei euch?"
    # Verified (nothing in it is unsourced), but a cost question answered without an amount.
    scripted_server.scripts[question] = Script(
        ["Den Personalausweis ", "beantragen Sie im Bürgerbüro [personalausweis-beantragen]."]
    )
    scripted_server.requests.clear()
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    spoken = _spoken(events)
    assert spoken[0] == EXTRACTIVE_PERSO_FEE and not any("beantragen Sie" in s for s in spoken)
    answer = _final(events)
    assert (answer.action, answer.reason) == (Action.ANSWER, "fallback_extractive:wrong_type")
    user = scripted_server.requests[-1]["messages"][1]["content"]
    assert "Gefragt ist der Preis" in user  # the prompt said what is asked


async def test_a_duration_question_answered_with_a_fee_is_rejected(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Wie lange dauert es, bis der Personalausweis fertig ist?"
    scripted_server.scripts[question] = Script(["Der Ausweis kostet 37 Euro [personalausweis-beantragen]."])
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    answer = _final(events)
    assert answer.reason == "fallback_extractive:wrong_type"
    assert "3 bis 4 Wochen" in _spoken(events)[0] and "37 Euro" not in answer.text


async def test_a_fitting_value_in_the_second_sentence_releases_both(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Was muss ich für den Perso bezahlen?"
    scripted_server.scripts[question] = Script(
        [
            "Den Ausweis beantragen Sie im Bürgerbüro [personalausweis-beantragen].",
            " Er kostet 37 Euro [personalausweis-beantragen].",
        ]
    )
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    assert _spoken(events) == ["Den Ausweis beantragen Sie im Bürgerbüro.", "Er kostet 37 Euro."]
    assert _final(events).reason == "verified"


async def test_the_models_written_form_is_spoken_for_the_ear(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    """Issue 9 item 6 in LLM mode: weekday abbreviations, dashes, "€" and brackets of a verified model sentence are
    rewritten as in the extractive mode; the numbers stay as the page has them."""
    question = "Was kostet der Perso und wann hat das Bürgerbüro auf?"
    scripted_server.scripts[question] = Script(
        [
            "Der Ausweis kostet 37 € (unter 24 Jahren 22,80 €) [personalausweis-beantragen].",
            " Das Bürgerbüro hat Mo–Fr 8–12 Uhr geöffnet [personalausweis-beantragen].",
        ]
    )
    events = await _run(_config(kb_config, scripted_server.url), retriever, AnswerRequest(question))
    assert _final(events).reason == "verified", _final(events)
    assert _spoken(events) == [
        "Der Ausweis kostet 37 Euro, unter 24 Jahren 22,80 Euro.",
        "Das Bürgerbüro hat montags bis freitags 8 bis 12 Uhr geöffnet.",
    ]


async def test_the_prompt_asks_for_plain_spoken_language() -> None:
    from knowledge.llm import SYSTEM_PROMPT

    for rule in (
        "höchstens zwei kurzen Sätzen",
        "Einfacher Sprache",
        "aktiv",
        "Amtswörter",
        "Zahlen deutlich",
    ):
        assert rule in SYSTEM_PROMPT


async def test_a_question_about_today_gets_the_date_in_the_prompt(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Hat das Bürgerbüro heute für den Personalausweis offen?"
    scripted_server.scripts[question] = Script(["KEINE_ANTWORT"])
    scripted_server.requests.clear()
    engine = build_answer_engine(_config(kb_config, scripted_server.url), retriever)
    engine._extractive.today = lambda: date(2026, 12, 5)  # type: ignore[attr-defined]
    [event async for event in engine.stream(AnswerRequest(question))]
    user = scripted_server.requests[-1]["messages"][1]["content"]
    assert "Heute ist Samstag, der 5. Dezember 2026." in user


async def test_a_possibly_misheard_question_is_confirmed_before_the_model_is_asked(
    scripted_server: ScriptedServer, kb_config: KnowledgeConfig, retriever: Retriever
) -> None:
    question = "Was kostet ein Personalausweis?"
    scripted_server.scripts[question] = Script(["Er kostet 37 Euro [personalausweis-beantragen]."])
    scripted_server.requests.clear()
    config = _config(kb_config, scripted_server.url)
    unsure = AsrSignals(min_avg_logprob=-0.9, max_no_speech_prob=0.1)
    asked = _final(await _run(config, retriever, AnswerRequest(question, asr_confidence=0.4, asr=unsure)))
    assert (asked.action, asked.reason, asked.mode) == (Action.CLARIFY, "confirm", "llm")
    assert asked.text == "Geht es um das Thema „Personalausweis beantragen“?"
    assert scripted_server.requests == []
    history = (Turn("caller", question), Turn("bot", asked.text))
    answer = _final(await _run(config, retriever, AnswerRequest("ja", history=history)))
    assert (answer.action, answer.sources[0]) == (Action.ANSWER, "personalausweis-beantragen")
    assert "37 Euro" in answer.text and answer.reason.startswith("confirmed_")


XZUFI_SERVICES = Path(__file__).resolve().parents[1] / "data" / "xzufi" / "musterstadt-buergeramt.xml"
PARKING = "xzufi-l100001"
# The importer's extractive summary of the parking permit (its Kurztext): what is spoken when the LLM's fails.
PARKING_EXTRACTIVE = (
    "Mit einem Bewohnerparkausweis parken Sie in der Bewohnerparkzone Ihrer Straße ohne Parkschein."
)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[KnowledgeConfig, Retriever]:
    """An index of imported XZuFi services: pages without a curated spoken answer."""
    root = tmp_path_factory.mktemp("llm-xzufi")
    kb = root / "kb"
    kb.mkdir()
    shutil.copy(XZUFI_SERVICES, kb / XZUFI_SERVICES.name)
    config = KnowledgeConfig(town="Musterstadt", index_dir=root / "index", kb_sources=[kb])
    return config, load_retriever(config)


async def test_a_general_question_about_an_imported_page_gets_the_llms_verified_summary(
    scripted_server: ScriptedServer, imported: tuple[KnowledgeConfig, Retriever]
) -> None:
    config, retriever = imported
    question = "Was ist ein Bewohnerparkausweis?"
    scripted_server.scripts[question] = Script(
        [
            "Mit dem Bewohnerparkausweis parken Sie in Ihrer Zone ohne Parkschein [1].",
            f" Sie bekommen ihn, wenn Sie dort mit Hauptwohnsitz gemeldet sind [{PARKING}].",
        ]
    )
    scripted_server.requests.clear()
    events = await _run(_config(config, scripted_server.url), retriever, AnswerRequest(question))
    assert _spoken(events) == [
        "Mit dem Bewohnerparkausweis parken Sie in Ihrer Zone ohne Parkschein.",
        "Sie bekommen ihn, wenn Sie dort mit Hauptwohnsitz gemeldet sind.",
    ]
    answer = _final(events)
    assert (answer.action, answer.reason, answer.sources) == (Action.ANSWER, "verified_summary", [PARKING])
    user = scripted_server.requests[-1]["messages"][1]["content"]
    assert "fasse die Passage in höchstens zwei kurzen Sätzen zusammen" in user
    assert f"[1] ID: {PARKING}\n" in user and user.count("ID: ") == 1  # the one page, nothing else
    assert "Hauptwohnsitz gemeldet" in user  # the Volltext, not only the Kurztext
    assert "37 Euro" not in user  # fees are the fact answers' business, not the summary's


async def test_an_imported_summary_with_an_unsourced_number_falls_back_to_the_extractive_summary(
    scripted_server: ScriptedServer, imported: tuple[KnowledgeConfig, Retriever]
) -> None:
    config, retriever = imported
    question = "Was ist der Bewohnerparkausweis?"
    scripted_server.scripts[question] = Script(
        [f"Mit dem Bewohnerparkausweis parken Sie bis zu 3 Stunden ohne Parkschein [{PARKING}]."]
    )
    events = await _run(_config(config, scripted_server.url), retriever, AnswerRequest(question))
    spoken = _spoken(events)
    assert spoken[0] == PARKING_EXTRACTIVE
    assert not any("3 Stunden" in s for s in spoken)
    answer = _final(events)
    assert (answer.action, answer.reason) == (Action.ANSWER, "fallback_extractive:unsupported_fact")
    assert answer.sources == [PARKING]


async def test_a_fee_question_about_an_imported_page_is_no_summary(
    scripted_server: ScriptedServer, imported: tuple[KnowledgeConfig, Retriever]
) -> None:
    config, retriever = imported
    question = "Was kostet der Bewohnerparkausweis?"
    scripted_server.scripts[question] = Script([f"Er kostet 37 Euro für ein Jahr [{PARKING}]."])
    scripted_server.requests.clear()
    events = await _run(_config(config, scripted_server.url), retriever, AnswerRequest(question))
    assert _final(events).reason == "verified"
    assert "zusammen" not in scripted_server.requests[-1]["messages"][1]["content"]
