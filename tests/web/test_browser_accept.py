""" "Im Browser annehmen" over HTTP, in-process, on SQLite and PostgreSQL: the button is offered only for callers
this process holds; a caller held by another server is refused with a clear 409 (take it on the phone); the JSON
routes want the session's CSRF token. The audio path itself runs end to end in test_browser_accept_call.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from test_summary import handed_off_call

from voicebot.calls import CallRegistry
from voicebot.db.models import QueueStatus
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.settings import Settings
from voicebot.telephony.queue import QueueDesk
from voicebot.telephony.sip_calls import SipCallService
from voicebot.web.app import create_app
from voicebot.web.browser_accept import ELSEWHERE, TAKEN
from web.test_console import csrf_of, sign_in
from web.test_staff_queue import index_dir, setup  # noqa: F401 (fixtures)

THIS_SERVER = "rathaus-a"


async def _no_pipeline(*_call: object) -> object:
    raise AssertionError("no call is placed in this test")


@pytest.fixture
async def anna(
    setup: tuple[Settings, Repository, SqlCallRecordStore],  # noqa: F811 (the fixture)
) -> AsyncIterator[tuple[httpx.AsyncClient, Repository, SqlCallRecordStore]]:
    settings, repository, store = setup
    phone_calls = SipCallService(settings, CallRegistry(max_calls=2), _no_pipeline)  # type: ignore[arg-type]
    phone_calls.queue = QueueDesk(settings.queue, repository, process=THIS_SERVER, listen=False)
    app = create_app(settings, None, phone_calls=phone_calls)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        assert (await sign_in(client, "anna")).status_code == 303
        yield client, repository, store


async def test_only_callers_of_this_server_can_be_taken_in_the_browser(
    anna: tuple[httpx.AsyncClient, Repository, SqlCallRecordStore],
) -> None:
    client, repository, store = anna
    here = handed_off_call(store)
    there = handed_off_call(store)
    assert store.flush()
    held_here = repository.enqueue(here.call_id, "Bürgerbüro", "engine_handoff", process={"id": THIS_SERVER})
    held_there = repository.enqueue(
        there.call_id, "Bürgerbüro", "engine_handoff", process={"id": "rathaus-b"}
    )

    page = (await client.get("/konsole")).text
    assert f'id="im-browser-{held_here.id}"' in page and f'id="im-browser-{held_there.id}"' not in page
    assert '<script src="/static/browser_accept.js" defer>' in page and 'id="im-browser-auflegen"' in page
    token = csrf_of(page)

    offer = {"csrf": token, "sdp": "v=0\r\n", "type": "offer"}
    elsewhere = await client.post("/konsole/im-browser", json={**offer, "eintrag": held_there.id})
    assert elsewhere.status_code == 409 and elsewhere.json() == {"detail": ELSEWHERE}
    assert ELSEWHERE == "Anruf liegt auf einem anderen Server – bitte am Telefon annehmen."
    # Held here by the record, but no call of this process waits as that entry (its caller is gone): refused.
    gone = await client.post("/konsole/im-browser", json={**offer, "eintrag": str(held_here.id)})
    assert gone.status_code == 409 and gone.json() == {"detail": TAKEN}
    for entry in (held_here, held_there):  # nothing was offered to anyone
        stored = repository.queue_entry(entry.id)
        assert stored is not None and stored.status == QueueStatus.WAITING.value

    no_token = await client.post("/konsole/im-browser", json={**offer, "csrf": "x", "eintrag": held_here.id})
    assert no_token.status_code == 403
    not_json = await client.post("/konsole/im-browser", data={"csrf": token, "eintrag": str(held_here.id)})
    assert not_json.status_code == 400
    bad_id = await client.post("/konsole/im-browser", json={**offer, "eintrag": "1; DROP"})
    assert bad_id.status_code == 400 and bad_id.json() == {"detail": "Ungültige Eintragsnummer."}
    assert (await client.post("/konsole/im-browser", json={**offer, "eintrag": 999999})).status_code == 404
    assert (await client.get("/konsole/im-browser/status")).json() == {"state": "none", "text": ""}
    hang_up = await client.post("/konsole/im-browser/auflegen", json={"csrf": token})
    assert hang_up.status_code == 200 and hang_up.json() == {"state": "none", "text": ""}  # nothing to end


async def test_without_phone_calls_in_this_process_there_is_no_browser_button(
    setup: tuple[Settings, Repository, SqlCallRecordStore],  # noqa: F811 (the fixture)
) -> None:
    settings, repository, store = setup
    transcript = handed_off_call(store)
    assert store.flush()
    entry = repository.enqueue(
        transcript.call_id, "Bürgerbüro", "engine_handoff", process={"id": THIS_SERVER}
    )
    app = create_app(settings, None)  # a console-only process
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        assert (await sign_in(client, "anna")).status_code == 303
        page = (await client.get("/konsole")).text
        assert f'id="annehmen-{entry.id}"' in page  # the phone way stays
        assert "Im Browser annehmen" not in page and "browser_accept.js" not in page
        refused = await client.post(
            "/konsole/im-browser",
            json={"csrf": csrf_of(page), "eintrag": entry.id, "sdp": "v=0\r\n", "type": "offer"},
        )
        assert refused.status_code == 409 and refused.json() == {"detail": ELSEWHERE}
