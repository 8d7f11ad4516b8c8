"""The console app behind a real uvicorn on a free loopback port, and a small knowledge base for it: what the
Chromium console tests share."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import uvicorn

from knowledge.config import SAMPLE_KB_DIR
from knowledge.index import KnowledgeIndex
from voicebot.settings import Settings
from voicebot.web.app import create_app


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """``create_app(settings)`` served by uvicorn; yields its base URL and stops it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, None), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def sample_pages_kb(settings: Settings, base: Path, pages: Iterable[str]) -> None:
    """A knowledge base of the named sample pages under ``base``, indexed, with its own correction layer."""
    kb = base / "kb"
    kb.mkdir()
    for name in pages:
        shutil.copy(SAMPLE_KB_DIR / name, kb / name)
    settings.paths.kb_sources = [kb]
    settings.paths.index_dir = base / "index"
    settings.paths.corrections_dir = base / "korrekturen"
    KnowledgeIndex.open(settings.paths.index_dir).ingest([kb])
