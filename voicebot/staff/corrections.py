"""Corrections that reach the next call (issue 11, decision 0940).

A supervisor marks a bot turn of a call as wrong ("Antwort falsch", with the correct answer) or as missing
something ("Fehlende Information", with the text and the page it belongs to): a *draft*. A second person
(supervisor or administrator, never the author) approves or rejects it. Approval *applies* it: a correction page
``korrektur-<id>.md`` is written into ``paths.corrections_dir`` (layer ``correction``, ``overrides: <page id>``,
see :mod:`knowledge.layers`) and only that file is ingested into the index; a running server's
:mod:`voicebot.knowledge_reload` picks up the new index generation, so the next question uses it. Reverting deletes
the page and ingests again (the vanished file is pruned). Every step is written to the audit log.

The file name comes from the correction's number only; nothing a caller or a reviewer typed names a path.
Blocking work (file, index, embeddings): callers in the event loop run these functions in a thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import Engine, insert, select, update

from voicebot.db.engine import writing
from voicebot.db.models import Correction
from voicebot.privacy.data import audit

TABLE: Any = Correction.__table__
KINDS = {"wrong": "Antwort falsch", "missing": "Fehlende Information"}
STATUSES = {
    "draft": "Entwurf (wartet auf Freigabe)",
    "approved": "Freigegeben und angewandt",
    "rejected": "Abgelehnt",
    "reverted": "Zurückgenommen",
}
MAX_TEXT_CHARS = 2000
MAX_REASON_CHARS = 500
MAX_QUESTION_CHARS = 500


class CorrectionError(ValueError):
    """Input or a state that does not allow the step (one German line for the page or the CLI)."""


class InvalidInput(CorrectionError):
    """Input the step cannot take (an empty text or reason, too long): 400 on a page, usage error in the CLI."""


class NotAllowed(CorrectionError):
    """The person may not take this step (the author deciding on their own draft)."""


@dataclass(frozen=True)
class CorrectionRow:
    id: int
    call_id: str
    turn_index: int
    kind: str
    page_id: str
    question: str
    text: str
    status: str
    created_by: str
    created_at: float
    decided_by: str
    decided_at: float | None
    reason: str
    applied_generation: int | None
    file_path: str

    @property
    def page_name(self) -> str:
        return page_id_of(self.id)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def page_id_of(correction_id: int) -> str:
    return f"korrektur-{int(correction_id)}"


def _row(found: Any) -> CorrectionRow:
    return CorrectionRow(**{name: getattr(found, name) for name in CorrectionRow.__dataclass_fields__})


def _one_line(text: str) -> str:
    return " ".join(text.split())


def create_draft(
    engine: Engine,
    *,
    call_id: str,
    turn_index: int,
    kind: str,
    page_id: str,
    question: str,
    text: str,
    author: str,
    now: float | None = None,
) -> int:
    """Store a draft; raises :class:`CorrectionError` for input the form should not have sent."""
    text = _one_line(text)
    if kind not in KINDS:
        raise InvalidInput("Art der Korrektur fehlt: „Antwort falsch“ oder „Fehlende Information“ wählen.")
    if not text:
        raise InvalidInput("Bitte den richtigen oder fehlenden Text eingeben.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"Der Text ist zu lang: höchstens {MAX_TEXT_CHARS} Zeichen.")
    if not page_id:
        raise InvalidInput("Bitte die Seite wählen, zu der die Korrektur gehört.")
    with writing(engine) as connection:
        result = connection.execute(
            insert(TABLE).values(
                call_id=call_id,
                turn_index=turn_index,
                kind=kind,
                page_id=page_id[:200],
                question=_one_line(question)[:MAX_QUESTION_CHARS],
                text=text,
                status="draft",
                created_by=author[:64],
                created_at=time.time() if now is None else now,
                decided_by="",
                reason="",
                file_path="",
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        correction_id = int(key[0])
    audit(engine, f"console:{author}", "correction_draft", f"{page_id_of(correction_id)} (Anruf {call_id})")
    return correction_id


def get(engine: Engine, correction_id: int) -> CorrectionRow | None:
    with engine.connect() as connection:
        found = connection.execute(select(TABLE).where(TABLE.c.id == correction_id)).first()
    return None if found is None else _row(found)


def list_corrections(engine: Engine, status: str | None = None, *, limit: int = 500) -> list[CorrectionRow]:
    """Newest first; ``status`` one of :data:`STATUSES` (None: all)."""
    query = select(TABLE).order_by(TABLE.c.created_at.desc(), TABLE.c.id.desc()).limit(max(1, limit))
    if status:
        query = query.where(TABLE.c.status == status)
    with engine.connect() as connection:
        return [_row(found) for found in connection.execute(query)]


def for_call(engine: Engine, call_id: str) -> list[CorrectionRow]:
    with engine.connect() as connection:
        query = select(TABLE).where(TABLE.c.call_id == call_id).order_by(TABLE.c.id)
        return [_row(found) for found in connection.execute(query)]


def page_titles(index_dir: Path | str) -> dict[str, str]:
    """Page id → title of the pages a correction can amend: the index's pages, not correction pages themselves
    and not pages that amend another (a correction amends the page the caller heard)."""
    from knowledge.index import KnowledgeIndex

    index = KnowledgeIndex.open(index_dir)
    titles: dict[str, str] = {}
    for chunk in index.chunks:
        if chunk.id == chunk.doc_id and not chunk.overrides:
            titles[chunk.doc_id] = chunk.title or chunk.doc_id
    return dict(sorted(titles.items(), key=lambda item: item[1].casefold()))


def page_markdown(row: CorrectionRow, base_title: str, approver: str, when: datetime) -> str:
    """The correction page: front matter naming who, when and the call it came from; the corrected text."""
    day = f"{when:%d.%m.%Y}"
    title = f"Korrektur vom {day}: {base_title}"
    meta: dict[str, Any] = {
        "id": row.page_name,
        "title": title,
        "layer": "correction",
        "overrides": row.page_id,
        "language": "de",
        "correction_id": row.id,
        "correction_kind": row.kind,
        "author": row.created_by,
        "approved_by": approver,
        "approved_at": when.isoformat(timespec="seconds"),
        "source_call": row.call_id,
        "source_turn": row.turn_index,
    }
    if row.kind == "wrong":
        meta["spoken_answer"] = row.text  # what the bot says for the page from now on
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000)
    return f"---\n{front}---\n# {title}\n\n## Korrektur vom {day}\n\n{_one_line(row.text)}\n"


def _ingest(index_dir: Path, paths: list[Path], prune: bool = False) -> int:
    from knowledge.index import KnowledgeIndex

    index = KnowledgeIndex.open(index_dir)
    report = index.ingest(paths, prune=prune)  # takes the index's own lock (one ingest at a time)
    problems = [reason for path, reason in report.skipped if any(str(p) in path for p in paths)]
    if problems:
        raise CorrectionError(f"Die Korrekturseite konnte nicht eingelesen werden: {problems[0]}")
    return index.generation


def _claim(
    engine: Engine, correction_id: int, person: str, status: str, reason: str, now: float
) -> CorrectionRow:
    """Move a draft to ``status`` unless someone else decided first; the author may not decide."""
    row = get(engine, correction_id)
    if row is None:
        raise CorrectionError("Diese Korrektur gibt es nicht.")
    if row.created_by == person:
        raise NotAllowed(
            "Eine Korrektur gibt eine zweite Person frei oder lehnt sie ab, nicht wer sie verfasst hat."
        )
    with writing(engine) as connection:
        changed = connection.execute(
            update(TABLE)
            .where(TABLE.c.id == correction_id, TABLE.c.status == "draft")
            .values(status=status, decided_by=person[:64], decided_at=now, reason=reason[:MAX_REASON_CHARS])
        ).rowcount
    if changed != 1:
        raise CorrectionError(
            f"Diese Korrektur ist kein Entwurf mehr ({STATUSES.get(row.status, row.status)})."
        )
    return row


def approve(
    engine: Engine,
    correction_id: int,
    approver: str,
    *,
    corrections_dir: Path,
    index_dir: Path,
    zone: ZoneInfo,
    now: float | None = None,
) -> CorrectionRow:
    """Approve a draft and apply it: write its page, ingest only that file. Blocking (run in a thread)."""
    now = time.time() if now is None else now
    row = _claim(engine, correction_id, approver, "approved", "", now)
    path = Path(corrections_dir) / f"{row.page_name}.md"
    try:
        titles = page_titles(index_dir)
        if row.page_id not in titles:
            raise CorrectionError(f"Die Seite {row.page_id} ist nicht (mehr) im Wissen.")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = page_markdown(row, titles[row.page_id], approver, datetime.fromtimestamp(now, zone))
        path.write_text(text, encoding="utf-8")
        generation = _ingest(Path(index_dir), [path])
    except BaseException:
        path.unlink(missing_ok=True)  # nothing applied: the draft waits again
        with writing(engine) as connection:
            connection.execute(
                update(TABLE)
                .where(TABLE.c.id == correction_id)
                .values(status="draft", decided_by="", decided_at=None)
            )
        raise
    with writing(engine) as connection:
        connection.execute(
            update(TABLE)
            .where(TABLE.c.id == correction_id)
            .values(applied_generation=generation, file_path=str(path))
        )
    audit(engine, f"console:{approver}", "correction_approve", f"{row.page_name} (Index {generation})")
    return get(engine, correction_id) or row


def reject(engine: Engine, correction_id: int, person: str, reason: str, now: float | None = None) -> None:
    reason = _one_line(reason)
    if not reason:
        raise InvalidInput("Bitte kurz begründen, warum die Korrektur abgelehnt wird.")
    row = _claim(engine, correction_id, person, "rejected", reason, time.time() if now is None else now)
    audit(engine, f"console:{person}", "correction_reject", row.page_name)


def revert(
    engine: Engine,
    correction_id: int,
    person: str,
    reason: str,
    *,
    index_dir: Path,
) -> CorrectionRow:
    """Take an applied correction back: delete its page, ingest again (the vanished file is pruned)."""
    reason = _one_line(reason)
    if not reason:
        raise InvalidInput("Bitte kurz begründen, warum die Korrektur zurückgenommen wird.")
    row = get(engine, correction_id)
    if row is None:
        raise CorrectionError("Diese Korrektur gibt es nicht.")
    if row.status == "approved" and not row.file_path:
        raise CorrectionError("Diese Korrektur wird gerade angewandt: bitte gleich noch einmal versuchen.")
    with writing(engine) as connection:  # the first revert wins (two people pressing at once)
        changed = connection.execute(
            update(TABLE)
            .where(TABLE.c.id == correction_id, TABLE.c.status == "approved")
            .values(  # who approved stays; who took it back, when and why: the reason and the audit log
                status="reverted", reason=f"Zurückgenommen von {person}: {reason}"[:MAX_REASON_CHARS]
            )
        ).rowcount
    if changed != 1:
        raise CorrectionError("Nur eine angewandte Korrektur kann zurückgenommen werden.")
    # Once reverted, the page goes; should the ingest fail now, any later ingest of the folder prunes it.
    path = Path(row.file_path)
    path.unlink(missing_ok=True)
    generation = _ingest(Path(index_dir), [path.parent], prune=True) if path.parent.exists() else None
    with writing(engine) as connection:
        connection.execute(
            update(TABLE).where(TABLE.c.id == correction_id).values(applied_generation=generation)
        )
    audit(engine, f"console:{person}", "correction_revert", f"{row.page_name} (Index {generation})")
    return get(engine, correction_id) or row
