"""`voicebot kb ingest` while `voicebot serve` runs (issue 14 item 8): a browser call in progress gets the new fact
at its next question, without a restart and without being dropped; /healthz names the new index generation.

Real parts throughout: the server and the ingest are the CLI in their own processes, the caller is Chromium with a
German question from espeak-ng as its microphone, the answer is read from the page's live captions and from the
call record."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop.peers import REPO_ROOT, VoicebotServer, espeak_wav

from web.chromium import CAPTIONS, CHROMIUM, IN_CALL_SELECTOR, RECORD_STATES, fake_microphone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SAMPLE = REPO_ROOT / "knowledge" / "sample" / "musterstadt"
PAGES = ("hallenbad.md", "buergerbuero-kontakt.md", "gelbe-tonne.md", "hundesteuer-anmelden.md")
PAGE = "buergerbuero-kontakt.md"
# espeak-ng's German varies from one synthesis to the next; at 140 words per minute whisper-base hears this one the
# same way every time ("Wir sind die Öffnungszeiten im Bürgermeuro."); "Hallenbad" it does not hear at all.
QUESTION = "Wie sind die Öffnungszeiten im Bürgerbüro?"
OLD_HOURS, NEW_HOURS = "8 bis 12 Uhr", "9 bis 13 Uhr"


@pytest.fixture(scope="module")
def kb_server(
    tmp_path_factory: pytest.TempPathFactory, embedded_models_dir: Path
) -> Iterator[VoicebotServer]:
    root = tmp_path_factory.mktemp("kb-reload")
    kb = root / "kb"
    kb.mkdir()
    for page in PAGES:
        shutil.copy(SAMPLE / page, kb / page)
    (root / "serve").mkdir()
    server = VoicebotServer(
        root / "serve",
        models_dir=embedded_models_dir,
        index_dir=root / "index",
        paths__kb_sources=json.dumps([str(kb)]),
        call__greeting="Guten Tag, hier ist das Rathaus.",
        call__silence_timeout_s="40",  # the caller asks every ~30 s (the microphone file loops)
    )
    server.start()
    yield server
    assert server.stop() == 0, server.log_tail()


def _ingest(server: VoicebotServer) -> subprocess.CompletedProcess[str]:
    """`voicebot kb ingest` as an operator runs it: another process, same settings as the server."""
    env = {k: v for k, v in server.env.items() if k != "VOICEBOT_PATHS__CALLS_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "kb", "ingest"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _generation(server: VoicebotServer) -> int | None:
    health = server.health()
    return None if health is None else health["knowledge_generation"]


async def test_ingest_while_serving_reaches_the_call_in_progress(
    kb_server: VoicebotServer, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    kb = Path(json.loads(kb_server.env["VOICEBOT_PATHS__KB_SOURCES"])[0])
    microphone = espeak_wav(
        QUESTION, tmp_path / "mic.wav", rate=48000, lead_s=5.0, tail_s=24.0, words_per_minute=140
    )
    started = time.time()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=fake_microphone(microphone))
        try:
            page = await browser.new_page()
            await page.goto(f"{kb_server.http_url}/call")
            await page.evaluate(RECORD_STATES)
            await page.get_by_role("button", name="Rathaus anrufen").click()
            await page.wait_for_selector(IN_CALL_SELECTOR, timeout=30000)
            await _wait_for_caption(page, OLD_HOURS, timeout_s=90)

            # The page changes and is ingested by another process while the call goes on.
            generation_before = _generation(kb_server)
            page_file = kb / PAGE
            page_file.write_text(page_file.read_text(encoding="utf-8").replace(OLD_HOURS, NEW_HOURS), "utf-8")
            ingest = await asyncio.to_thread(_ingest, kb_server)
            assert ingest.returncode == 0, ingest.stdout + ingest.stderr
            deadline = time.monotonic() + 30
            while _generation(kb_server) == generation_before and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert _generation(kb_server) != generation_before, kb_server.log_tail()

            new = await _wait_for_caption(page, NEW_HOURS, timeout_s=120)
            assert _has(new, NEW_HOURS)
            states = await page.evaluate("() => window.__states")
            assert "ended" not in states, states  # the call was never dropped
            assert kb_server.health()["active_calls"] == 1  # type: ignore[index]
            await page.get_by_role("button", name="Auflegen").click()
            await page.wait_for_selector('#status[data-state="ended"]', timeout=5000)
        finally:
            await browser.close()

    record = kb_server.closed_transcript_since(started)
    answers = [t["text"] for t in record["turns"] if t["role"] == "bot" and t["kind"] == "answer"]
    first_new = next(i for i, text in enumerate(answers) if _has(text, NEW_HOURS))
    assert any(_has(text, OLD_HOURS) for text in answers[:first_new]), answers
    assert record["ended_reason"] == "hangup", record["ended_reason"]  # the caller hung up, nothing else
    assert "knowledge index reloaded" in kb_server.log_tail(20000)


def _has(text: str, hours: str) -> bool:
    return hours in " ".join(text.split())


async def _wait_for_caption(page: object, needle: str, *, timeout_s: float) -> str:
    """The first bot caption line containing ``needle`` (polling the live log)."""
    deadline = time.monotonic() + timeout_s
    seen: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        seen = await page.evaluate(CAPTIONS)  # type: ignore[attr-defined]
        for caption in seen:
            if caption["speaker"] == "bot" and needle in caption["text"]:
                return caption["text"]
        await asyncio.sleep(0.5)
    raise AssertionError(f"no bot caption with {needle!r} within {timeout_s} s: {seen}")
