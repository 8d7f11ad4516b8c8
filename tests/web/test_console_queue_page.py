"""The live staff console in real headless Chromium, keyboard only, with axe-core on each page: a caller handed
off (a real stored call record, queued through the repository) appears in the open console without a reload,
with the bot's summary and a waiting time that counts up; "Annehmen" offers the caller to this member of staff;
when the holding process records the connection the page turns into the call with its wrap-up form, and the
wrap-up is stored; on the call-backs page an overdue call-back is claimed and its outcome recorded.

The screenshots of the console with the waiting caller and of the call with its wrap-up form are
``docs/console-warteschlange.png`` and ``docs/console-gespraech.png`` (copied from ``/tmp`` after a run)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from test_summary import OPEN_QUESTION, PAGE_LINK, PASSPORT_ANSWER, handed_off_call, page_index

from voicebot.db.engine import make_engine
from voicebot.db.models import CallbackStatus, QueueStatus
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.settings import Settings
from web.chromium import CHROMIUM, SCREENSHOT
from web.test_console import PASSWORD
from web.test_console_page import _axe_violations, _tab_to, console_url  # noqa: F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def _press_on(page: Any, wanted: str, limit: int = 40) -> None:
    await _tab_to(page, wanted, limit=limit)
    await page.keyboard.press("Enter")


async def test_queue_accept_wrap_up_and_call_backs_with_the_keyboard(
    console_url: tuple[str, Settings],  # noqa: F811 (the fixture)
) -> None:
    from playwright.async_api import async_playwright

    base, settings = console_url
    # The cited page's title and link: the console reads the index when it first builds a summary (below).
    settings.paths.index_dir = page_index(settings.paths.database_file.parent / "pages")
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    repository = Repository(engine)
    store = SqlCallRecordStore(engine, fallback_dir=settings.paths.calls_dir)
    violations: dict[str, list[str]] = {}
    try:
        anna = repository.staff_user("anna")
        assert anna is not None
        repository.set_phone(anna.id, "sip:anna@127.0.0.1")  # where the holding process rings her
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page(viewport={"width": 1100, "height": 900})
                await page.goto(f"{base}/anmelden")
                await _tab_to(page, "benutzername")
                await page.keyboard.type("anna")
                await _tab_to(page, "passwort")
                await page.keyboard.type(PASSWORD)
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{base}/konsole")
                await page.evaluate("() => { window.__sameDocument = true; }")

                # A caller is handed off while the console is open.
                transcript = handed_off_call(store)
                assert store.flush()
                entry = repository.enqueue(
                    transcript.call_id, "Bürgerbüro", "engine_handoff", caller_number="+49301234567"
                )
                item = page.locator(f"#eintrag-{entry.id}")
                await item.wait_for(timeout=5000)  # polled every second; no reload
                assert await page.evaluate("() => window.__sameDocument === true")
                text = await item.text_content() or ""
                assert OPEN_QUESTION in text and PASSPORT_ANSWER in text and "Platz 1" in text
                assert PAGE_LINK in await item.inner_html()
                status = await page.locator("#warteschlange-status").text_content()
                assert status == "1 anrufende Person wartet."
                waited = await page.locator(f"#eintrag-{entry.id} .wartezeit").text_content()
                await page.wait_for_function(
                    f"() => document.querySelector('#eintrag-{entry.id} .wartezeit').textContent !== {waited!r}",
                    timeout=5000,
                )  # the waiting time counts up
                violations["konsole"] = await _axe_violations(page)
                await page.screenshot(
                    path=str(SCREENSHOT.with_name("console-warteschlange.png")), full_page=True
                )

                await _press_on(page, f"annehmen-{entry.id}")
                await page.wait_for_url(f"{base}/konsole/gespraech/{entry.id}")
                offered = repository.queue_entry(entry.id)
                assert offered is not None and offered.status == QueueStatus.OFFERED.value
                assert offered.offered_to == anna.id
                assert "klingelt" in (await page.locator("#gespraech-status").text_content() or "")

                assert repository.connected(entry.id)  # the holding process: Anna's phone answered
                await page.wait_for_selector("#notiz", timeout=5000)  # the page follows the call's state
                assert OPEN_QUESTION in (await page.locator("main").text_content() or "")
                violations["gespraech"] = await _axe_violations(page)
                await page.screenshot(path=str(SCREENSHOT.with_name("console-gespraech.png")), full_page=True)
                await _tab_to(page, "notiz")
                await page.keyboard.type("Vollmacht erklärt, Vordruck zugeschickt.")
                await _press_on(page, "Abschluss speichern")
                await page.wait_for_url(f"{base}/konsole?hinweis=abgeschlossen")
                wrapped = repository.queue_entry(entry.id)
                assert wrapped is not None
                assert (wrapped.outcome, wrapped.wrap_up_note) == (
                    "solved",
                    "Vollmacht erklärt, Vordruck zugeschickt.",
                )

                callback = repository.add_callback(
                    transcript.call_id, "Bürgerbüro", "+49301234567", time.time() - 3600,
                    caller_name="Erika Muster", topic="Ausweis für die Mutter",
                )  # fmt: skip
                await page.reload()  # (the call-backs link counts them when the page is made)
                await _press_on(page, "Rückrufe (1 offen, davon 1 überfällig)")
                await page.wait_for_url(f"{base}/konsole/rueckrufe")
                overdue = await page.locator(f"#rueckruf-{callback.id}").text_content() or ""
                assert "Überfällig" in overdue and "Erika Muster" in overdue
                await _press_on(page, "Übernehmen")
                await page.wait_for_url(
                    f"{base}/konsole/rueckrufe?hinweis=uebernommen#rueckruf-{callback.id}"
                )
                violations["rueckrufe"] = await _axe_violations(page)
                await _tab_to(page, f"r{callback.id}-done")  # the first option of the unchosen group
                await page.keyboard.press("Space")
                await _tab_to(page, f"r{callback.id}-notiz")
                await page.keyboard.type("Erreicht, Termin am Montag.")
                await _press_on(page, "Ergebnis speichern")
                await page.wait_for_url(f"{base}/konsole/rueckrufe?hinweis=erledigt")
                assert "Keine offenen Rückrufe." in (await page.locator("main").text_content() or "")
            finally:
                await browser.close()
        finished = repository.callback(callback.id)
        assert finished is not None
        assert (finished.status, finished.claimed_by, finished.outcome_note) == (
            CallbackStatus.DONE.value, anna.id, "Erreicht, Termin am Montag."
        )  # fmt: skip
    finally:
        store.close()
        engine.dispose()
    assert all(found == [] for found in violations.values()), violations
    assert set(violations) == {"konsole", "gespraech", "rueckrufe"}
