"""An LLM answer through the call's answer step reaches /metrics (decision 0992): the LLM's time to first token and
the answer's mode and reason. Real parts: the answer step of the call pipeline, the call record, the LLM answer
engine on a small knowledge base, and a model server on 127.0.0.1 that streams its answer after a pause."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.tests.utils import SleepFrame, run_test

from knowledge.config import AnswerConfig, KnowledgeConfig, LlmConfig
from knowledge.engine import build_answer_engine
from knowledge.index import load_retriever
from voicebot.metrics import METRICS
from voicebot.pipeline.answer import AnswerProcessor
from voicebot.pipeline.frames import CallerQuestionFrame
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import CallSettings

PAGE = """---
id: personalausweis-beantragen
title: Personalausweis beantragen
department: Bürgerbüro
spoken_answer: "Den Personalausweis beantragen Sie im Bürgerbüro. Er kostet 37 Euro, unter 24 Jahren 22,80 Euro."
---
# Personalausweis beantragen
Gebühr: 37,00 Euro, für Antragstellende unter 24 Jahren 22,80 Euro.
"""
SERVER_PAUSE_S = 0.4  # the model server holds the request this long, as a busy vLLM queues it
ANSWER = ["Der Ausweis ", "kostet 37 Euro ", "[personalausweis-beantragen]."]


def _chunk(content: str | None) -> bytes:
    choice = {"index": 0, "delta": {"content": content} if content else {}, "finish_reason": None}
    body = {"id": "c", "object": "chat.completion.chunk", "created": int(time.time()), "model": "m"}
    return f"data: {json.dumps({**body, 'choices': [choice]})}\n\n".encode()


@pytest.fixture
async def model_server() -> AsyncIterator[str]:
    async def completions(request: web.Request) -> web.StreamResponse:
        await request.json()
        await asyncio.sleep(SERVER_PAUSE_S)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for token in ANSWER:
            await response.write(_chunk(token))
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


def _sample(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


async def test_an_llm_answer_reports_its_first_token_time_and_reason(
    model_server: str, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "personalausweis.md").write_text(PAGE, encoding="utf-8")
    config = KnowledgeConfig(
        town="Musterstadt",
        index_dir=tmp_path / "index",
        kb_sources=[kb],
        llm=LlmConfig(base_url=model_server, timeout_s=5.0, first_token_timeout_s=3.0),
        answer=AnswerConfig(mode="llm", llm_min_confidence=0.3),
    )
    engine = build_answer_engine(config, load_retriever(config))
    transcript = CallTranscript(channel="simulation", channel_call_id="llm-metrics")
    step = AnswerProcessor(engine=engine, transcript=transcript, call=CallSettings())
    first_tokens = _sample("voicebot_llm_first_token_seconds_count")
    first_token_time = _sample("voicebot_llm_first_token_seconds_sum")
    verified = _sample("voicebot_answers_total", mode="llm", reason="verified")

    question = CallerQuestionFrame(text="Was kostet ein Personalausweis?", language="de")
    down, _up = await run_test(step, frames_to_send=[question, SleepFrame(sleep=3.0)])

    assert [f.text for f in down if isinstance(f, TTSSpeakFrame)] == ["Der Ausweis kostet 37 Euro."]
    (answer,) = [t for t in transcript.turns if t.role == "bot"]
    assert answer.reason == "verified"
    recorded_ms = answer.timings_ms["engine_llm_first_token"]
    assert recorded_ms >= SERVER_PAUSE_S * 1000  # the server's pause is inside it
    # /metrics: one more first-token observation, of the recorded time, and one more verified LLM answer.
    assert _sample("voicebot_llm_first_token_seconds_count") == first_tokens + 1
    assert _sample("voicebot_llm_first_token_seconds_sum") - first_token_time == pytest.approx(
        recorded_ms / 1000, abs=0.001
    )
    assert _sample("voicebot_answers_total", mode="llm", reason="verified") == verified + 1
