"""Issue 11's chain end to end in Chromium over a real server (uvicorn on loopback), a real SQLite database and a
real knowledge index (four sample pages, e5, the extractive engine). The calls are written as a call does it —
the real answer engine answers, a real :class:`CallTranscript` writes the record through the real store — but
without audio (channel ``webrtc``, so the dashboard and the gap report count them as citizens' calls): the
simulation's audio path would cost a minute per call here. A caller asks what the sauna costs and gets the
bath's entry fee (the page does not know the sauna); the supervisor finds the call by full-text search, flags it
and drafts the missing information; the gap report lists the question; a second account approves; the next call
asking the same question is answered from the correction and cites it; the dashboard counts both calls; the gap
report no longer lists the question."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from knowledge.engine import build_answer_engine
from knowledge.types import AnswerRequest
from voicebot.db.engine import make_engine
from voicebot.db.store import SqlCallRecordStore
from voicebot.pipeline.frames import AsrResult, CallerQuestionFrame
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import Settings
from web.chromium import CHROMIUM
from web.console_server import sample_pages_kb, serving
from web.test_console import PASSWORD, add_users, make_settings

PAGES = ("hallenbad.md", "buergerbuero-kontakt.md", "gelbe-tonne.md", "hundesteuer-anmelden.md")
QUESTION = "Was kostet die Sauna im Hallenbad?"
MISSING = "Im Hallenbad gibt es eine Sauna. Der Saunazuschlag beträgt 3 Euro."


async def call(settings: Settings) -> tuple[str, str, list[str]]:
    """One caller asks QUESTION; the engine answers from the current index; the record is stored."""
    answer = await build_answer_engine(settings.knowledge()).answer(AnswerRequest(QUESTION))
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    store = SqlCallRecordStore(engine, fallback_dir=settings.paths.database_file.parent / "fallback")
    try:
        transcript = CallTranscript(channel="webrtc", channel_call_id="kette", store=store)
        greeting = transcript.add_bot_turn("greeting", "Hier ist der KI-Assistent von Musterstadt.")
        transcript.bot_turn_played(transcript.index_of(greeting))
        asr = AsrResult(QUESTION, "de", -0.2, 0.02, 2.0, 300.0)
        transcript.add_caller_question(CallerQuestionFrame(text=QUESTION, language="de", asr=[asr]))
        turn = transcript.add_bot_turn("answer", "")
        transcript.finish_answer(turn, answer, {"retrieval": 20.0})
        transcript.bot_turn_played(transcript.index_of(turn))
        transcript.end("goodbye")
        assert store.flush()
    finally:
        store.close()
        engine.dispose()
    return transcript.call_id, " ".join(answer.text.split()), list(answer.sources)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Settings]]:
    settings = make_settings(tmp_path)
    sample_pages_kb(settings, tmp_path, PAGES)
    add_users(settings)
    async with serving(settings) as url:
        yield url, settings


async def sign_in_as(page: Any, base: str, username: str) -> None:
    await page.context.clear_cookies()
    await page.goto(f"{base}/anmelden")
    await page.get_by_label("Benutzername").fill(username)
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(f"{base}/konsole")


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_wrong_answer_is_found_flagged_corrected_approved_and_the_next_call_uses_it(
    server: tuple[str, Settings],
) -> None:
    from playwright.async_api import async_playwright

    base, settings = server
    first_call, said, cited = await call(settings)
    assert "Sauna" not in said and "3 Euro" not in said and cited == ["hallenbad"], (said, cited)
    today = datetime.now(ZoneInfo(settings.http.console_timezone)).strftime("%Y-%m-%d")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page: Any = await browser.new_page(locale="de-DE")
            page.set_default_timeout(10_000)
            # The supervisor finds the call by what the caller said, flags it and adds the missing information.
            await sign_in_as(page, base, "lea")
            await page.goto(f"{base}/konsole/anrufe")
            await page.get_by_label("Suche im Gesagten").fill("Sauna")
            await page.get_by_role("button", name="Filtern").click()
            await page.wait_for_selector("#anrufe")
            assert await page.locator('#anrufe a[href^="/konsole/anrufe/call_"]').count() == 1
            await page.locator(f'a[href="/konsole/anrufe/{first_call}"]').click()
            await page.wait_for_url(f"{base}/konsole/anrufe/{first_call}")
            await page.get_by_role("button", name="Anruf markieren").click()
            await page.wait_for_selector("#markierung")
            assert (await page.locator("#markierung").inner_text()).strip() == "ja"
            form = page.locator("details.korrektur").nth(1)  # the answer's (the greeting has one too)
            await form.locator("summary").click()
            await page.locator("#k2-fehlt").check()
            await page.locator("#k2-seite").select_option("hallenbad")
            await page.locator("#k2-text").fill(MISSING)
            await form.get_by_role("button", name="Als Entwurf speichern").click()
            await page.wait_for_url(f"{base}/konsole/korrekturen?neu=1")
            flagged = await page.request.get(f"{base}/konsole/anrufe?markiert=1")
            assert first_call in await flagged.text()
            gaps_before = await page.request.get(f"{base}/konsole/luecken?von={today}&bis={today}")
            assert f"„{QUESTION}“" in await gaps_before.text()

            # A second account approves: the correction page is ingested.
            await sign_in_as(page, base, "otto")
            await page.goto(f"{base}/konsole/korrekturen")
            await page.get_by_role("button", name="Freigeben und anwenden").click()
            await page.wait_for_load_state()
            applied = await page.request.get(f"{base}/konsole/korrekturen?status=approved")
            assert "Index-Stand 2" in await applied.text()

            # The next call asking the same question is answered from the correction, citing it.
            second_call, said, cited = await call(settings)
            assert "3 Euro" in said and cited == ["hallenbad#korrektur-1"], (said, cited)

            await page.goto(f"{base}/konsole/uebersicht?von={today}&bis={today}")
            day = datetime.now(ZoneInfo(settings.http.console_timezone)).strftime("%d.%m.%Y")
            row = page.locator("#tabelle-tage tr", has_text=day)
            assert (await row.locator("td").first.inner_text()).strip() == "2"
            await page.goto(f"{base}/konsole/luecken?von={today}&bis={today}")
            await page.wait_for_selector("main")
            assert QUESTION not in await page.content()
            assert second_call != first_call
        finally:
            await browser.close()
