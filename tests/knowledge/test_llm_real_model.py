"""LLM mode against a real OpenAI-compatible server process: llama-cpp-python serving the Gemma-3-270M GGUF.

Gemma-3-270M is a *base* model: it does not follow the instructions and tends to echo or continue the prompt.
This test proves the pipeline is safe with such a model: the call completes, the answer is either verified
against the passages or replaced by a fallback with a recorded reason, and no number that is not in the
knowledge base is ever spoken.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from knowledge import verify
from knowledge.config import AnswerConfig, KnowledgeConfig, LlmConfig, RetrievalConfig
from knowledge.engine import build_answer_engine
from knowledge.index import load_retriever
from knowledge.types import Action, AnswerRequest, FinalEvent, SentenceEvent
from voicebot.benchmarks.serve_process import free_port

PAGE = """---
id: personalausweis-beantragen
title: Personalausweis beantragen
department: Bürgerbüro
spoken_answer: "Den Personalausweis beantragen Sie im Bürgerbüro. Er kostet 37 Euro, unter 24 Jahren 22,80 Euro."
synonyms: [Perso]
---
# Personalausweis beantragen
Gebühr 37,00 Euro, unter 24 Jahren 22,80 Euro. Geöffnet montags bis freitags 8 bis 12 Uhr.
"""
OTHER = """---
id: sperrmuell
title: Sperrmüll anmelden
spoken_answer: "Sperrmüll holen wir 2 Mal im Jahr kostenlos ab. Melden Sie ihn online an."
---
# Sperrmüll anmelden
Bis zu 5 Kubikmeter pro Abholung.
"""
READY_TIMEOUT_S = 40.0
LOG_TAIL_LINES = 15


@dataclass
class LlamaServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def death_report(self) -> str | None:
        """None while the server runs; else why the test cannot judge the model: exit code and the log's tail."""
        code = self.process.poll()
        if code is None:
            return None
        tail = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        signal_note = f" (signal {-code})" if code < 0 else ""
        return (
            f"the llama.cpp server died with exit code {code}{signal_note}: see its log {self.log_path}; "
            "last lines:\n" + "\n".join(tail)
        )


@pytest.fixture(scope="session")
def llama_server(
    embedded_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port; waits (bounded) until it serves."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_models_dir / "gemma-3-270m-q4_k_m.gguf"),
            "--chat_format",
            "gemma",
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", process, log_path)
    base_url = server.base_url
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            log.flush()
            assert process.poll() is None, server.death_report()
            try:
                if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama server not ready in time"
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_base_model_output_is_verified_or_replaced(llama_server: LlamaServer, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "perso.md").write_text(PAGE, encoding="utf-8")
    (kb / "sperrmuell.md").write_text(OTHER, encoding="utf-8")
    config = KnowledgeConfig(
        town="Musterstadt",
        index_dir=tmp_path / "index",
        kb_sources=[kb],
        llm=LlmConfig(
            base_url=llama_server.base_url, max_tokens=48, timeout_s=50.0, first_token_timeout_s=40.0
        ),
        retrieval=RetrievalConfig(top_k=1),
        answer=AnswerConfig(mode="llm"),
    )
    retriever = load_retriever(config)
    engine = build_answer_engine(config, retriever)
    events = [event async for event in engine.stream(AnswerRequest("Was kostet ein Personalausweis?"))]

    final = events[-1]
    assert isinstance(final, FinalEvent)
    answer = final.answer
    if answer.reason.endswith(
        ":connection_error"
    ):  # a crashed server closes the socket as it dies: let it exit
        with contextlib.suppress(subprocess.TimeoutExpired):
            llama_server.process.wait(5)
    assert llama_server.death_report() is None, llama_server.death_report()
    spoken = " ".join(e.text for e in events if isinstance(e, SentenceEvent))
    assert spoken == answer.text and answer.mode == "llm"
    outcome, _, why = answer.reason.partition(":")
    assert outcome in {"verified", "verified_partial", "fallback_extractive", "fallback_clarify"}, (
        answer.reason
    )
    assert why not in {"timeout", "connection_error"}, f"the model's output was never judged: {answer.reason}"
    if outcome.startswith("verified"):
        assert answer.action == Action.ANSWER and answer.sources
        # issue 9 item 3: a cost question's spoken answer states an amount (or "kostenlos"), else it was rejected
        assert verify.fits_question_type(answer.text, "cost"), answer.text
    else:
        assert why in {
            "unsupported_fact",
            "unknown_citation",
            "no_citation",
            "prompt_echo",
            "too_long",
            "abstained",
            "empty",
            "wrong_type",
        }
    knowledge_text = [PAGE, OTHER]
    assert verify.unsupported_facts(spoken, knowledge_text) == [], (
        "a number absent from the sources was spoken"
    )
