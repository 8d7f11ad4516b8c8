"""Corrections on SQLite and PostgreSQL (decision 0940): a draft keeps who, when and the call; its author cannot
decide on it; the first decision wins, a second one is refused; input without text or reason is refused with one
German line. The whole way from the console to the next answer is tests/web/test_corrections.py."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from database import Database, database, empty_database  # noqa: F401 (fixtures)

from voicebot.privacy.data import audit_entries
from voicebot.staff import corrections

CALL = "call_20261201T120801123Z_000000000001"


def test_draft_decide_once_and_list(database: Database, tmp_path: Path) -> None:  # noqa: F811
    engine = database.engine()
    try:
        first = corrections.create_draft(
            engine, call_id=CALL, turn_index=2, kind="wrong", page_id="hallenbad",
            question="Wann hat  das Hallenbad offen?", text=" Montags   geschlossen. ", author="lea", now=100.0,
        )  # fmt: skip
        second = corrections.create_draft(
            engine, call_id=CALL, turn_index=4, kind="missing", page_id="hallenbad",
            question="", text="Es gibt eine Sauna.", author="otto", now=200.0,
        )  # fmt: skip
        with pytest.raises(corrections.InvalidInput, match="Bitte den richtigen"):
            corrections.create_draft(
                engine, call_id=CALL, turn_index=2, kind="wrong", page_id="hallenbad", question="",
                text="   ", author="lea",
            )  # fmt: skip
        with pytest.raises(corrections.InvalidInput, match="Art der Korrektur"):
            corrections.create_draft(
                engine, call_id=CALL, turn_index=2, kind="falsch", page_id="hallenbad", question="",
                text="x", author="lea",
            )  # fmt: skip
        row = corrections.get(engine, first)
        assert row is not None and (row.text, row.question, row.status, row.created_by, row.created_at) == (
            "Montags geschlossen.", "Wann hat das Hallenbad offen?", "draft", "lea", 100.0,
        )  # fmt: skip

        with pytest.raises(corrections.NotAllowed):
            corrections.approve(
                engine, first, "lea", corrections_dir=tmp_path / "k", index_dir=tmp_path / "i",
                zone=ZoneInfo("Europe/Berlin"),
            )  # fmt: skip
        with pytest.raises(corrections.NotAllowed):
            corrections.reject(engine, first, "lea", "eigener Entwurf")
        with pytest.raises(corrections.InvalidInput, match="begründen"):
            corrections.reject(engine, first, "otto", "  ")
        corrections.reject(engine, first, "otto", "Stimmt nicht.", now=300.0)
        with pytest.raises(corrections.CorrectionError, match="kein Entwurf mehr"):
            corrections.reject(engine, first, "jan", "noch einmal")
        # Approving against an index without the page: nothing is applied, the draft waits again.
        with pytest.raises(corrections.CorrectionError, match="nicht \\(mehr\\) im Wissen"):
            corrections.approve(
                engine, second, "lea", corrections_dir=tmp_path / "k", index_dir=tmp_path / "i",
                zone=ZoneInfo("Europe/Berlin"),
            )  # fmt: skip
        assert not (tmp_path / "k" / f"korrektur-{second}.md").exists()
        with pytest.raises(corrections.CorrectionError, match="Nur eine angewandte"):
            corrections.revert(engine, second, "lea", "zurück", index_dir=tmp_path / "i")

        listed = [(r.id, r.status, r.decided_by, r.decided_at) for r in corrections.list_corrections(engine)]
        assert listed == [(second, "draft", "", None), (first, "rejected", "otto", 300.0)]
        assert [r.id for r in corrections.list_corrections(engine, "rejected")] == [first]
        assert [r.turn_index for r in corrections.for_call(engine, CALL)] == [2, 4]
        actions = sorted(e.action for e in audit_entries(engine) if e.action.startswith("correction"))
        assert actions == ["correction_draft", "correction_draft", "correction_reject"]
    finally:
        engine.dispose()


def test_retention_keeps_a_correction_but_not_the_callers_words(database: Database, tmp_path: Path) -> None:  # noqa: F811
    from test_review import T0, call_id, record

    from voicebot.db import rows
    from voicebot.db.engine import writing
    from voicebot.privacy.data import retention
    from voicebot.settings import PrivacySettings

    engine = database.engine()
    try:
        said = record(7, T0, "Wann hat das Hallenbad offen?")
        with writing(engine) as connection:
            rows.write_whole(connection, said, T0 + 30)
        made = corrections.create_draft(
            engine, call_id=call_id(7), turn_index=2, kind="wrong", page_id="hallenbad",
            question="Wann hat das Hallenbad offen?", text="Montags geschlossen.", author="lea",
        )  # fmt: skip
        deleted = retention(engine, PrivacySettings(), tmp_path, now=T0 + 31 * 86400)
        assert deleted.calls == 1
        kept = corrections.get(engine, made)
        assert kept is not None and (kept.question, kept.text, kept.call_id) == (
            "",
            "Montags geschlossen.",
            call_id(7),
        )
    finally:
        engine.dispose()
