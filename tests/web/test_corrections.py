"""Corrections that reach the next call (issue 11, decision 0940), in-process over a real SQLite database and a
real knowledge index (four sample pages, e5 embeddings, the extractive engine): a supervisor drafts a correction
on a bot turn of the timeline, cannot approve it herself (403), an administrator approves it, and the answer engine
a running server swaps in from the new index generation answers the same question with the corrected text, citing
the correction page ("Korrektur vom …"); a second draft is rejected; the applied one is reverted and the old answer
is back; every step is in the audit log; `voicebot kb corrections` lists them. The role walk over every route is
test_console's (these routes are in ACCESS)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from test_review import T0, call_id, record

from knowledge.engine import ReloadableAnswerEngine, build_answer_engine
from knowledge.index import index_generation
from knowledge.types import AnswerRequest
from voicebot.db import rows
from voicebot.db.engine import make_engine, writing
from voicebot.knowledge_reload import KnowledgeReloader
from voicebot.privacy.data import audit_entries
from voicebot.settings import Settings
from voicebot.staff import corrections
from voicebot.web.app import create_app
from voicebot.web.staff_queue import load_source_lookup
from web.console_server import sample_pages_kb
from web.test_console import add_users, csrf_of, make_settings, sign_in

PAGES = ("hallenbad.md", "buergerbuero-kontakt.md", "gelbe-tonne.md", "hundesteuer-anmelden.md")
QUESTION = "Wann hat das Bürgerbüro geöffnet?"
OLD_HOURS, NEW_HOURS = "8 bis 12 Uhr", "9 bis 13 Uhr"
CORRECT = f"Das Bürgerbüro hat montags bis freitags von {NEW_HOURS} geöffnet."
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    settings: Settings
    client: httpx.AsyncClient


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    settings = make_settings(tmp_path)
    sample_pages_kb(settings, tmp_path, PAGES)
    add_users(settings)
    said = record(1, T0, QUESTION, f"Es hat montags bis freitags von {OLD_HOURS} geöffnet.", sources=("buergerbuero-kontakt",))  # fmt: skip
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        with writing(engine) as connection:
            rows.write_whole(connection, said, said["started_at"] + 30)
    finally:
        engine.dispose()
    app = create_app(settings, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        yield Setup(settings, client)


async def as_user(setup: Setup, username: str) -> None:
    setup.client.cookies.clear()
    assert (await sign_in(setup.client, username)).status_code == 303


async def post_form(setup: Setup, page_url: str, action: str, fields: dict[str, str]) -> httpx.Response:
    page = await setup.client.get(page_url)
    assert page.status_code == 200, page.text
    return await setup.client.post(action, data={"csrf": csrf_of(page.text), **fields})


def status_of(settings: Settings, correction_id: int) -> str:
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        found = corrections.get(engine, correction_id)
    finally:
        engine.dispose()
    return found.status if found is not None else "–"


async def ask(engine: ReloadableAnswerEngine) -> tuple[str, list[str]]:
    answer = await engine.answer(AnswerRequest(QUESTION))
    return " ".join(answer.text.split()), answer.sources


async def test_draft_approve_by_a_second_person_reaches_the_next_question_and_revert_restores(
    setup: Setup,
) -> None:
    settings = setup.settings
    config = settings.knowledge()
    serving = ReloadableAnswerEngine(build_answer_engine(config), index_generation(settings.paths.index_dir))
    reloader = KnowledgeReloader(config, serving)  # what `voicebot serve` runs; here its reload is called
    text, sources = await ask(serving)
    assert OLD_HOURS in text and sources == ["buergerbuero-kontakt"], (text, sources)

    # A supervisor drafts a correction on the bot's answer in the timeline.
    await as_user(setup, "lea")
    timeline = await setup.client.get(f"/konsole/anrufe/{call_id(1)}")
    assert timeline.status_code == 200
    assert timeline.text.count("<summary>Antwort korrigieren</summary>") == 2  # greeting and answer
    assert '<option value="buergerbuero-kontakt" selected>' in timeline.text
    assert '<label for="k2-text">Richtige Antwort oder fehlende Information</label>' in timeline.text
    drafted = await post_form(
        setup,
        f"/konsole/anrufe/{call_id(1)}",
        f"/konsole/anrufe/{call_id(1)}/korrektur",
        {"beitrag": "2", "art": "wrong", "seite": "buergerbuero-kontakt", "text": CORRECT},
    )
    assert drafted.status_code == 303 and drafted.headers["location"] == "/konsole/korrekturen?neu=1"
    listed = await setup.client.get("/konsole/korrekturen?neu=1")
    assert "Entwurf 1 gespeichert" in listed.text and "Freigeben und anwenden" not in listed.text
    assert f"„{QUESTION}“" in listed.text  # the caller's words of that turn

    # The author cannot approve her own draft.
    own = await post_form(  # (her list offers no button: the form is sent anyway, with the timeline's token)
        setup, f"/konsole/anrufe/{call_id(1)}", "/konsole/korrekturen/entscheiden",
        {"korrektur": "1", "entscheidung": "freigeben"},
    )  # fmt: skip
    assert own.status_code == 403 and "zweite Person" in own.text
    assert status_of(settings, 1) == "draft"

    # A staff member may not even see the corrections.
    await as_user(setup, "anna")
    assert (await setup.client.get("/konsole/korrekturen")).status_code == 403

    # An administrator approves: the page is written, ingested, and the next question uses it.
    await as_user(setup, "otto")
    approved = await post_form(
        setup, "/konsole/korrekturen", "/konsole/korrekturen/entscheiden",
        {"korrektur": "1", "entscheidung": "freigeben"},
    )  # fmt: skip
    assert approved.status_code == 303, approved.text
    page_file = settings.paths.corrections_dir / "korrektur-1.md"
    written = page_file.read_text(encoding="utf-8")
    assert "overrides: buergerbuero-kontakt" in written and "approved_by: otto" in written
    assert f"source_call: {call_id(1)}" in written and "author: lea" in written
    generation = index_generation(settings.paths.index_dir)
    assert generation == 2
    assert await reloader.reload(generation)
    text, sources = await ask(serving)
    assert NEW_HOURS in text and OLD_HOURS not in text, text
    assert "buergerbuero-kontakt#korrektur-1" in sources, sources
    cited = load_source_lookup(settings.paths.index_dir)("buergerbuero-kontakt#korrektur-1")  # type: ignore[misc]
    assert cited is not None and re.fullmatch(
        r"Korrektur vom \d\d\.\d\d\.\d{4}: Bürgerbüro – Öffnungszeiten und Kontakt", cited.title
    ), cited
    listed = await setup.client.get("/konsole/korrekturen?status=approved")
    assert "Freigegeben und angewandt" in listed.text and "Index-Stand 2" in listed.text

    # A second draft (the administrator's) is rejected by the supervisor, with a reason.
    drafted = await post_form(
        setup, f"/konsole/anrufe/{call_id(1)}", f"/konsole/anrufe/{call_id(1)}/korrektur",
        {"beitrag": "2", "art": "missing", "seite": "hallenbad", "text": "Das Hallenbad hat eine Sauna."},
    )  # fmt: skip
    assert drafted.status_code == 303
    bad = await post_form(
        setup, f"/konsole/anrufe/{call_id(1)}", f"/konsole/anrufe/{call_id(1)}/korrektur",
        {"beitrag": "0", "art": "missing", "seite": "gibt-es-nicht", "text": "x"},
    )  # fmt: skip
    assert bad.status_code == 400 and "bitte aus der Liste wählen" in bad.text
    await as_user(setup, "lea")
    rejected = await post_form(
        setup, "/konsole/korrekturen", "/konsole/korrekturen/entscheiden",
        {"korrektur": "2", "entscheidung": "ablehnen", "begruendung": "Keine Sauna im Hallenbad."},
    )  # fmt: skip
    assert rejected.status_code == 303
    assert status_of(settings, 2) == "rejected"
    again = await post_form(
        setup, "/konsole/korrekturen", "/konsole/korrekturen/entscheiden",
        {"korrektur": "2", "entscheidung": "freigeben"},
    )  # fmt: skip
    assert again.status_code == 409 and "kein Entwurf mehr" in again.text
    assert not (settings.paths.corrections_dir / "korrektur-2.md").exists()

    # The supervisor takes the applied correction back (a reason is required): the old answer returns.
    no_reason = await post_form(
        setup,
        "/konsole/korrekturen",
        "/konsole/korrekturen/zuruecknehmen",
        {"korrektur": "1", "begruendung": " "},
    )
    assert no_reason.status_code == 400 and "Bitte kurz begründen" in no_reason.text
    reverted = await post_form(
        setup, "/konsole/korrekturen", "/konsole/korrekturen/zuruecknehmen",
        {"korrektur": "1", "begruendung": "Die alten Zeiten gelten doch."},
    )  # fmt: skip
    assert reverted.status_code == 303, reverted.text
    assert not page_file.exists()
    generation = index_generation(settings.paths.index_dir)
    assert generation == 3 and await reloader.reload(generation)
    text, sources = await ask(serving)
    assert OLD_HOURS in text and sources == ["buergerbuero-kontakt"], (text, sources)
    timeline = await setup.client.get(f"/konsole/anrufe/{call_id(1)}")
    assert "Korrektur 1</a>: Antwort falsch – Zurückgenommen" in timeline.text
    assert "Korrektur 2</a>: Fehlende Information – Abgelehnt" in timeline.text

    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        logged = [(entry.actor, entry.action) for entry in audit_entries(engine) if entry.action.startswith("correction")]  # fmt: skip
        shown = corrections.list_corrections(engine)
    finally:
        engine.dispose()
    assert logged == [
        ("console:lea", "correction_revert"),
        ("console:lea", "correction_reject"),
        ("console:otto", "correction_draft"),
        ("console:otto", "correction_approve"),
        ("console:lea", "correction_draft"),
    ]
    assert [(row.id, row.status, row.decided_by) for row in shown] == [(2, "rejected", "lea"), (1, "reverted", "otto")]  # fmt: skip
    assert shown[1].reason == "Zurückgenommen von lea: Die alten Zeiten gelten doch."

    # `voicebot kb corrections` lists them (another process, the same database).
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    environment.update(
        PYTHONPATH=str(REPO_ROOT), VOICEBOT_PATHS__DATABASE_FILE=str(settings.paths.database_file)
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voicebot.cli", "kb", "corrections", *args],
            capture_output=True, text=True, timeout=120, env=environment, cwd=REPO_ROOT, check=False,
        )  # fmt: skip

    listing = cli("--json")
    assert listing.returncode == 0, listing.stderr
    assert [(c["id"], c["status"], c["kind"], c["page_id"]) for c in json.loads(listing.stdout)] == [
        (2, "rejected", "missing", "hallenbad"),
        (1, "reverted", "wrong", "buergerbuero-kontakt"),
    ]
    only = cli("--status", "rejected")
    assert only.returncode == 0 and only.stdout.startswith(
        "2\trejected\tmissing\thallenbad\tby otto, rejected by lea"
    )
    wrong = cli("--status", "offen")
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
        "error: unknown --status 'offen': use one of draft, approved, rejected, reverted"
    ]


async def test_a_missing_information_correction_answers_a_question_the_page_could_not(setup: Setup) -> None:
    """ "Fehlende Information": the text becomes a section of the page; a question about it is answered from it,
    citing the correction (approve called directly, as the console's worker thread does)."""
    from zoneinfo import ZoneInfo

    settings = setup.settings
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        drafted = corrections.create_draft(
            engine, call_id=call_id(1), turn_index=2, kind="missing", page_id="hallenbad",
            question="Hat das Hallenbad eine Sauna?", author="lea",
            text="Im Hallenbad gibt es eine Sauna. Der Saunazuschlag beträgt 3 Euro.",
        )  # fmt: skip
        applied = corrections.approve(
            engine, drafted, "otto", corrections_dir=settings.paths.corrections_dir,
            index_dir=settings.paths.index_dir, zone=ZoneInfo("Europe/Berlin"),
        )  # fmt: skip
    finally:
        engine.dispose()
    assert applied.status == "approved" and applied.applied_generation == 2
    assert applied.file_path == str(settings.paths.corrections_dir / f"korrektur-{drafted}.md")
    answer = await build_answer_engine(settings.knowledge()).answer(
        AnswerRequest("Was kostet die Sauna im Hallenbad?")
    )
    assert "3 Euro" in answer.text and answer.sources == [f"hallenbad#korrektur-{drafted}"], answer
