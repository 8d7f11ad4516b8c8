"""Transcript review in the console, in-process over a real SQLite database: a supervisor filters and searches
the call list (match marked, filters kept across pages), opens one call's timeline (ASR and answer confidence,
cited page linked, per-stage latency, barge-in, DTMF, hand-off and queue events in time order); bad filters get
400 with one German line, an unknown call 404, staff 403 (the role walk of test_console covers every route)."""

from __future__ import annotations

import re
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_review import T0, call_id, record

from voicebot.db import rows
from voicebot.db.engine import make_engine, writing
from voicebot.settings import Settings
from voicebot.web.app import create_app
from web.test_console import add_users, make_settings, sign_in


def seed(settings: Settings) -> None:
    timeline = record(
        1, T0, "Äh, ich brauche einen neuen Führerschein.", "Den Führerschein beantragen Sie im Bürgerbüro.",
        asr=0.3, confidence=0.42, handoff="low_confidence",
    )  # fmt: skip
    timeline["turns"][2]["timings_ms"] = {
        "retrieval": 41.5,
        "answer_first_sentence": 120.0,
        "voice_to_voice": 980.4,
    }
    timeline["turns"][2]["interrupted"] = True
    timeline["turns"].append({"role": "caller", "kind": "dtmf", "text": "0", "start_s": 2.8})
    timeline["events"].append({"t": 3.5, "kind": "queued", "entry": 1, "group": "Bürgerbüro", "position": 1})
    others = [record(n, T0 + 60 * n, f"Frage Nummer {n} zum Reisepass <b>") for n in range(2, 6)]
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        with writing(engine) as connection:
            for item in (timeline, *others):
                rows.write_whole(connection, item, item["started_at"] + 30)
    finally:
        engine.dispose()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path)
    settings.paths.index_dir = tmp_path / "kein-index"  # no knowledge: sources show their ids, no topics
    add_users(settings)
    seed(settings)
    app = create_app(settings, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        yield client


async def test_a_supervisor_searches_pages_and_opens_a_timeline(client: httpx.AsyncClient) -> None:
    assert (await sign_in(client, "lea")).status_code == 303
    console = await client.get("/konsole")
    assert '<a href="/konsole/anrufe">Anrufe prüfen</a>' in console.text

    listed = await client.get("/konsole/anrufe")
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    assert listed.text.count('<a href="/konsole/anrufe/call_') == 5
    assert "Frage Nummer 5 zum Reisepass &lt;b&gt;" in listed.text  # escaped
    assert (
        '<label for="q">Suche im Gesagten</label>' in listed.text and '<label for="unsicher">' in listed.text
    )

    found = await client.get("/konsole/anrufe", params={"q": "fuhrerschein beantragen"})
    assert found.status_code == 200 and found.text.count('<a href="/konsole/anrufe/call_') == 1
    assert "<mark>Führerschein</mark> <mark>beantragen</mark>" in found.text
    assert "Bot zu unsicher" in found.text and "Weitergeleitet" in found.text
    assert "Erkennung 0,30, Antwort 0,42 <strong>(unsicher)</strong>" in found.text

    unsure = await client.get("/konsole/anrufe", params={"unsicher": "1", "ergebnis": "weitergeleitet"})
    assert unsure.text.count('<a href="/konsole/anrufe/call_') == 1
    assert (
        await client.get("/konsole/anrufe", params={"ergebnis": "beantwortet", "kanal": "webrtc"})
    ).text.count('<a href="/konsole/anrufe/call_') == 0

    # Keyset pages of the review's page size keep the filter in the next link.
    from voicebot.staff import review

    review_page_size, review.PAGE_SIZE = review.PAGE_SIZE, 2
    try:
        seen: list[str] = []
        url = "/konsole/anrufe?q=Reisepass"
        for _ in range(5):
            page = await client.get(url)
            seen += re.findall(r'href="/konsole/anrufe/(call_[^"]+)"', page.text)
            following = re.search(
                r'<a href="(/konsole/anrufe\?[^"]+)" rel="next">Ältere Anrufe</a>', page.text
            )
            if following is None:
                break
            url = following.group(1).replace("&amp;", "&")
            assert "q=Reisepass" in url and "nach=" in url
        assert seen == [call_id(n) for n in (5, 4, 3, 2)]
    finally:
        review.PAGE_SIZE = review_page_size

    timeline = await client.get(f"/konsole/anrufe/{call_id(1)}")
    assert timeline.status_code == 200 and timeline.headers["cache-control"] == "no-store"
    text = timeline.text
    parts = [
        "Bot – Begrüßung",
        "„Äh, ich brauche einen neuen Führerschein.“",
        "Sicherheit der Spracherkennung: 0,30 – unsicher",
        "Bot – Antwort</span> Den Führerschein beantragen Sie im Bürgerbüro.",
        "Aktion: beantwortet · Sicherheit der Antwort: 0,42 – <strong>unsicher</strong>",
        "<strong>Unterbrochen</strong> (Barge-in)",
        'Zitierte Seiten: <ul class="quellen"><li>buergerbuero',
        "<dt>Suche im Wissen</dt><dd>42 ms</dd>",
        "<dt>Gesamt: Sprechende bis Antwort hörbar</dt><dd>980 ms</dd>",
        "Anrufer/in unterbricht den Bot (Barge-in)",
    ]
    assert all(part in text for part in parts), [part for part in parts if part not in text]
    positions = [text.index(part) for part in (
        "Bot – Begrüßung", "„Äh, ich brauche", "Anrufer/in unterbricht den Bot", "Bot – Antwort",
        "Taste 0 gedrückt (DTMF)", "Übergabe an Mitarbeitende angefordert", "In die Warteschlange eingereiht",
    )]  # fmt: skip
    assert positions == sorted(positions), positions  # time order: 0.0, 1.0, 2.0, 2.5, 2.8, 3.0, 3.5
    assert "reason: Bot zu unsicher; group: Bürgerbüro" in text
    assert "<dt>Ergebnis</dt><dd>Weitergeleitet</dd>" in text
    assert '<dt>Ende</dt><dd>Anrufer/in hat aufgelegt <span class="hilfe">(hangup)</span></dd>' in text

    missing = await client.get(f"/konsole/anrufe/{call_id(99)}")
    assert missing.status_code == 404 and "Diesen Anruf gibt es nicht" in missing.text
    assert (await client.get("/konsole/anrufe/..%2F..%2Fetc")).status_code == 404


BAD_FILTERS = [
    ({"von": "gestern"}, "„Von“ ist kein Datum"),
    ({"von": "2026-12-02", "bis": "2026-12-01"}, "„Von“ liegt nach „Bis“"),
    ({"ergebnis": "gut"}, "Dieses Ergebnis gibt es nicht"),
    ({"grund": "x"}, "Diesen Übergabegrund gibt es nicht"),
    ({"kanal": "fax"}, "Diesen Kanal gibt es nicht"),
    ({"sprache": "xx"}, "Diese Sprache gibt es nicht"),
    ({"thema": "Bürgerbüro"}, "Dieses Thema gibt es (nicht mehr) im Wissen"),
    ({"q": "a b c d e f g h i"}, "höchstens 8 Suchwörter"),
    ({"q": "x" * 300}, "Eine Angabe im Filter ist zu lang: höchstens 200 Zeichen."),
    ({"nach": "1.5~call_x"}, "Der Link zur nächsten Seite ist ungültig"),
]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


async def test_a_supervisor_flags_a_call_and_filters_by_flag_and_language(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    from voicebot.privacy.data import audit_entries

    assert (await sign_in(client, "lea")).status_code == 303
    listed = await client.get("/konsole/anrufe")
    assert '<label for="markiert">Nur markierte Anrufe</label>' in listed.text
    assert '<label for="sprache">Sprache (erkannt beim Anrufenden)</label>' in listed.text
    assert (await client.get("/konsole/anrufe", params={"sprache": "de"})).text.count(
        '<a href="/konsole/anrufe/call_'
    ) == 5
    assert (await client.get("/konsole/anrufe", params={"sprache": "en"})).text.count(
        '<a href="/konsole/anrufe/call_'
    ) == 0

    timeline = await client.get(f"/konsole/anrufe/{call_id(3)}")
    assert '<dd id="markierung">nein</dd>' in timeline.text and "Anruf markieren</button>" in timeline.text
    csrf = csrf_of(timeline.text)
    url = f"/konsole/anrufe/{call_id(3)}/markieren"
    forged = await client.post(url, data={"csrf": "falsch", "markiert": "1"})
    assert forged.status_code == 403
    assert (await client.post(url, data={"csrf": csrf, "markiert": "ja"})).status_code == 400
    assert (
        await client.post(f"/konsole/anrufe/{call_id(99)}/markieren", data={"csrf": csrf, "markiert": "1"})
    ).status_code == 404
    marked = await client.post(url, data={"csrf": csrf, "markiert": "1"})
    assert marked.status_code == 303 and marked.headers["location"] == f"/konsole/anrufe/{call_id(3)}"
    timeline = await client.get(f"/konsole/anrufe/{call_id(3)}")
    assert '<dd id="markierung">ja</dd>' in timeline.text and "Markierung entfernen</button>" in timeline.text

    only = await client.get("/konsole/anrufe", params={"markiert": "1"})
    assert re.findall(r'href="/konsole/anrufe/(call_[^"]+)"', only.text) == [call_id(3)]
    assert '<span class="markiert">(markiert)</span>' in only.text
    both = await client.get("/konsole/anrufe", params={"markiert": "1", "sprache": "en"})
    assert "Keine Anrufe gefunden." in both.text

    unmarked = await client.post(url, data={"csrf": csrf, "markiert": "0"})
    assert unmarked.status_code == 303
    assert "Keine Anrufe gefunden." in (await client.get("/konsole/anrufe", params={"markiert": "1"})).text

    engine = make_engine(f"sqlite:///{make_settings(tmp_path).paths.database_file}")
    try:
        entries = [(e.actor, e.action, e.subject) for e in audit_entries(engine)]
    finally:
        engine.dispose()
    assert ("console:lea", "flag_call", call_id(3)) in entries
    assert ("console:lea", "unflag_call", call_id(3)) in entries


async def test_bad_filters_get_one_german_line(client: httpx.AsyncClient) -> None:
    assert (await sign_in(client, "otto")).status_code == 303
    for params, message in BAD_FILTERS:
        response = await client.get("/konsole/anrufe", params=params)
        assert response.status_code == 400, params
        assert '<div id="filter-fehler" class="error" role="alert"><p>' in response.text
        assert message in response.text, (params, response.text)


async def test_staff_may_not_review_calls(client: httpx.AsyncClient) -> None:
    assert (await sign_in(client, "anna")).status_code == 303
    assert "/konsole/anrufe" not in (await client.get("/konsole")).text
    for path in ("/konsole/anrufe?q=Führerschein", f"/konsole/anrufe/{call_id(1)}"):
        response = await client.get(path)
        assert response.status_code == 403 and "Kein Zugriff" in response.text


async def test_topics_come_from_the_knowledge_index(tmp_path: Path) -> None:
    """The topic choice lists the departments of the sample knowledge base; choosing one lists the calls whose
    answers cited one of its pages, and the cited page shows its title."""
    from interop.peers import shared_index_dir

    from knowledge.index import KnowledgeIndex

    index_dir = shared_index_dir()
    chunk = next(c for c in KnowledgeIndex.open(index_dir).chunks if c.department == "Bürgerbüro")
    settings = make_settings(tmp_path)
    settings.paths.index_dir = index_dir
    add_users(settings)
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        with writing(engine) as connection:
            for item in (record(1, T0, "Wann hat das Bürgerbüro offen?", sources=(chunk.id,)),
                         record(2, T0 + 60, "Wo ist der Wertstoffhof?", sources=("nicht-im-wissen",))):  # fmt: skip
                rows.write_whole(connection, item, item["started_at"] + 30)
    finally:
        engine.dispose()
    app = create_app(settings, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        assert (await sign_in(client, "lea")).status_code == 303
        listed = await client.get("/konsole/anrufe")
        assert '<option value="Bürgerbüro">Bürgerbüro</option>' in listed.text
        chosen = await client.get("/konsole/anrufe", params={"thema": "Bürgerbüro"})
        assert re.findall(r'href="/konsole/anrufe/(call_[^"]+)"', chosen.text) == [call_id(1)]
        assert '<option value="Bürgerbüro" selected>' in chosen.text
        timeline = await client.get(f"/konsole/anrufe/{call_id(1)}")
        assert f"{chunk.title}" in timeline.text and f"({chunk.id})" in timeline.text


async def test_a_recording_is_played_only_to_supervisors_and_every_playback_is_logged(tmp_path: Path) -> None:
    from voicebot.privacy import data
    from voicebot.privacy.recordings import recording_path

    settings = make_settings(tmp_path)
    settings.paths.index_dir = tmp_path / "kein-index"
    settings.paths.recordings_dir = tmp_path / "aufnahmen"
    add_users(settings)
    seed(settings)
    settings.paths.recordings_dir.mkdir()
    with wave.open(str(recording_path(settings.paths.recordings_dir, call_id(1), "anrufer")), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x01\x00" * 1600)
    app = create_app(settings, None)
    transport = httpx.ASGITransport(app=app)
    url = f"/konsole/anrufe/{call_id(1)}/aufnahme"
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as staff:
        assert (await sign_in(staff, "anna")).status_code == 303
        assert (await staff.get(url)).status_code == 403
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as supervisor:
        assert (await sign_in(supervisor, "lea")).status_code == 303
        timeline = (await supervisor.get(f"/konsole/anrufe/{call_id(1)}")).text
        assert f'<audio controls preload="none" aria-labelledby="aufnahme-titel spur-anrufer" src="{url}?spur=anrufer">' in timeline  # fmt: skip
        assert "spur=bot" not in timeline  # only the tracks that exist
        assert "Die Anruferin oder der Anrufer hat der Aufzeichnung zugestimmt." in timeline
        assert (
            "Eine Tonaufnahme gibt es nicht." in (await supervisor.get(f"/konsole/anrufe/{call_id(2)}")).text
        )
        played = await supervisor.get(url, params={"spur": "anrufer"})
        assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
        assert played.content[:4] == b"RIFF" and played.headers["cache-control"] == "no-store"
        assert (await supervisor.get(url, params={"spur": "bot"})).status_code == 404
        assert (await supervisor.get(f"/konsole/anrufe/{call_id(2)}/aufnahme")).status_code == 404
        assert (await supervisor.get("/konsole/anrufe/..%2Fvoicebot.db/aufnahme")).status_code == 404
        bad = await supervisor.get(url, params={"spur": "../x"})
        assert bad.status_code == 400 and bad.text == "spur: anrufer oder bot"
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        logged = [
            (e.actor, e.subject, e.details) for e in data.audit_entries(engine, action="play_recording")
        ]
    finally:
        engine.dispose()
    assert logged == [("console:lea", call_id(1), {"spur": "anrufer"})]
