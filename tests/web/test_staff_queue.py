"""The live staff console over HTTP, in-process, on SQLite and on the real PostgreSQL: the queue with the bot's
summary, "Annehmen" (conditional: the second member of staff is told it is taken; on PostgreSQL a NOTIFY reaches
a listener), the call in progress and its wrap-up, group limits, the call-backs page, the PBX link page and the
number search. The records come from the real call transcript through the real record store."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from pydantic import SecretStr, ValidationError
from test_summary import (
    OPEN_QUESTION,
    PAGE_LINK,
    PASSPORT_ANSWER,
    PASSPORT_QUESTION,
    handed_off_call,
    page_index,
)

from voicebot.db.models import CallbackStatus, QueueMode, QueueStatus, Role
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.settings import HttpSettings, Settings
from voicebot.staff.accounts import hash_password
from voicebot.staff.queue_notify import CHANNEL
from voicebot.web.app import create_app
from web.test_console import PASSWORD, csrf_of, make_settings, sign_in


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return page_index(tmp_path_factory.mktemp("pages"))


@pytest.fixture
def setup(
    database: Database,  # noqa: F811 (the fixture)
    tmp_path: Path,
    index_dir: Path,
) -> Iterator[tuple[Settings, Repository, SqlCallRecordStore]]:
    settings = make_settings(tmp_path)
    settings.database_url = SecretStr(database.url)
    settings.paths.index_dir = index_dir
    engine = database.engine()
    repository = Repository(engine)
    password = hash_password(PASSWORD)
    anna = repository.add_staff_user("anna", password, Role.STAFF, display_name="Anna Beispiel")
    repository.add_staff_user("lea", password, Role.SUPERVISOR, display_name="Lea Leitung")  # no phone yet
    standesamt = repository.add_staff_user("sven", password, Role.STAFF, display_name="Sven Standesamt")
    repository.set_phone(standesamt.id, "sip:sven@127.0.0.1", ["Standesamt"])
    repository.set_phone(anna.id, "sip:anna@127.0.0.1")
    store = SqlCallRecordStore(engine, fallback_dir=tmp_path / "fallback")
    yield settings, repository, store
    store.close()


@pytest.fixture
async def app_client(
    setup: tuple[Settings, Repository, SqlCallRecordStore],
) -> AsyncIterator[httpx.ASGITransport]:
    yield httpx.ASGITransport(app=create_app(setup[0], None))


def _client(transport: httpx.ASGITransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, base_url="http://voicebot")


async def test_queue_accept_call_and_wrap_up(
    setup: tuple[Settings, Repository, SqlCallRecordStore],
    app_client: httpx.ASGITransport,
    database: Database,  # noqa: F811
) -> None:
    _settings, repository, store = setup
    transcript = handed_off_call(store)
    assert store.flush()
    entry = repository.enqueue(
        transcript.call_id, "Bürgerbüro", "engine_handoff", caller_number="+49301234567",
        process={"id": "holder-1"},
    )  # fmt: skip
    async with _client(app_client) as anonymous:
        refused = await anonymous.get("/konsole/warteschlange")
        assert refused.status_code == 401 and refused.json() == {"detail": "Nicht angemeldet."}

    async with _client(app_client) as anna, _client(app_client) as lea, _client(app_client) as sven:
        for client, name in ((anna, "anna"), (lea, "lea"), (sven, "sven")):
            assert (await sign_in(client, name)).status_code == 303
        console_page = await anna.get("/konsole")
        assert console_page.headers["cache-control"] == "no-store"  # personal data
        page = console_page.text
        assert "Platz 1 · Bürgerbüro" in page and 'id="annehmen-' in page
        assert PASSPORT_QUESTION in page and PASSPORT_ANSWER in page and OPEN_QUESTION in page
        assert "Der Bot konnte die Frage nicht beantworten." in page and "+49301234567" in page
        assert "1 anrufende Person wartet." in page and '<script src="/static/console.js" defer>' in page
        live = (await anna.get("/konsole/warteschlange")).json()
        assert live["waiting"] == 1 and OPEN_QUESTION in live["html"] and len(live["signature"]) == 16
        assert abs(live["now"] - time.time()) < 60
        # Sven takes only the Standesamt's callers: he neither sees nor can accept this one.
        assert "Zurzeit wartet niemand." in (await sven.get("/konsole")).text
        sven_token = csrf_of((await sven.get("/konsole")).text)
        foreign = await sven.post("/konsole/annehmen", data={"csrf": sven_token, "eintrag": str(entry.id)})
        assert foreign.status_code == 403
        # Lea has no phone address yet: no button, and a POST is refused; the caller keeps waiting.
        lea_page = (await lea.get("/konsole")).text
        assert "braucht Ihr Konto eine Telefonadresse" in lea_page and 'id="annehmen-' not in lea_page
        lea_token = csrf_of(lea_page)
        no_phone = await lea.post("/konsole/annehmen", data={"csrf": lea_token, "eintrag": str(entry.id)})
        assert no_phone.status_code == 409 and "Telefonadresse" in no_phone.text
        assert repository.queue_entry(entry.id).status == QueueStatus.WAITING.value  # type: ignore[union-attr]
        repository.set_phone(repository.staff_user("lea").id, "sip:lea@127.0.0.1")  # type: ignore[union-attr]

        token = csrf_of(page)
        assert (await anna.post("/konsole/annehmen", data={"eintrag": str(entry.id)})).status_code == 403
        listener = None
        if database.kind == "postgresql":
            listener = psycopg.connect(database.url.split("?")[0], autocommit=True)
            listener.execute(f"LISTEN {CHANNEL}")
        try:
            accepted = await anna.post("/konsole/annehmen", data={"csrf": token, "eintrag": str(entry.id)})
            assert (
                accepted.status_code == 303
                and accepted.headers["location"] == f"/konsole/gespraech/{entry.id}"
            )
            if listener is not None:
                payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
                assert payloads == [str(entry.id)]
        finally:
            if listener is not None:
                listener.close()
        offered = repository.queue_entry(entry.id)
        anna_id = repository.staff_user("anna").id  # type: ignore[union-attr]
        assert (
            offered is not None
            and offered.status == QueueStatus.OFFERED.value
            and offered.offered_to == anna_id
        )
        assert [e.id for e in repository.offers_held_by("holder-1")] == [entry.id]

        late = await lea.post("/konsole/annehmen", data={"csrf": lea_token, "eintrag": str(entry.id)})
        assert late.status_code == 303 and late.headers["location"] == "/konsole?hinweis=vergeben"
        assert "Bereits angenommen" in (await lea.get(late.headers["location"])).text
        assert "Wird verbunden mit Anna Beispiel." in (await lea.get("/konsole")).text
        assert (await sven.get(f"/konsole/gespraech/{entry.id}")).status_code == 403

        ringing = (await anna.get(f"/konsole/gespraech/{entry.id}")).text
        assert "klingelt" in ringing and OPEN_QUESTION in ringing and "Gesprächsverlauf" in ringing
        assert (
            "Guten Tag, hier ist das Bürgertelefon" in ringing
            and 'action="/konsole/abschluss"' not in ringing
        )
        assert (await anna.get(f"/konsole/gespraech/{entry.id}/status")).json()["status"] == "offered"

        assert repository.back_to_waiting(entry.id)  # the holding process: Anna's phone did not answer
        back = await anna.get(f"/konsole/gespraech/{entry.id}")
        assert back.status_code == 200 and "Nicht verbunden" in back.text
        assert "Platz 1 · Bürgerbüro" in (await anna.get("/konsole")).text
        again = await anna.post("/konsole/annehmen", data={"csrf": token, "eintrag": str(entry.id)})
        assert again.headers["location"] == f"/konsole/gespraech/{entry.id}"

        assert repository.connected(entry.id)  # what the holding process records when Anna's phone answers
        talking = (await anna.get(f"/konsole/gespraech/{entry.id}")).text
        assert "Im Gespräch." in talking and 'action="/konsole/abschluss"' in talking
        assert f'href="/konsole/gespraech/{entry.id}">Gespräch ' in (await anna.get("/konsole")).text
        assert "Ihre Gespräche ohne Abschluss" not in (await lea.get("/konsole")).text
        bad = await anna.post(
            "/konsole/abschluss", data={"csrf": token, "eintrag": str(entry.id), "ergebnis": "x"}
        )
        assert bad.status_code == 400 and "Bitte wählen Sie ein Ergebnis" in bad.text
        others = await lea.post(
            "/konsole/abschluss", data={"csrf": lea_token, "eintrag": str(entry.id), "ergebnis": "solved"}
        )
        assert others.status_code == 409
        note = (
            "Vollmacht für die Mutter geklärt; Übergabe äöü ÄÖÜ ß. " * 36
        )  # > 4 KiB as a form: the note's limit
        done = await anna.post(
            "/konsole/abschluss",
            data={"csrf": token, "eintrag": str(entry.id), "ergebnis": "forwarded", "notiz": note},
        )
        assert done.status_code == 303 and done.headers["location"] == "/konsole?hinweis=abgeschlossen"
        assert "Abschluss gespeichert." in (await anna.get(done.headers["location"])).text
        wrapped = repository.queue_entry(entry.id)
        assert wrapped is not None and (wrapped.outcome, wrapped.wrap_up_note) == ("forwarded", note.strip())
        assert "Weitergeleitet" in (await anna.get(f"/konsole/gespraech/{entry.id}")).text
        after = (await anna.get("/konsole")).text
        assert "Zurzeit wartet niemand." in after and "Ihre Gespräche ohne Abschluss" not in after
        for wrong in ("abc", "-1", "{entry_id}", "9" * 13):
            assert (await anna.get(f"/konsole/gespraech/{wrong}")).status_code == 400
        assert (await anna.get("/konsole/gespraech/999999")).status_code == 404


async def test_callbacks_pbx_link_and_number_search(
    setup: tuple[Settings, Repository, SqlCallRecordStore], app_client: httpx.ASGITransport
) -> None:
    _settings, repository, store = setup
    transcript = handed_off_call(store)
    assert store.flush()
    now = time.time()
    later = repository.add_callback(
        transcript.call_id, "Bürgerbüro", "030 7654321", now + 3600, topic="Ausweis"
    )
    overdue = repository.add_callback(
        transcript.call_id,
        "Bürgerbüro",
        "+49301234567",
        now - 7200,
        caller_name="Erika Muster",
        topic="Ausweis",
    )
    standesamt = repository.add_callback(
        transcript.call_id, "Standesamt", "0309999", now - 60, topic="Trauung"
    )
    reference = "Zq8vYw3LmN2pX7rTa1Bc"
    repository.enqueue(
        transcript.call_id, "Bürgerbüro", "engine_handoff", mode=QueueMode.PBX, reference=reference,
        caller_number="+49301234567",
    )  # fmt: skip
    async with _client(app_client) as anna, _client(app_client) as lea:
        assert (await sign_in(anna, "anna")).status_code == 303
        assert (await sign_in(lea, "lea")).status_code == 303
        assert "Zurzeit wartet niemand." in (await anna.get("/konsole")).text  # a PBX entry waits in the PBX
        page = (await anna.get("/konsole/rueckrufe")).text
        order = [int(n) for n in re.findall(r'id="rueckruf-(\d+)"', page)]
        assert order == [overdue.id, standesamt.id, later.id]  # earliest due first; anna: every group
        assert page.count("Überfällig</strong>") == 2 and "⚠ Erika Muster" in page
        token = csrf_of(page)
        claim = await anna.post(
            "/konsole/rueckrufe/uebernehmen", data={"csrf": token, "rueckruf": str(overdue.id)}
        )
        assert claim.status_code == 303 and "hinweis=uebernommen" in claim.headers["location"]
        lea_token = csrf_of((await lea.get("/konsole/rueckrufe")).text)
        again = await lea.post(
            "/konsole/rueckrufe/uebernehmen", data={"csrf": lea_token, "rueckruf": str(overdue.id)}
        )
        assert "hinweis=vergeben-rueckruf" in again.headers["location"]
        assert "Übernommen von Anna Beispiel." in (await lea.get("/konsole/rueckrufe")).text
        assert 'name="ergebnis"' in (await anna.get("/konsole/rueckrufe")).text
        wrong = await lea.post(
            "/konsole/rueckrufe/ergebnis",
            data={"csrf": lea_token, "rueckruf": str(overdue.id), "ergebnis": "done"},
        )
        assert wrong.status_code == 409
        done = await anna.post(
            "/konsole/rueckrufe/ergebnis",
            data={
                "csrf": token,
                "rueckruf": str(overdue.id),
                "ergebnis": "done",
                "notiz": "Termin für Montag.",
            },
        )
        assert done.status_code == 303
        finished = repository.callback(overdue.id)
        assert finished is not None and (finished.status, finished.outcome_note) == (
            CallbackStatus.DONE.value, "Termin für Montag."
        )  # fmt: skip
        assert f'id="rueckruf-{overdue.id}"' not in (await anna.get("/konsole/rueckrufe")).text

        linked = await anna.get(f"/konsole/anruf/{reference}")
        assert linked.status_code == 200 and OPEN_QUESTION in linked.text and PASSPORT_ANSWER in linked.text
        assert linked.text.count(PAGE_LINK) == 1  # two sections of the page cited: one link
        assert "Gruppe: Bürgerbüro" in linked.text and "Rückruf an +49301234567: erledigt" in linked.text
        assert (await anna.get(f"/konsole/anruf/{transcript.call_id}")).status_code == 200
        for unknown in ("A" * 20, "kurz", "call_20260101T000000000Z_000000000000"):
            assert (await anna.get(f"/konsole/anruf/{unknown}")).status_code == 404

        found = await anna.get("/konsole/suche", params={"rufnummer": "030 1234567"})
        assert found.status_code == 200 and f"/konsole/anruf/{transcript.call_id}" in found.text
        assert found.text.count("+49301234567") == 2  # the PBX hand-off and the call-back request
        nothing = await anna.get("/konsole/suche", params={"rufnummer": "0401111"})
        assert "Keine Anrufe mit der Rufnummer 0401111 gefunden." in nothing.text
        for bad in ("12", "abc123", "1%2"):
            refused = await anna.get("/konsole/suche", params={"rufnummer": bad})
            assert refused.status_code == 400 and 'role="alert"' in refused.text


def test_the_console_time_zone_must_exist() -> None:
    assert HttpSettings(console_timezone="Europe/Vienna").console_timezone == "Europe/Vienna"
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        HttpSettings(console_timezone="Mars/Olympus")
