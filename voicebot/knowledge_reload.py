"""A running ``voicebot serve`` picks up ``voicebot kb ingest`` without a restart and without dropping calls.

Why polling (decision 0467): ``kb ingest`` already writes each index generation completely and then switches
``manifest.json`` atomically, so the manifest's generation number is a stamp that only ever changes when a whole
new index is there. Reading that one small file every few seconds needs no signal plumbing (SIGHUP would need the
server's pid, and works neither in every container set-up nor on every platform), no endpoint to protect, and
also catches an index copied in by a deployment script.

When the stamp changes, the new index is opened and a new answer engine built in a worker thread (the event loop
and every call's audio keep running), then swapped into the server's :class:`ReloadableAnswerEngine`: new calls
and the next question of a running call use it; an answer being spoken finishes on the old one. An index that
cannot be read (half copied, wrong version) is logged once and the old engine stays.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from loguru import logger

from knowledge.config import KnowledgeConfig
from knowledge.engine import ReloadableAnswerEngine, build_answer_engine
from knowledge.index import KnowledgeIndex, index_generation
from knowledge.types import AnswerEngine

POLL_S = (
    2.0  # how often the manifest is read; an ingest shows up in calls within this time plus the load time
)


class KnowledgeReloader:
    """Polls the index generation of ``config.index_dir`` and swaps ``engine``'s engine when it changes."""

    def __init__(
        self, config: KnowledgeConfig, engine: ReloadableAnswerEngine, *, poll_s: float = POLL_S
    ) -> None:
        self.config = config
        self.engine = engine
        self.poll_s = poll_s
        self._failed_generation: int | None = None

    async def run(self) -> None:
        """Poll until cancelled (the server cancels it at shutdown)."""
        index_dir = Path(self.config.index_dir)
        while True:
            await asyncio.sleep(self.poll_s)
            generation = await asyncio.to_thread(index_generation, index_dir)
            if generation is None or generation in (self.engine.generation, self._failed_generation):
                continue
            await self.reload(generation)

    async def reload(self, generation: int) -> bool:
        """Build an engine from the index now on disk (announced as ``generation``) and swap it in."""
        started = time.perf_counter()
        try:
            engine, loaded = await asyncio.to_thread(self._build)
        except Exception as error:  # a broken or half-copied index must not take the server down
            self._failed_generation = generation
            logger.warning(
                f"knowledge index generation {generation} not loaded, keeping the old one: {error}"
            )
            return False
        previous = self.engine.generation
        self.engine.replace(engine, loaded)
        self._failed_generation = None
        took_ms = (time.perf_counter() - started) * 1000
        logger.info(f"knowledge index reloaded: generation {previous} → {loaded} in {took_ms:.0f} ms")
        return True

    def _build(self) -> tuple[AnswerEngine, int]:
        index = KnowledgeIndex.open(self.config.index_dir)
        if not index.chunks:
            raise ValueError(f"the index in {self.config.index_dir} is empty")
        retriever = index.retriever(self.config.retrieval, self.config.answer.area_ids)
        retriever.search(
            "Öffnungszeiten Rathaus", 1
        )  # build lazy parts now, not in a caller's first question
        return build_answer_engine(self.config, retriever), index.generation
