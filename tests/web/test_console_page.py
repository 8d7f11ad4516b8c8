"""The staff pages in real headless Chromium (the system browser): sign in with the keyboard only, switch the
availability, sign out; axe-core finds no WCAG 2.1 A/AA violation on the sign-in page (also with its error shown)
and on the console. The app runs in-process under uvicorn on a free loopback port, over a real SQLite database."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voicebot.db.engine import make_engine
from voicebot.db.repository import Repository
from voicebot.settings import Settings
from web.chromium import CHROMIUM, SCREENSHOT
from web.console_server import serving
from web.test_console import PASSWORD, add_users, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


async def _axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}})
    return [
        f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']]})"
        for v in results.response["violations"]
    ]


@pytest.fixture
async def console_url(tmp_path: Path) -> AsyncIterator[tuple[str, Settings]]:
    settings = make_settings(tmp_path)
    add_users(settings)
    async with serving(settings) as url:
        yield url, settings


async def _focused(page: Any) -> str:
    return str(
        await page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")
    )


async def _tab_to(page: Any, wanted: str, limit: int = 12) -> None:
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await _focused(page) == wanted:
            return
    raise AssertionError(f"{wanted!r} not reached with Tab (focus on {await _focused(page)!r})")


async def test_keyboard_only_sign_in_availability_and_sign_out(console_url: tuple[str, Settings]) -> None:
    from playwright.async_api import async_playwright

    base, settings = console_url
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/konsole")  # anonymous: sent to the sign-in page
            assert page.url == f"{base}/anmelden"
            sign_in_violations = await _axe_violations(page)

            # A wrong password first: the error is announced (role=alert) and the form is still accessible.
            await _tab_to(page, "benutzername")
            await page.keyboard.type("anna")
            await _tab_to(page, "passwort")
            await page.keyboard.type("falsches-passwort-1")
            await page.keyboard.press("Enter")
            await page.wait_for_selector("[role=alert]")
            alert = await page.get_by_role("alert").text_content()
            error_violations = await _axe_violations(page)

            await _tab_to(page, "passwort")  # the name is kept; only the password is typed again
            await page.keyboard.type(PASSWORD)
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/konsole")
            signed_in_as = await page.locator("#angemeldet").text_content()
            console_violations = await _axe_violations(page)

            # Availability: focus the radio group, arrow keys choose, Space/Enter submits from the button.
            await _tab_to(page, "v-away")  # the checked radio is the group's tab stop
            await page.keyboard.press("ArrowUp")  # away → busy
            await page.keyboard.press("ArrowUp")  # busy → available
            await _tab_to(page, "Verfügbarkeit speichern")
            await page.keyboard.press("Enter")
            await page.wait_for_selector("#hinweis:has-text('Gespeichert')")
            notice = await page.locator("#hinweis").text_content()
            checked = await page.locator("input[name=verfuegbarkeit]:checked").get_attribute("value")
            saved_violations = await _axe_violations(page)

            await _tab_to(page, "Abmelden", limit=20)
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{base}/anmelden")
            await page.goto(f"{base}/konsole")
            after_sign_out = page.url
        finally:
            await browser.close()

    assert alert is not None and "Benutzername oder Passwort ist falsch." in alert
    assert signed_in_as == "Anna Beispiel"
    assert notice == "Gespeichert: Verfügbar." and checked == "available"
    assert after_sign_out == f"{base}/anmelden"
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        assert Repository(engine).staff_user("anna").availability == "available"  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert sign_in_violations == [] and error_violations == [], (sign_in_violations, error_violations)
    assert console_violations == [] and saved_violations == [], (console_violations, saved_violations)


async def test_figures_and_team_pages_pass_axe(console_url: tuple[str, Settings]) -> None:
    """The service figures (both target marks, and the period error) and the administrator's team forms (with a
    validation error shown) in the browser: no WCAG 2.1 A/AA violation."""
    from playwright.async_api import async_playwright
    from test_figures import NINE, Clock, _call

    from voicebot.db.store import SqlCallRecordStore
    from voicebot.settings import StaffGroup

    base, settings = console_url
    settings.handoff.groups.append(StaffGroup(name="Bürgerbüro", staff_uri="sip:bb@127.0.0.1"))
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    clock = Clock(NINE)
    repository = Repository(engine, clock=clock)
    lea = repository.staff_user("lea")
    assert lea is not None
    store = SqlCallRecordStore(engine, fallback_dir=settings.paths.database_file.parent / "fallback")
    try:
        for offset, group, answer_after in [(0, "Bürgerbüro", 10.0), (100, "Standesamt", 40.0)]:
            call_id = _call(store, NINE + offset - 20)
            assert store.flush()
            clock.now = NINE + offset
            entry = repository.enqueue(call_id, group, "caller_asked")
            clock.now = NINE + offset + answer_after
            assert repository.answer(entry.id, lea.id)
    finally:
        store.close()
        engine.dispose()

    async def signed_in(browser: Any, name: str) -> Any:
        page = await browser.new_page(locale="de-DE")
        await page.goto(f"{base}/anmelden")
        await page.get_by_label("Benutzername").fill(name)
        await page.get_by_label("Passwort").fill(PASSWORD)
        await page.get_by_role("button", name="Anmelden").click()
        await page.wait_for_url(f"{base}/konsole")
        return page

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await signed_in(browser, "lea")
            await page.get_by_role("link", name="Servicekennzahlen").click()
            await page.get_by_label("Von").fill("2026-11-30")
            await page.get_by_label("Bis").fill("2026-12-01")
            await page.get_by_role("button", name="Anzeigen").click()
            await page.wait_for_selector("#kennzahlen-gruppen")
            marks = await page.locator("td .ziel").all_text_contents()
            figures_violations = await _axe_violations(page)
            await page.set_viewport_size({"width": 1500, "height": 900})
            await page.screenshot(path=str(SCREENSHOT.with_name("console-kennzahlen.png")), full_page=True)
            await page.goto(f"{base}/konsole/kennzahlen?von=2026-12-05&bis=2026-12-01")
            alert = await page.get_by_role("alert").text_content()
            period_violations = await _axe_violations(page)

            admin = await signed_in(browser, "otto")
            await admin.goto(f"{base}/konsole/team")
            telefon = admin.locator("section#mitglied-1").get_by_label("Telefonadresse (SIP-URI)")
            await telefon.fill("http://anna")
            await admin.locator("section#mitglied-1").get_by_role("button", name="Speichern").click()
            await admin.wait_for_selector("section#mitglied-1 [role=alert]")
            team_alert = await admin.locator("section#mitglied-1 [role=alert]").text_content()
            team_violations = await _axe_violations(admin)
        finally:
            await browser.close()

    assert marks == ["✓ Ziel erreicht", "✗ Ziel verfehlt"]
    assert alert is not None and "„Von“ liegt nach „Bis“" in alert
    assert team_alert is not None and "beginnt mit sip:" in team_alert
    assert figures_violations == [] and period_violations == [], (figures_violations, period_violations)
    assert team_violations == [], team_violations


async def test_call_review_pages_pass_axe(console_url: tuple[str, Settings]) -> None:
    """The supervisor's call list (a search with its marked hit, the filter error) and one call's timeline in the
    browser, reached with the keyboard-usable controls: no WCAG 2.1 A/AA violation."""
    from playwright.async_api import async_playwright

    from web.test_staff_review import seed

    base, settings = console_url
    seed(settings)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(locale="de-DE")
            await page.goto(f"{base}/anmelden")
            await page.get_by_label("Benutzername").fill("lea")
            await page.get_by_label("Passwort").fill(PASSWORD)
            await page.get_by_role("button", name="Anmelden").click()
            await page.wait_for_url(f"{base}/konsole")
            await page.get_by_role("link", name="Anrufe prüfen").click()
            await page.get_by_label("Suche im Gesagten").fill("fuhrerschein")
            await page.get_by_label("Nur Anrufe mit geringer Sicherheit").check()
            await page.get_by_role("button", name="Filtern").click()
            await page.wait_for_selector("#anrufe mark")
            marked = await page.locator("#anrufe mark").all_text_contents()
            list_violations = await _axe_violations(page)
            await page.set_viewport_size({"width": 1500, "height": 900})
            await page.screenshot(path=str(SCREENSHOT.with_name("console-anrufe.png")), full_page=True)
            await page.locator("#anrufe tbody a").first.click()
            await page.wait_for_selector("#verlauf")
            heard = await page.locator("#verlauf .anrufer").first.text_content()
            timeline_violations = await _axe_violations(page)
            await page.screenshot(path=str(SCREENSHOT.with_name("console-anruf-verlauf.png")), full_page=True)
            await page.goto(f"{base}/konsole/anrufe?ergebnis=gut")
            alert = await page.get_by_role("alert").text_content()
            error_violations = await _axe_violations(page)
        finally:
            await browser.close()

    assert marked == ["Führerschein"]
    assert heard is not None and "Sicherheit der Spracherkennung: 0,30 – unsicher" in heard
    assert alert is not None and "Dieses Ergebnis gibt es nicht" in alert
    assert list_violations == [] and timeline_violations == [], (list_violations, timeline_violations)
    assert error_violations == [], error_violations


async def test_corrections_page_and_form_pass_axe(console_url: tuple[str, Settings]) -> None:
    """The correction form opened under a bot turn (keyboard: the summary toggles it) and the corrections page
    with a draft to approve or reject: no WCAG 2.1 A/AA violation (decision 0940)."""
    from playwright.async_api import async_playwright
    from test_review import call_id

    from knowledge.config import SAMPLE_KB_DIR
    from knowledge.index import KnowledgeIndex
    from voicebot.staff import corrections
    from web.test_staff_review import seed

    base, settings = console_url
    seed(settings)
    kb = settings.paths.database_file.parent / "kb"
    kb.mkdir()
    shutil.copy(SAMPLE_KB_DIR / "buergerbuero-kontakt.md", kb / "buergerbuero-kontakt.md")
    settings.paths.index_dir = kb.parent / "index"  # the pages a correction may name
    KnowledgeIndex.open(settings.paths.index_dir).ingest([kb])
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        corrections.create_draft(
            engine, call_id=call_id(1), turn_index=2, kind="wrong", page_id="buergerbuero-kontakt",
            question="Äh, ich brauche einen neuen Führerschein.", author="otto",
            text="Den Führerschein beantragen Sie bei der Führerscheinstelle im Landratsamt.",
        )  # fmt: skip
    finally:
        engine.dispose()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(locale="de-DE")
            await page.goto(f"{base}/anmelden")
            await page.get_by_label("Benutzername").fill("lea")
            await page.get_by_label("Passwort").fill(PASSWORD)
            await page.get_by_role("button", name="Anmelden").click()
            await page.wait_for_url(f"{base}/konsole")
            await page.goto(f"{base}/konsole/anrufe/{call_id(1)}")
            summary = page.locator("#verlauf summary").nth(1)
            await summary.focus()
            await page.keyboard.press("Enter")
            await page.get_by_label("Richtige Antwort oder fehlende Information").nth(1).wait_for()
            form_violations = await _axe_violations(page)
            await page.goto(f"{base}/konsole")
            await page.get_by_role("link", name="Korrekturen").click()
            await page.wait_for_selector("#korrektur-1")
            buttons = await page.get_by_role("button").all_text_contents()
            list_violations = await _axe_violations(page)
            await page.set_viewport_size({"width": 1200, "height": 900})
            await page.screenshot(path=str(SCREENSHOT.with_name("console-korrekturen.png")), full_page=True)
        finally:
            await browser.close()

    assert "Freigeben und anwenden" in buttons and "Ablehnen" in buttons, buttons
    assert form_violations == [] and list_violations == [], (form_violations, list_violations)
