"""The administrators' data-protection pages and the audit log (voicebot/web/staff_privacy.py), in-process against
a real SQLite database: opening a transcript is logged, a caller's data is found, exported and deleted by number
after a confirmation, and only administrators see the log."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from voicebot.db import rows
from voicebot.db.engine import make_engine, writing
from voicebot.db.repository import Repository
from voicebot.privacy import data
from voicebot.records import new_call_id
from voicebot.settings import Settings
from voicebot.web.app import create_app
from web.test_console import add_users, csrf_of, make_settings, sign_in

NUMBER = "01712345678"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    add_users(settings)
    return settings


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[tuple[httpx.ASGITransport, Settings]]:
    app = create_app(settings, None)
    yield httpx.ASGITransport(app=app), settings


def _stored_call(settings: Settings) -> tuple[str, int]:
    """A call with one turn, its queue entry (the caller's number) and a call-back to the same number."""
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        now = time.time()
        call_id = new_call_id(now)
        record = {
            "call_id": call_id,
            "channel": "sip",
            "started_at": now - 30,
            "ended_at": now,
            "ended_reason": "hangup",
            "turns": [{"role": "caller", "kind": "question", "text": "Wie beantrage ich Wohngeld?"}],
            "events": [],
        }
        with writing(engine) as connection:
            rows.write_whole(connection, record, now)
        repository = Repository(engine)
        entry = repository.enqueue(call_id, "buergerbuero", "asked", caller_number="+49 171 2345678")
        repository.add_callback(call_id, "buergerbuero", NUMBER, now + 3600, topic="Wohngeld")
        return call_id, entry.id
    finally:
        engine.dispose()


def _audit(settings: Settings) -> list[tuple[str, str, str]]:
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        return [(e.actor, e.action, e.subject) for e in data.audit_entries(engine)][::-1]  # oldest first
    finally:
        engine.dispose()


async def test_transcript_views_are_logged_and_admins_find_export_and_delete_by_number(
    app_client: tuple[httpx.ASGITransport, Settings],
) -> None:
    transport, settings = app_client
    call_id, entry_id = _stored_call(settings)
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as staff:
        assert (await sign_in(staff, "anna")).status_code == 303
        for path in (f"/konsole/anruf/{call_id}", f"/konsole/gespraech/{entry_id}"):
            shown = await staff.get(path)
            assert shown.status_code == 200 and "Wie beantrage ich Wohngeld?" in shown.text, path
        assert (await staff.get("/konsole/protokoll")).status_code == 403
    assert _audit(settings) == [("console:anna", "view_transcript", call_id)] * 2

    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as admin:
        assert (await sign_in(admin, "otto")).status_code == 303
        home = await admin.get("/konsole")
        assert 'href="/konsole/datenschutz"' in home.text and 'href="/konsole/protokoll"' in home.text
        form = await admin.get("/konsole/datenschutz")
        assert form.status_code == 200 and '<label for="rufnummer">' in form.text
        csrf = csrf_of(form.text)

        refused = await admin.post("/konsole/datenschutz", data={"rufnummer": NUMBER})
        assert refused.status_code == 403  # no CSRF token
        bad = await admin.post("/konsole/datenschutz", data={"csrf": csrf, "rufnummer": "12"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text and "zu kurz" in bad.text

        found = await admin.post("/konsole/datenschutz", data={"csrf": csrf, "rufnummer": "+49 171 2345678"})
        assert found.status_code == 200
        assert "1 Anrufe, 1 Gesprächsbeiträge, 1 Warteschlangen-Einträge, 1 Rückrufwünsche" in found.text
        assert NUMBER not in found.url.path and found.headers["cache-control"] == "no-store"

        exported = await admin.post("/konsole/datenschutz/export", data={"csrf": csrf, "rufnummer": NUMBER})
        assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
        document = json.loads(exported.text)
        assert [c["call_id"] for c in document["calls"]] == [call_id]
        assert [c["topic"] for c in document["callbacks"]] == ["Wohngeld"]

        asked = await admin.post("/konsole/datenschutz/loeschen", data={"csrf": csrf, "rufnummer": NUMBER})
        assert asked.status_code == 200 and "Wirklich löschen?" in asked.text
        assert 'name="bestaetigt" value="ja"' in asked.text
        still = await admin.post("/konsole/datenschutz", data={"csrf": csrf, "rufnummer": NUMBER})
        assert "1 Anrufe" in still.text  # asking deleted nothing

        deleted = await admin.post(
            "/konsole/datenschutz/loeschen", data={"csrf": csrf, "rufnummer": NUMBER, "bestaetigt": "ja"}
        )
        assert deleted.status_code == 200 and "Gelöscht zur Rufnummer 01712345678: 1 Anrufe" in deleted.text
        gone = await admin.post("/konsole/datenschutz", data={"csrf": csrf, "rufnummer": NUMBER})
        assert "ist nichts gespeichert" in gone.text

        log = await admin.get("/konsole/protokoll")
        assert log.status_code == 200
        assert (
            log.text.count("<td>Gesprächsverlauf geöffnet</td>") == 2
            and "<td>Daten gelöscht</td>" in log.text
        )
        assert NUMBER not in log.text and "0171…78" in log.text
    assert [(actor, action) for actor, action, _ in _audit(settings)][2:] == [
        ("console:otto", "export"),
        ("console:otto", "delete"),
    ]
