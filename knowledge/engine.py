"""The one factory for answer engines, used by the voice pipeline, the CLI and the evaluation.

The mode comes from ``config.resolved_answer_mode()``: ``llm`` when an OpenAI-compatible endpoint is
configured (or asked for), else ``extractive``. Both modes run the same guard first and share one retriever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from knowledge.config import KnowledgeConfig
from knowledge.extractive import ExtractiveAnswerEngine, Retriever
from knowledge.types import Answer, AnswerEngine, AnswerEvent, AnswerRequest


class EngineConfigurationError(ValueError):
    """The configuration asks for something that cannot be built (one line saying what to fix)."""


def build_answer_engine(
    config: KnowledgeConfig,
    retriever: Retriever | None = None,
    mode: Literal["llm", "extractive"] | None = None,
) -> AnswerEngine:
    """Build the configured answer engine; ``retriever`` defaults to the on-disk index of ``config``.

    ``mode`` overrides ``config.resolved_answer_mode()`` (the CLI's ``--mode``).
    """
    chosen = mode or config.resolved_answer_mode()
    if chosen == "llm" and not config.llm.base_url:
        raise EngineConfigurationError(
            "answer mode 'llm' needs an OpenAI-compatible endpoint: set llm.base_url "
            "(e.g. VOICEBOT_LLM__BASE_URL=http://127.0.0.1:8000/v1)"
        )
    if retriever is None:
        from knowledge.index import load_retriever

        retriever = load_retriever(config)
        retriever.search("Öffnungszeiten Rathaus", 1)  # load the embedding model now, not in the first call
    extractive = ExtractiveAnswerEngine(config, retriever)
    if chosen == "extractive":
        return extractive
    from knowledge.llm import LlmAnswerEngine

    return LlmAnswerEngine(config, extractive)


class ReloadableAnswerEngine:
    """An :class:`AnswerEngine` whose engine can be replaced while calls use it (a re-ingested index).

    Why: ``voicebot serve`` builds its engine once, and every call keeps a reference to it. Each question asks
    this wrapper, which hands it to the engine current *at that moment*: a question already being answered
    finishes on the engine it started with (its retriever stays in memory until it is done), the next question
    of the same call and every new call get the new one. Replacing is one attribute assignment (atomic for the
    event loop and for threads).
    """

    def __init__(self, engine: AnswerEngine, generation: int | None = None) -> None:
        self.current = engine
        self.generation = generation  # the index generation ``current`` was built from (None: unknown)

    def replace(self, engine: AnswerEngine, generation: int | None) -> None:
        self.current = engine
        self.generation = generation

    def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        return self.current.stream(request)

    async def answer(self, request: AnswerRequest) -> Answer:
        return await self.current.answer(request)
