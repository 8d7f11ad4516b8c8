"""The server's knowledge reload on its own: a real index on disk, a real ingest, the engine swapped behind the
wrapper every call holds (issue 14 item 8; the end-to-end run with `voicebot serve` is tests/web/test_kb_reload.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from kb_fixtures import write_fixture_kb

from knowledge.config import KnowledgeConfig
from knowledge.engine import ReloadableAnswerEngine, build_answer_engine
from knowledge.index import MANIFEST, KnowledgeIndex, index_generation
from knowledge.types import AnswerRequest
from voicebot.knowledge_reload import KnowledgeReloader

QUESTION = AnswerRequest("Was kostet die Hundesteuer?")


def _setup(tmp_path: Path) -> tuple[KnowledgeConfig, Path, ReloadableAnswerEngine]:
    kb = write_fixture_kb(tmp_path / "kb")
    config = KnowledgeConfig(town="Musterstadt", index_dir=tmp_path / "index", kb_sources=(kb,))
    KnowledgeIndex.open(config.index_dir).ingest([kb])
    generation = index_generation(config.index_dir)
    assert generation == 1
    return config, kb, ReloadableAnswerEngine(build_answer_engine(config), generation)


async def test_a_new_generation_is_swapped_in_and_answers_the_next_question(tmp_path: Path) -> None:
    config, kb, engine = _setup(tmp_path)
    assert "96 Euro" in (await engine.answer(QUESTION)).text
    old = engine.current

    (kb / "hund.md").write_text((kb / "hund.md").read_text(encoding="utf-8").replace("96 Euro", "120 Euro"))
    KnowledgeIndex.open(config.index_dir).ingest([kb])  # what `voicebot kb ingest` does in its own process
    reloader = KnowledgeReloader(config, engine, poll_s=0.05)
    task = asyncio.create_task(reloader.run())
    try:
        async with asyncio.timeout(30):
            while engine.generation != 2:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert engine.current is not old
    assert "120 Euro" in (await engine.answer(QUESTION)).text
    assert "96 Euro" in (await old.answer(QUESTION)).text  # an answer already under way keeps its engine


async def test_an_unreadable_index_keeps_the_old_engine_and_is_tried_once(tmp_path: Path) -> None:
    config, _kb, engine = _setup(tmp_path)
    old = engine.current
    manifest_path = config.index_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest.update(generation=7, chunks="chunks-7.json")  # a half-copied index: the chunks file is missing
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

    reloader = KnowledgeReloader(config, engine, poll_s=0.05)
    attempts = 0
    original = reloader.reload

    async def counting(generation: int) -> bool:
        nonlocal attempts
        attempts += 1
        return await original(generation)

    reloader.reload = counting  # type: ignore[method-assign]
    task = asyncio.create_task(reloader.run())
    await asyncio.sleep(0.5)  # ten polls
    task.cancel()
    assert attempts == 1
    assert engine.current is old and engine.generation == 1
    assert "96 Euro" in (await engine.answer(QUESTION)).text
