"""The PBX queue hand-off's reference (voicebot/telephony/pbx_handoff.py): the header values that carry it, the
console link's base URL, and its queue entry on SQLite and PostgreSQL. The headers on the wire, as a real SIP peer
receives them, are checked in tests/interop/test_sipp.py (the refused-REFER bridge test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from sip_bridge.sip.headers import parse_user_to_user, uri_with_headers
from sip_bridge.sip.message import URI
from voicebot.db.repository import Repository
from voicebot.db.store import SqlCallRecordStore
from voicebot.pipeline.transcript import CallTranscript
from voicebot.settings import HttpSettings, Settings
from voicebot.telephony.pbx_handoff import (
    PbxHandoffs,
    handoff_headers,
    new_reference,
    reference_from_user_to_user,
    summary_url,
)


def test_references_are_unguessable_and_fit_the_column() -> None:
    references = {new_reference() for _ in range(200)}
    assert len(references) == 200
    assert all(
        len(r) == 24 and r.isascii() and r.replace("-", "").replace("_", "").isalnum() for r in references
    )


def test_the_headers_carry_the_reference_and_the_console_link() -> None:
    settings = Settings(http=HttpSettings(public_url="https://hotline.musterstadt.example/"))
    reference = "AbC-_123" * 3
    headers = handoff_headers(settings, reference)
    assert (
        headers["Call-Info"]
        == f"<https://hotline.musterstadt.example/konsole/anruf/{reference}>;purpose=info"
    )
    data, params = parse_user_to_user(headers["User-to-User"])
    assert data == b"\x04" + reference.encode()  # IA5 protocol discriminator, then the reference
    assert params == {"encoding": "hex", "purpose": "isdn-uui", "content": "isdn-uui"}
    assert reference_from_user_to_user(headers["User-to-User"]) == reference
    for other in (
        "zz;encoding=hex",
        "0461;encoding=hex;purpose=other",
        "0561;encoding=hex",
        "04ff;encoding=hex",
    ):
        assert reference_from_user_to_user(other) is None
    # Through a Refer-To URI and back, unchanged.
    target = URI.parse(uri_with_headers("sip:queue@pbx.example", headers))
    embedded = {k: unquote(v) for k, v in (p.split("=", 1) for p in (target.headers or "").split("&"))}
    assert embedded == headers


@pytest.mark.parametrize(
    ("http", "url"),
    [
        ({}, "http://127.0.0.1:8080/konsole/anruf/R"),
        ({"host": "::1", "port": 8443}, "http://[::1]:8443/konsole/anruf/R"),
        (
            {"public_url": "https://rathaus.example/hotline/"},
            "https://rathaus.example/hotline/konsole/anruf/R",
        ),
    ],
)
def test_the_link_starts_at_the_public_url_or_the_http_address(http: dict[str, object], url: str) -> None:
    assert summary_url(Settings(http=HttpSettings(**http)), "R") == url  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "rathaus.example",
        "ftp://rathaus.example",
        "https://rathaus.example/a b",
        "https://x/?q=1",
        "https://x/a\r\nVia:b",
    ],
)
def test_a_public_url_that_is_no_plain_http_address_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="http"):
        HttpSettings(public_url=bad)


@pytest.fixture
def store(database: Database, tmp_path: Path) -> Iterator[SqlCallRecordStore]:  # noqa: F811
    sql = SqlCallRecordStore(database.engine(), fallback_dir=tmp_path / "fallback")
    yield sql
    sql.close()


def test_the_entry_is_waiting_then_answered_or_abandoned(
    store: SqlCallRecordStore,
    database: Database,  # noqa: F811
) -> None:
    handoffs = PbxHandoffs(Settings(), Repository(database.engine()), store)
    first = CallTranscript(channel="sip", channel_call_id="a@pbx", store=store)
    second = CallTranscript(channel="sip", channel_call_id="b@pbx", store=store)
    opened = handoffs.open(first.call_id, "Bürgerbüro", "caller_asked", "+49301234")
    other = handoffs.open(second.call_id, "Standesamt", "handoff_key", "")
    assert opened.reference != other.reference
    assert reference_from_user_to_user(opened.headers["User-to-User"]) == opened.reference
    entry = handoffs.repository.queue_entry_by_reference(opened.reference)
    assert entry is not None and entry.id == opened.entry_id
    assert (entry.mode, entry.status, entry.group_name, entry.caller_number) == (
        "pbx",
        "waiting",
        "Bürgerbüro",
        "+49301234",
    )
    assert handoffs.answered(opened.entry_id) and not handoffs.ended(opened.entry_id)  # settled once
    assert handoffs.ended(other.entry_id) and not handoffs.answered(other.entry_id)
    answered = handoffs.repository.queue_entry(opened.entry_id)
    abandoned = handoffs.repository.queue_entry(other.entry_id)
    assert answered is not None and answered.status == "answered" and answered.answered_at is not None
    assert abandoned is not None and abandoned.status == "abandoned" and abandoned.ended_at is not None
    # An entry of the bot's own queue is never answered by the PBX path.
    own = handoffs.repository.enqueue(first.call_id, "Bürgerbüro", "caller_asked")
    assert not handoffs.answered(own.id)
    # A call the database does not know: the store is flushed once, then the error stands.
    with pytest.raises(IntegrityError):
        handoffs.open("call_20260101T000000000Z_000000000000", "Bürgerbüro", "caller_asked", "")
