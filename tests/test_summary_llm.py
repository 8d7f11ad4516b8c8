"""The caller's request written by an LLM (voicebot/staff/summary_llm.py), against a scripted OpenAI-compatible
endpoint (a real HTTP server on 127.0.0.1): the model gets the call's turns and the hand-off reason; its text is
shown only when the turns back it; an unreachable model leaves the turns' text; in the console the model's text
replaces the turns' one once written, without holding up the queue."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_summary import OPEN_QUESTION, handed_off_call
from web.test_console import add_users, make_settings, sign_in

from knowledge.config import LlmConfig
from voicebot.db.engine import make_engine
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.staff.summary import summarize
from voicebot.staff.summary_llm import LlmSummaryWriter
from voicebot.web.app import create_app

GOOD = "Die Person fragt, ob sie den Ausweis (37 Euro) für ihre Mutter im Pflegeheim abholen darf."
INVENTED = "Die Person will am 3. Januar den Ausweis für 45 Euro abholen."


class ScriptedModel:
    """An OpenAI-compatible chat endpoint answering with the scripted texts in turn; keeps the requests."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model.requests.append({"path": self.path, **body})
                reply = model.replies.pop(0) if model.replies else ""
                payload = json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    scripted = ScriptedModel([GOOD, INVENTED])
    yield scripted
    scripted.close()


def test_the_model_writes_the_request_and_the_turns_check_it(model: ScriptedModel) -> None:
    record = handed_off_call().to_dict()
    writer = LlmSummaryWriter(LlmConfig(base_url=model.url, model="gemma"), "Musterstadt")
    try:
        used = summarize(record, writer=writer)
        refused = summarize(record, writer=writer)
    finally:
        writer.close()
    assert used.written_by == "llm" and used.request == GOOD and used.open_question == OPEN_QUESTION
    assert refused.written_by == "turns" and refused.request.startswith("Die anrufende Person fragte zuerst")
    assert refused.problems == ("Zahl 3 kommt im Gespräch nicht vor", "Zahl 45 kommt im Gespräch nicht vor")
    sent = model.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "gemma"
    system, user = sent["messages"]
    assert "Stadtverwaltung Musterstadt" in system["content"]
    assert f"Anrufer/in: {OPEN_QUESTION}" in user["content"] and "Bot: Guten Tag" in user["content"]
    assert user["content"].endswith("Grund der Weiterleitung: Der Bot konnte die Frage nicht beantworten.")


def test_an_unreachable_model_leaves_the_turns_text() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    writer = LlmSummaryWriter(LlmConfig(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=2.0), "Musterstadt")
    try:
        summary = summarize(handed_off_call().to_dict(), writer=writer)
    finally:
        writer.close()
    assert summary.written_by == "turns" and summary.problems == ("Fehler: APIConnectionError",)


async def test_the_console_shows_the_models_text_once_written(model: ScriptedModel, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.llm.base_url = model.url
    add_users(settings)
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    store = SqlCallRecordStore(engine, fallback_dir=tmp_path / "fallback")
    try:
        transcript = handed_off_call(store)
        assert store.flush()
        Repository(engine).enqueue(transcript.call_id, "Bürgerbüro", "engine_handoff")
        transport = httpx.ASGITransport(app=create_app(settings, None))
        async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as client:
            assert (await sign_in(client, "anna")).status_code == 303
            first = (await client.get("/konsole/warteschlange")).json()
            assert "Die anrufende Person fragte zuerst" in first["html"]  # at once: the turns' text
            later = first
            for _ in range(100):  # the model answers in the background
                if GOOD in later["html"]:
                    break
                await asyncio.sleep(0.05)
                later = (await client.get("/konsole/warteschlange")).json()
        assert GOOD in later["html"] and "Vom Sprachmodell zusammengefasst" in later["html"]
        assert later["signature"] != first["signature"]  # so an open console replaces the list
        assert len(model.requests) == 1  # once per version of the record
    finally:
        store.close()
        engine.dispose()
