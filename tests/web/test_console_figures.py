"""The console's team administration and service figures over HTTP, in-process: an administrator sets a member's
phone address and groups (checked, German messages, CSRF), staff set their own phone ("Mein Telefon"), and
supervisors see /konsole/kennzahlen (per group and day, the 115 target marked in text) and its CSV, read from the
real database (SQLite and PostgreSQL) with queue entries and calls written at injected times."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from pydantic import SecretStr
from test_figures import BERLIN, Clock, _call

from voicebot.db.engine import make_engine
from voicebot.db.models import Role
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.settings import Settings, StaffGroup
from voicebot.staff.accounts import hash_password
from voicebot.staff.figures import day_of
from voicebot.web.app import create_app
from web.test_console import PASSWORD, add_users, csrf_of, make_settings, sign_in

DAY = date(2026, 12, 1)
NINE = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN).timestamp()
GROUPS = [
    StaffGroup(name="Bürgerbüro", staff_uri="sip:bb@127.0.0.1", mode="queue"),
    StaffGroup(name="Standesamt", staff_uri="sip:sa@127.0.0.1", mode="queue"),
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    settings.handoff.groups = list(GROUPS)
    add_users(settings)
    return settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        yield client


def _user(settings: Settings, name: str) -> tuple[str, list[str] | None]:
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        user = Repository(engine).staff_user(name)
    finally:
        engine.dispose()
    assert user is not None
    return user.phone_uri, user.groups


async def test_an_administrator_sets_a_members_phone_and_groups(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await sign_in(client, "otto")).status_code == 303
    page = await client.get("/konsole/team")
    assert page.status_code == 200 and "Telefone und Gruppen" in page.text
    anna_id = page.text.split('name="mitglied" value="', 2)[1].split('"', 1)[0]  # the first form: Anna
    assert f'<label for="m{anna_id}-telefon">' in page.text and f'for="m{anna_id}-g0">Bürgerbüro' in page.text
    token = csrf_of(page.text)

    saved = await client.post(
        "/konsole/team/mitglied",
        data={"csrf": token, "mitglied": anna_id, "telefon": " sip:anna@192.0.2.10:5062 ",
              "gruppe": ["standesamt", "Bürgerbüro"]},
    )  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"].startswith("/konsole/team?gespeichert=")
    assert _user(settings, "anna") == ("sip:anna@192.0.2.10:5062", ["Standesamt", "Bürgerbüro"])
    shown = await client.get(saved.headers["location"])
    assert "Gespeichert: Telefon und Gruppen von Anna Beispiel." in shown.text
    assert "<td>sip:anna@192.0.2.10:5062</td><td>Standesamt, Bürgerbüro</td>" in shown.text
    assert f'id="m{anna_id}-g1" name="gruppe" value="Standesamt" checked' in shown.text

    for phone, groups, message in [
        ("sip:anna@host\r\nX-Evil: 1", ["Standesamt"], "ohne Leerzeichen, Zeilenumbrüche"),
        ("https://anna", [], "beginnt mit sip:, sips: oder tel:"),
        ("tel:+49301234", [], "sip.registrar ist nicht eingestellt"),
        ("sip:anna@192.0.2.10", ["Steueramt"], "Gruppe &#x27;Steueramt&#x27; gibt es nicht"),
    ]:
        refused = await client.post(
            "/konsole/team/mitglied",
            data={"csrf": token, "mitglied": anna_id, "telefon": phone, "gruppe": groups},
        )
        assert refused.status_code == 400 and message in refused.text, (phone, refused.text)
        assert f'<div id="m{anna_id}-fehler" class="error" role="alert">' in refused.text
        assert (
            f'aria-describedby="m{anna_id}-telefon-hilfe m{anna_id}-fehler" aria-invalid="true"'
            in refused.text
        )
    assert _user(settings, "anna") == ("sip:anna@192.0.2.10:5062", ["Standesamt", "Bürgerbüro"])  # unchanged

    # No group ticked and no phone: every group, browser only.
    cleared = await client.post(
        "/konsole/team/mitglied", data={"csrf": token, "mitglied": anna_id, "telefon": ""}
    )
    assert cleared.status_code == 303 and _user(settings, "anna") == ("", None)
    forged = await client.post("/konsole/team/mitglied", data={"mitglied": anna_id, "telefon": "sip:x@y"})
    assert forged.status_code == 403
    missing = await client.post(
        "/konsole/team/mitglied", data={"csrf": token, "mitglied": "999", "telefon": ""}
    )
    assert missing.status_code == 404


async def test_staff_set_their_own_phone_and_supervisors_see_no_forms(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await sign_in(client, "anna")).status_code == 303
    page = await client.get("/konsole")
    assert '<label for="telefon">' in page.text and "Noch keine Telefonadresse eingetragen" in page.text
    assert "/konsole/kennzahlen" not in page.text  # the supervisors' navigation
    token = csrf_of(page.text)
    bad = await client.post("/konsole/telefon", data={"csrf": token, "telefon": "sip:anna@"})
    assert bad.status_code == 400 and 'id="telefon-fehler" class="error" role="alert"' in bad.text
    assert 'value="sip:anna@" aria-describedby="telefon-hilfe telefon-fehler" aria-invalid="true"' in bad.text
    saved = await client.post(
        "/konsole/telefon", data={"csrf": token, "telefon": "sip:201@pbx.musterstadt.de"}
    )
    assert saved.status_code == 303 and _user(settings, "anna") == ("sip:201@pbx.musterstadt.de", None)
    shown = await client.get(saved.headers["location"])
    assert "Gespeichert: Ihre Telefonadresse." in shown.text
    assert '<strong id="mein-telefon">sip:201@pbx.musterstadt.de</strong>' in shown.text
    removed = await client.post("/konsole/telefon", data={"csrf": token, "telefon": ""})
    assert "Telefonadresse entfernt." in (await client.get(removed.headers["location"])).text
    assert _user(settings, "anna") == ("", None)
    assert (await client.post("/konsole/telefon", data={"telefon": "sip:a@b"})).status_code == 403

    client.cookies.clear()
    assert (await sign_in(client, "lea")).status_code == 303
    console = await client.get("/konsole")
    assert '<nav aria-label="Leitung">' in console.text and 'href="/konsole/kennzahlen"' in console.text
    team = await client.get("/konsole/team")
    assert (
        team.status_code == 200
        and "Telefone und Gruppen" not in team.text
        and "/konsole/team/mitglied" not in team.text
    )


# --- service figures ----------------------------------------------------------------------------------------


@pytest.fixture
def figures_setup(database: Database, tmp_path: Path) -> Iterator[Settings]:  # noqa: F811
    """Bürgerbüro on DAY: 4 offered, 3 answered within 30 s (75 %: the target, just); Standesamt: 2 offered, one
    within 30 s (50 %), one after 45 s; a call the bot finished itself."""
    settings = make_settings(tmp_path)
    settings.database_url = SecretStr(database.url)
    settings.handoff.groups = list(GROUPS)
    engine = database.engine()
    clock = Clock(NINE)
    repository = Repository(engine, clock=clock)
    lea = repository.add_staff_user("lea", hash_password(PASSWORD), Role.SUPERVISOR)
    repository.add_staff_user("anna", hash_password(PASSWORD), Role.STAFF)
    store = SqlCallRecordStore(engine, fallback_dir=tmp_path / "fallback")
    for offset, group, answer_after in [
        (0, "Bürgerbüro", 10.0), (100, "Bürgerbüro", 30.0), (200, "Bürgerbüro", 5.0), (300, "Bürgerbüro", 31.0),
        (400, "Standesamt", 12.0), (500, "Standesamt", 45.0),
    ]:  # fmt: skip
        call_id = _call(store, NINE + offset - 20)
        assert store.flush()
        clock.now = NINE + offset
        entry = repository.enqueue(call_id, group, "caller_asked")
        clock.now = NINE + offset + answer_after
        assert repository.answer(entry.id, lea.id)
    _call(store, NINE + 1000)
    assert store.flush()
    store.close()
    yield settings


async def test_figures_page_and_csv_per_group_and_day(figures_setup: Settings) -> None:
    app = create_app(figures_setup, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        assert (await sign_in(client, "lea")).status_code == 303
        page = await client.get("/konsole/kennzahlen", params={"von": "2026-11-30", "bis": "01.12.2026"})
        assert page.status_code == 200, page.text
        text = page.text
        assert '<caption id="kennzahlen-gruppen-titel">Warteschlange je Gruppe und Tag</caption>' in text
        assert '<th scope="col">Quote ≤ 30 s (Ziel 115)</th>' in text
        assert 'value="2026-11-30"' in text and 'value="2026-12-01"' in text
        office, registry = text.split('<th scope="row">01.12.2026</th><td>')[1:3]
        assert office.startswith("Bürgerbüro</td>") and registry.startswith("Standesamt</td>")
        assert '<td class="zahl">4</td><td class="zahl">4</td><td class="zahl">3</td>' in office
        assert '<td class="zahl ziel-erreicht">75 % <span class="ziel">✓ Ziel erreicht</span></td>' in office
        assert (
            '<td class="zahl ziel-verfehlt">50 % <span class="ziel">✗ Ziel verfehlt</span></td>' in registry
        )
        assert '<td class="zahl">29 s</td>' in registry  # (12 + 45) / 2 = 28.5 → 29 s, half up
        assert 'id="kennzahlen-tage"' in text and "Vom Bot erledigt" in text
        assert 'href="/konsole/kennzahlen.csv?von=2026-11-30&amp;bis=2026-12-01"' in text

        download = await client.get(
            "/konsole/kennzahlen.csv", params={"von": "2026-11-30", "bis": "2026-12-01"}
        )
        assert download.status_code == 200 and download.headers["content-type"] == "text/csv; charset=utf-8"
        assert download.headers["content-disposition"] == (
            'attachment; filename="kennzahlen-2026-11-30-bis-2026-12-01.csv"'
        )
        assert download.text.startswith("\ufeffTag;Gruppe;Angeboten;")
        rows = list(csv.reader(io.StringIO(download.text.lstrip("\ufeff")), delimiter=";"))
        assert rows[1:] == [
            ["2026-12-01", "Bürgerbüro", "4", "4", "3", "75,0", "ja", "19,0", "31,0", "0", "0", "0", "0"],
            ["2026-12-01", "Standesamt", "2", "2", "1", "50,0", "nein", "28,5", "45,0", "0", "0", "0", "0"],
        ]

        # Without a period: the last seven days up to today (nothing then: this data is from 2026-12-01).
        recent = await client.get("/konsole/kennzahlen")
        today = day_of(datetime.now(BERLIN).timestamp())
        assert f'value="{(today - timedelta(days=6)).isoformat()}"' in recent.text
        assert f'value="{today.isoformat()}"' in recent.text

        for params, message in [
            ({"von": "2026-12-05", "bis": "2026-12-01"}, "„Von“ liegt nach „Bis“"),
            ({"von": "morgen"}, "„Von“ ist kein Datum"),
            ({"von": "2024-01-01", "bis": "2026-12-01"}, "länger als 366 Tage"),
        ]:
            refused = await client.get("/konsole/kennzahlen", params=params)
            assert refused.status_code == 400 and message in refused.text and 'role="alert"' in refused.text
            assert 'aria-describedby="zeitraum-fehler" aria-invalid="true"' in refused.text
            as_csv = await client.get("/konsole/kennzahlen.csv", params=params)
            assert as_csv.status_code == 400 and message in as_csv.text
        client.cookies.clear()
        assert (await sign_in(client, "anna")).status_code == 303
        assert (await client.get("/konsole/kennzahlen")).status_code == 403
