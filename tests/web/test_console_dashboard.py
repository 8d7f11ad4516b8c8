"""The supervisor's overview (/konsole/uebersicht: SVG charts with title and description, the same numbers in
tables, a CSV per table) and the knowledge-gap page (/konsole/luecken) over HTTP, in-process on SQLite with
records written through the real store; in Chromium, both pages pass axe-core (WCAG 2.1 A/AA) and are
photographed for docs/."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from database import Database
from test_dashboard import write_day
from test_gaps import LAND_TAX, _write_calls

from voicebot.db.engine import make_engine
from voicebot.db.store import SqlCallRecordStore
from voicebot.settings import Settings
from voicebot.web.app import create_app
from web.chromium import CHROMIUM, SCREENSHOT
from web.test_console import PASSWORD, add_users, make_settings, sign_in
from web.test_console_page import _axe_violations, console_url  # noqa: F401 (fixture)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PERIOD = {"von": "2026-12-01", "bis": "01.12.2026"}


def seed(settings: Settings) -> None:
    """The dashboard's day (tests/test_dashboard.py) and the gap report's calls (tests/test_gaps.py)."""
    settings.paths.index_dir = REPO_ROOT / "var" / "index"
    url = f"sqlite:///{settings.paths.database_file}"
    write_day(Database("sqlite", url), settings.paths.database_file.parent)
    engine = make_engine(url)
    store = SqlCallRecordStore(engine, fallback_dir=settings.paths.database_file.parent / "fallback-gaps")
    try:
        _write_calls(store)
    finally:
        store.close()
        engine.dispose()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path)
    add_users(settings)
    seed(settings)
    app = create_app(settings, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        assert (await sign_in(client, "lea")).status_code == 303
        yield client


async def test_overview_charts_tables_and_csv(client: httpx.AsyncClient) -> None:
    page = await client.get("/konsole/uebersicht", params=PERIOD)
    assert page.status_code == 200, page.text
    text = page.text
    # Five charts, each an image with its title and description; the numbers again in a table.
    assert text.count('role="img"') == 5 and "<script" not in text
    assert '<title id="diagramm-tage-titel">Anrufe je Tag</title>' in text
    assert '<desc id="diagramm-tage-beschreibung">Anrufe je Tag. 01.12.2026: 10</desc>' in text
    # 10 calls: the dashboard's 5 (2 handed off) and the gap report's 5 (none with a hand-off event).
    assert ('<tr><th scope="row">01.12.2026</th><td class="zahl">10</td><td class="zahl">2</td>'
            '<td class="zahl">8</td><td class="zahl">80 %</td><td class="zahl">2</td><td class="zahl">1</td>'
            '<td class="zahl">50 %</td>') in text  # fmt: skip
    assert "<dt>Rückrufe überfällig</dt><dd>1</dd>" in text
    assert '<tr><th scope="row">Wunsch nach einem Menschen</th><td class="zahl">1</td></tr>' in text
    assert '<tr><th scope="row">Steueramt</th>' in text  # topics: departments of the cited pages
    link = "/konsole/uebersicht.csv?tabelle=gruende&amp;von=2026-12-01&amp;bis=2026-12-01"
    assert f'<a href="{link}" download>' in text

    exported = await client.get(link.replace("&amp;", "&"))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert (
        'filename="uebersicht-gruende-2026-12-01-bis-2026-12-01.csv"'
        in exported.headers["content-disposition"]
    )
    rows = list(csv.reader(io.StringIO(exported.text.removeprefix("\ufeff")), delimiter=";"))
    assert rows == [["Grund", "Anrufe"], ["Wunsch nach einem Menschen", "1"], ["Bot zu unsicher", "1"]]
    days = await client.get("/konsole/uebersicht.csv", params={**PERIOD, "tabelle": "tage"})
    assert days.text.splitlines()[1].startswith("01.12.2026;10;2;8;80 %;2;1;50 %;")

    wrong = await client.get("/konsole/uebersicht.csv", params={**PERIOD, "tabelle": "../x"})
    assert wrong.status_code == 400 and wrong.text.count("\n") == 1 and "Unbekannte Tabelle" in wrong.text
    reversed_period = await client.get(
        "/konsole/uebersicht", params={"von": "2026-12-05", "bis": "2026-12-01"}
    )
    assert reversed_period.status_code == 400 and "„Von“ liegt nach „Bis“" in reversed_period.text


async def test_gap_page_lists_groups_with_examples_and_closest_pages(client: httpx.AsyncClient) -> None:
    page = await client.get("/konsole/luecken", params=PERIOD)
    assert page.status_code == 200, page.text
    assert "3 Fragen ohne gute Antwort in 2 Themen, nach Zahl der Anrufe geordnet." in page.text
    first = page.text.split('<tr><th scope="row">1</th>')[1].split("</tr>")[0]
    assert first.startswith('<td class="zahl">2</td><td class="zahl">2</td>')
    assert f"<li>„{LAND_TAX[0]}“</li>" in first and f"<li>„{LAND_TAX[1]}“</li>" in first
    assert "<li>Grundsteuer <span" in first
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_overview_and_gap_pages_pass_axe(console_url: tuple[str, Settings]) -> None:  # noqa: F811
    from playwright.async_api import async_playwright

    base, settings = console_url
    seed(settings)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page: Any = await browser.new_page(locale="de-DE")
            await page.goto(f"{base}/anmelden")
            await page.get_by_label("Benutzername").fill("lea")
            await page.get_by_label("Passwort").fill(PASSWORD)
            await page.get_by_role("button", name="Anmelden").click()
            await page.wait_for_url(f"{base}/konsole")
            await page.get_by_role("link", name="Übersicht", exact=True).click()
            await page.get_by_label("Von", exact=True).fill("2026-12-01")
            await page.get_by_label("Bis", exact=True).fill("2026-12-01")
            await page.get_by_role("button", name="Anzeigen").click()
            await page.wait_for_selector("#tabelle-tage")
            overview_violations = await _axe_violations(page)
            await page.set_viewport_size({"width": 1200, "height": 900})
            await page.screenshot(path=str(SCREENSHOT.with_name("console-uebersicht.png")), full_page=True)
            await page.get_by_role("link", name="Wissenslücken im selben Zeitraum").click()
            await page.wait_for_selector("#luecken")
            gap_violations = await _axe_violations(page)
            await page.screenshot(path=str(SCREENSHOT.with_name("console-luecken.png")), full_page=True)
        finally:
            await browser.close()
    assert overview_violations == [] and gap_violations == [], (overview_violations, gap_violations)
