"""The live part of the staff console (issue 10): the queue with the bot's summary, "Annehmen", the call in
progress with its wrap-up, the call-backs page, the page a PBX hand-off links to, and the number search.

Everything is server-rendered and works without script after a reload; ``/static/console.js`` only refreshes the
queue (``GET /konsole/warteschlange``, every ``http.console_poll_s``), counts the waiting time up and reloads the
call-in-progress page when its state changes. The console reads and writes the database only: accepting a caller
is :meth:`Repository.offer` (a conditional update, so of two members of staff only one wins) followed by
:func:`voicebot.staff.queue_notify.notify_queue`; the process holding the caller rings the staff phone.

Who may use each route is declared in :data:`voicebot.web.console.ACCESS`.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from voicebot.db import rows
from voicebot.db.models import (
    Callback,
    CallbackStatus,
    QueueEntry,
    QueueOutcome,
    QueueStatus,
    StaffUser,
)
from voicebot.records import is_call_id
from voicebot.staff.summary import CallSummary, SourceLookup, SourceRef, SummaryWriter, summarize

if TYPE_CHECKING:
    from voicebot.web.console import Console
    from voicebot.web.staff_auth import SessionToken

Record = dict[str, Any]

STATUS_LABELS = {
    QueueStatus.WAITING.value: "wartet",
    QueueStatus.OFFERED.value: "wird verbunden",
    QueueStatus.ANSWERED.value: "im Gespräch / angenommen",
    QueueStatus.ABANDONED.value: "aufgelegt",
    QueueStatus.CALLBACK.value: "Rückruf gewünscht",
}
OUTCOME_LABELS = {
    QueueOutcome.SOLVED.value: "Gelöst",
    QueueOutcome.CALLBACK.value: "Rückruf nötig",
    QueueOutcome.FORWARDED.value: "Weitergeleitet",
}
CALLBACK_OUTCOMES = {
    CallbackStatus.DONE.value: "Erreicht – erledigt",
    CallbackStatus.FAILED.value: "Nicht erreicht",
}
CALLBACK_STATUS_LABELS = {
    CallbackStatus.OPEN.value: "offen",
    CallbackStatus.CLAIMED.value: "übernommen",
    CallbackStatus.DONE.value: "erledigt",
    CallbackStatus.FAILED.value: "nicht erreicht",
}
NUMBER_VIA = {"caller_id": "Anrufernummer, bestätigt", "keypad": "über die Tastatur", "speech": "gesprochen"}
NOTICES = {
    "vergeben": "Bereits angenommen: Dieser Anruf wartet nicht mehr (eine andere Person war schneller, oder die "
    "anrufende Person hat aufgelegt).",
    "abgeschlossen": "Abschluss gespeichert.",
    "uebernommen": "Rückruf übernommen.",
    "vergeben-rueckruf": "Dieser Rückruf wurde bereits von jemand anderem übernommen.",
    "erledigt": "Ergebnis des Rückrufs gespeichert.",
}
NO_PHONE = (
    "Zum Annehmen braucht Ihr Konto eine Telefonadresse (SIP-URI), unter der der Anruf Sie erreicht. "
    "Bitte tragen Sie sie unter „Mein Telefon“ ein."
)
MAX_NOTE_CHARS = 2000
NOTE_FORM_BYTES = 32 * 1024  # a note of MAX_NOTE_CHARS umlauts, percent-encoded, fits
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{8,32}")
_NUMBER_QUERY = re.compile(r"[0-9+][0-9 ()/+-]{1,30}")
WEEKDAYS = ("Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So.")
SUMMARY_CACHE_SIZE = 500
SOURCES_RELOAD_S = 60.0
MAX_SUMMARIES_WRITING = 20  # calls whose summary waits for the model at most (the rest keep the turns' text)


NO_STORE = {
    "Cache-Control": "no-store"
}  # callers' personal data: not kept in the browser's or a proxy's cache


def private_page(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=NO_STORE)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def clock(seconds: float) -> str:
    """A duration as m:ss (h:mm:ss from an hour on)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class SummaryBook:
    """The summaries of the calls the console shows, rebuilt only when a call's record changed (its
    ``updated_at``), at most :data:`SUMMARY_CACHE_SIZE` kept; and the record store and source lookup they use."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._cache: dict[str, tuple[float, str, CallSummary]] = {}
        self._lock = threading.Lock()
        self._sources: SourceLookup | None = None
        self._sources_loaded_at: float | None = None  # time.monotonic() of the last read of the index
        # The LLM that writes the request sentence (http.console_llm_summary, when [llm] has an endpoint).
        settings = console.settings
        self._writer: SummaryWriter | None = None
        if settings.llm.base_url and settings.http.console_llm_summary:
            from voicebot.staff.summary_llm import LlmSummaryWriter

            self._writer = LlmSummaryWriter(settings.llm, settings.town)
        self._writing: set[str] = set()  # call ids whose summary the model is writing now
        self._pool: ThreadPoolExecutor | None = None

    def record(self, call_id: str) -> Record | None:
        return self._console.records.get(call_id)

    def sources(self) -> SourceLookup:
        """Chunk id → page title and URL, from the search index: read on first use, and again (at most every
        :data:`SOURCES_RELOAD_S`) when an answer cites a page it does not know (a re-ingest while serving)."""
        if self._sources_loaded_at is None:
            self._load_sources()
        return self._lookup

    def _load_sources(self) -> None:
        self._sources_loaded_at = time.monotonic()
        self._sources = load_source_lookup(self._console.settings.paths.index_dir)

    def _lookup(self, source_id: str) -> SourceRef | None:
        found = self._sources(source_id) if self._sources is not None else None
        loaded_at = self._sources_loaded_at or 0.0
        if found is None and time.monotonic() - loaded_at > SOURCES_RELOAD_S:
            self._load_sources()
            found = self._sources(source_id) if self._sources is not None else None
        return found

    def updated(self, call_ids: Sequence[str]) -> dict[str, float]:
        if not call_ids:
            return {}
        query = select(rows.CALLS.c.call_id, rows.CALLS.c.updated_at).where(
            rows.CALLS.c.call_id.in_(list(call_ids))
        )
        with self._console.engine.connect() as connection:
            return {row.call_id: float(row.updated_at) for row in connection.execute(query)}

    def summaries(self, entries: Sequence[QueueEntry]) -> dict[int, CallSummary | None]:
        stamps = self.updated([entry.call_id for entry in entries])
        found: dict[int, CallSummary | None] = {}
        for entry in entries:
            found[entry.id] = self.summary(entry.call_id, entry.caller_number, stamps.get(entry.call_id))
        return found

    def summary(self, call_id: str, caller_number: str, stamp: float | None = None) -> CallSummary | None:
        """The call's summary, from the cache while its record is unchanged. With an LLM configured the turn-built
        one is returned at once and the model's version replaces it when it has passed the check."""
        if stamp is None:
            stamp = self.updated([call_id]).get(call_id)
        with self._lock:
            cached = self._cache.get(call_id)
        if cached is not None and stamp is not None and cached[:2] == (stamp, caller_number):
            return cached[2]
        record = self.record(call_id)
        if record is None:
            return None
        built = summarize(record, sources=self.sources(), caller_number=caller_number)
        if stamp is not None:
            self._remember(call_id, (stamp, caller_number, built))
            if self._writer is not None:
                self._write_later(call_id, stamp, caller_number, record)
        return built

    def _remember(self, call_id: str, entry: tuple[float, str, CallSummary]) -> None:
        with self._lock:
            self._cache.pop(call_id, None)
            self._cache[call_id] = entry
            while len(self._cache) > SUMMARY_CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))

    def _write_later(self, call_id: str, stamp: float, caller_number: str, record: Record) -> None:
        with self._lock:
            if call_id in self._writing or len(self._writing) >= MAX_SUMMARIES_WRITING:
                return
            self._writing.add(call_id)
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staff-summary")
        self._pool.submit(self._write, call_id, stamp, caller_number, record)

    def _write(self, call_id: str, stamp: float, caller_number: str, record: Record) -> None:
        try:
            written = summarize(
                record, sources=self.sources(), caller_number=caller_number, writer=self._writer
            )
            if written.problems:
                logger.info(
                    f"staff summary of {call_id}: the model's text was not used ({'; '.join(written.problems)})"
                )
            if written.written_by != "llm":
                return
            with self._lock:
                current = self._cache.get(call_id)
            if current is not None and current[:2] == (
                stamp,
                caller_number,
            ):  # the record did not change meanwhile
                self._remember(call_id, (stamp, caller_number, written))
        except Exception:  # never kill the worker: the turn-built summary stays
            logger.exception(f"staff summary of {call_id}: writing failed")
        finally:
            with self._lock:
                self._writing.discard(call_id)


def load_source_lookup(index_dir: Any) -> SourceLookup | None:
    from knowledge.index import KnowledgeIndex

    try:
        index = KnowledgeIndex.open(index_dir)
    except Exception as error:  # no index (a console-only test, a fresh install): sources show their ids
        logger.info(f"staff console: no page titles for cited sources ({error!r})")
        return None
    by_id = {
        chunk.id: SourceRef(chunk.id, chunk.title or chunk.doc_id, chunk.source_url) for chunk in index.chunks
    }
    by_doc: dict[str, SourceRef] = {}
    for chunk in index.chunks:
        by_doc.setdefault(
            chunk.doc_id, SourceRef(chunk.doc_id, chunk.title or chunk.doc_id, chunk.source_url)
        )

    # An approved correction amending a page is cited as "<page>#<correction chunk>": shown by its own title
    # ("Korrektur vom …: <page title>", decision 0940), so a reviewer sees where the answer came from.
    corrections = {
        chunk.id: SourceRef(chunk.id, chunk.title or chunk.doc_id, chunk.source_url)
        for chunk in index.chunks
        if chunk.layer == "correction"
    }

    def lookup(source_id: str) -> SourceRef | None:
        page, _, part = source_id.partition("#")
        return by_id.get(source_id) or corrections.get(part) or by_doc.get(page)

    return lookup


# --- rendering ------------------------------------------------------------------------------------------------


def _link(ref: SourceRef) -> str:
    if ref.url.startswith(("https://", "http://")):
        return f'<a href="{esc(ref.url)}">{esc(ref.title)}</a>'
    return esc(ref.title)


def render_summary(summary: CallSummary | None, heading_id: str, level: int = 2) -> str:
    """The summary as a description list under a heading of ``level`` (``heading_id`` names it)."""
    heading = f'<h{level} id="{heading_id}">Zusammenfassung</h{level}>'
    if summary is None:
        return f"{heading}\n<p>Zu diesem Anruf ist kein Gesprächsverlauf gespeichert.</p>"
    if summary.answered:
        items = []
        for item in summary.answered:
            sources = ", ".join(_link(ref) for ref in item.sources)
            question = (
                f'<span class="frage">Frage: „{esc(item.question)}“</span><br>' if item.question else ""
            )
            cited = f'<br><span class="quellen">Quellen: {sources}</span>' if sources else ""
            items.append(f"<li>{question}Antwort: {esc(item.answer)}{cited}</li>")
        answered = "<ul>" + "".join(items) + "</ul>"
    else:
        answered = "Noch nichts."
    still_open = f"„{esc(summary.open_question)}“ – " if summary.open_question else ""
    number = esc(summary.caller_number) if summary.caller_number else "nicht übermittelt"
    written = (
        '<br><span class="hilfe">Vom Sprachmodell zusammengefasst und mit dem Gespräch abgeglichen.</span>'
        if summary.written_by == "llm"
        else ""
    )
    return f"""{heading}
<dl class="zusammenfassung">
  <dt>Anliegen</dt><dd>{esc(summary.request)}{written}</dd>
  <dt>Bereits beantwortet</dt><dd>{answered}</dd>
  <dt>Noch offen</dt><dd>{still_open}{esc(summary.reason_text)}</dd>
  <dt>Rufnummer</dt><dd>{number}</dd>
</dl>"""


def render_transcript(record: Record | None, heading_id: str, level: int = 2) -> str:
    if record is None:
        return ""
    lines = []
    for turn in record.get("turns") or []:
        if not isinstance(turn, dict):
            continue
        text = " ".join(str(turn.get("text") or "").split())
        if not text:
            continue
        caller = turn.get("role") == "caller"
        who = "Anrufer/in" if caller else "Bot"
        if caller and turn.get("kind") == "dtmf":
            text = f"Taste {text} gedrückt"
        start = turn.get("start_s")
        at = clock(float(start)) if isinstance(start, int | float) else ""
        lines.append(
            f'<li class="{"anrufer" if caller else "bot"}"><span class="wer">{who}</span> '
            f'<span class="zeit">{at}</span> {esc(text)}</li>'
        )
    body = '<ol class="verlauf">' + "".join(lines) + "</ol>" if lines else "<p>Keine Gesprächsbeiträge.</p>"
    return f'<h{level} id="{heading_id}">Gesprächsverlauf</h{level}>\n{body}'


class QueueView:
    """The live queue of one member of staff: the entries of their groups with position and summary."""

    def __init__(self, console: Console, book: SummaryBook) -> None:
        self.console = console
        self.book = book
        self.zone = ZoneInfo(console.settings.http.console_timezone)

    def when(self, epoch: float | None) -> str:
        """A moment in the console's time zone, e.g. "Di. 01.12.2026, 14:30 Uhr" ("" for None)."""
        if epoch is None:
            return ""
        moment = datetime.fromtimestamp(epoch, self.zone)
        return f"{WEEKDAYS[moment.weekday()]} {moment:%d.%m.%Y, %H:%M} Uhr"

    def entries(self, user: StaffUser) -> list[QueueEntry]:
        limit = self.console.settings.http.console_max_entries
        return list(self.console.repository.live_queue(user.groups, limit=limit))

    def fragment(self, user: StaffUser, csrf: str) -> tuple[str, str, int]:
        """(HTML of the queue list, a signature that changes when anything but the clock changes, how many
        wait)."""
        entries = self.entries(user)
        summaries = self.book.summaries(entries)
        positions: dict[str, int] = {}
        now = time.time()
        items = []
        signature: list[object] = []
        names: dict[int, str] = {}
        for entry in entries:
            position = 0
            if entry.status == QueueStatus.WAITING.value:
                positions[entry.group_name] = positions.get(entry.group_name, 0) + 1
                position = positions[entry.group_name]
            summary = summaries.get(entry.id)
            browser = self.console.browser_accept
            in_browser = browser is not None and browser.holds(entry)  # this process holds the caller
            signature.append(
                (
                    entry.id,
                    entry.status,
                    position,
                    entry.offered_to,
                    bool(user.phone_uri),
                    in_browser,
                    summary,
                )
            )
            heading = f"eintrag-{entry.id}-titel"
            place = f"Platz {position}" if position else "Wird verbunden"
            topic = summary.department if summary is not None and summary.department else ""
            group = esc(entry.group_name) + (
                f" ({esc(topic)})" if topic and topic != entry.group_name else ""
            )
            if entry.status == QueueStatus.OFFERED.value:
                if entry.offered_to not in names and entry.offered_to is not None:
                    other = self.console.repository.staff_user_by_id(entry.offered_to)
                    names[entry.offered_to] = (other.display_name or other.username) if other else "?"
                who = "Ihnen" if entry.offered_to == user.id else names.get(entry.offered_to or 0, "?")
                action = f'<p class="status">Wird verbunden mit {esc(who)}.</p>'
                if entry.offered_to == user.id:
                    action += f'<p><a href="/konsole/gespraech/{entry.id}">Zum Gespräch</a></p>'
            elif not user.phone_uri:
                action = "" if in_browser else f'<p class="hilfe">{esc(NO_PHONE)}</p>'
            else:
                action = f"""<form method="post" action="/konsole/annehmen">
  <input type="hidden" name="csrf" value="{csrf}">
  <input type="hidden" name="eintrag" value="{entry.id}">
  <p><button type="submit" id="annehmen-{entry.id}" aria-describedby="{heading}">Annehmen</button></p>
</form>"""
            if in_browser and entry.status == QueueStatus.WAITING.value:
                # Shown by browser_accept.js where the browser can do WebRTC with a microphone.
                action += (
                    f'<p class="im-browser-knopf"><button type="button" class="im-browser" '
                    f'id="im-browser-{entry.id}" data-eintrag="{entry.id}" aria-describedby="{heading}">'
                    "Im Browser annehmen</button></p>"
                )
            items.append(f"""<li class="eintrag" id="eintrag-{entry.id}" data-status="{esc(entry.status)}">
<h3 id="{heading}">{place} · {group}</h3>
<p class="kopf">Wartezeit: <span class="wartezeit" data-seit="{entry.enqueued_at:.3f}">{clock(now - entry.enqueued_at)}</span> Min. ·
Grund: {esc(summary.reason_text if summary is not None else entry.reason)}</p>
{render_summary(summary, f"eintrag-{entry.id}-zusammenfassung", level=4)}
{action}
</li>""")
        waiting = sum(1 for entry in entries if entry.status == QueueStatus.WAITING.value)
        if items:
            body = '<ol class="schlange">' + "\n".join(items) + "</ol>"
        else:
            body = "<p>Zurzeit wartet niemand.</p>"
        digest = hashlib.sha256(repr(signature).encode()).hexdigest()[:16]
        return body, digest, waiting

    def section(self, user: StaffUser, csrf: str) -> str:
        body, signature, waiting = self.fragment(user, csrf)
        poll_ms = int(self.console.settings.http.console_poll_s * 1000)
        return f"""<section aria-labelledby="warteschlange" id="warteschlange-bereich" data-poll-ms="{poll_ms}">
  <h2 id="warteschlange" tabindex="-1">Warteschlange</h2>
  <p id="warteschlange-status" role="status">{waiting_text(waiting)}</p>
  <div id="warteschlange-liste" data-signatur="{signature}">
{body}
  </div>
</section>
{self.browser_panel(csrf)}
<script src="/static/console.js" defer></script>"""

    def browser_panel(self, csrf: str) -> str:
        """The call in the browser (hidden until "Im Browser annehmen"): its state, "Auflegen", the caller's
        voice; nothing where this process holds no phone calls."""
        browser = self.console.browser_accept
        if browser is None or not browser.enabled:
            return ""
        return f"""<section aria-labelledby="im-browser-titel" id="im-browser" data-csrf="{csrf}" hidden>
  <h2 id="im-browser-titel" tabindex="-1">Gespräch im Browser</h2>
  <p id="im-browser-status" role="status" data-state="none"></p>
  <p><a id="im-browser-gespraech" href="/konsole" target="_blank" rel="noopener" hidden>Zusammenfassung und
     Gesprächsverlauf (öffnet einen neuen Tab)</a></p>
  <p><button type="button" id="im-browser-auflegen" hidden>Auflegen</button>
     <a id="im-browser-abschluss" href="/konsole" hidden>Abschluss eintragen</a></p>
  <audio id="im-browser-ton" autoplay></audio>
</section>
<script src="/static/browser_accept.js" defer></script>"""

    def open_wrap_ups(self, user: StaffUser) -> str:
        """Links to the calls this member of staff took and has not wrapped up yet (none: nothing)."""
        entries = self.console.repository.open_wrap_ups(user.id)
        if not entries:
            return ""
        items = "".join(
            f'<li><a href="/konsole/gespraech/{entry.id}">Gespräch {esc(self.when(entry.answered_at))} '
            f"({esc(entry.group_name)}): Abschluss eintragen</a></li>"
            for entry in entries
        )
        return f"""<section aria-labelledby="offen-titel">
  <h2 id="offen-titel">Ihre Gespräche ohne Abschluss</h2>
  <ul>{items}</ul>
</section>"""

    def callbacks_link(self, user: StaffUser) -> str:
        """The link to the call-backs page with how many are open and overdue."""
        now = time.time()
        pending = self.console.repository.callbacks_for(user.groups)
        overdue = sum(1 for callback in pending if callback.due_at < now)
        count = (
            f" ({len(pending)} offen, davon {overdue} überfällig)" if overdue else f" ({len(pending)} offen)"
        )
        return f'<p><a href="/konsole/rueckrufe">Rückrufe{count if pending else ""}</a></p>'


def waiting_text(count: int) -> str:
    if count == 0:
        return "Niemand wartet."
    return "1 anrufende Person wartet." if count == 1 else f"{count} anrufende Personen warten."


def search_form(value: str = "") -> str:
    return f"""<section aria-labelledby="suche-titel">
  <h2 id="suche-titel">Anruf suchen</h2>
  <form method="get" action="/konsole/suche" role="search">
    <p><label for="rufnummer">Rufnummer</label>
       <input id="rufnummer" name="rufnummer" type="text" inputmode="tel" autocomplete="off" maxlength="32"
              value="{esc(value)}" aria-describedby="rufnummer-hilfe">
       <span id="rufnummer-hilfe" class="hilfe">Mindestens drei Ziffern; findet die letzten Anrufe und Rückrufe.</span></p>
    <p><button type="submit" class="secondary">Suchen</button></p>
  </form>
</section>"""


def install_staff_queue(
    app: FastAPI,
    console: Console,
    checked_post: Callable[..., Any],
    page: Callable[[str, str], str],
    message_page: Callable[[str, str, int], HTMLResponse],
) -> QueueView:
    book = SummaryBook(console)
    view = QueueView(console, book)
    console.queue_view = view
    when = view.when

    def in_groups(user: StaffUser, group: str) -> bool:
        return user.groups is None or group in user.groups

    def notice_html(request: Request) -> str:
        text = NOTICES.get(request.query_params.get("hinweis", ""), "")
        return f'<p id="hinweis" role="status">{esc(text)}</p>'

    def entry_id_of(value: str) -> int:
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            raise _bad("Ungültige Eintragsnummer.")
        return int(value)

    def _bad(text: str, status: int = 400) -> Exception:
        from voicebot.web.console import _FormError

        return _FormError(status, text)

    @app.get("/konsole/warteschlange", include_in_schema=False)
    async def live_queue(request: Request) -> Response:
        user, session = console.require(request, "/konsole/warteschlange")
        body, signature, waiting = view.fragment(user, console.signer.csrf_token(session))
        return JSONResponse(
            {
                "now": time.time(),
                "signature": signature,
                "waiting": waiting,
                "status": waiting_text(waiting),
                "html": body,
            },
            headers=NO_STORE,
        )

    @app.post("/konsole/annehmen", include_in_schema=False)
    async def accept(request: Request) -> Response:
        user, _session, form = await checked_post(request, "/konsole/annehmen")
        entry_id = entry_id_of(form.get("eintrag", ""))
        entry = console.repository.queue_entry(entry_id)
        if entry is None:
            raise _bad("Diesen Eintrag gibt es nicht.", 404)
        if not in_groups(user, entry.group_name):
            raise _bad("Dieser Anruf gehört nicht zu Ihren Gruppen.", 403)
        if not user.phone_uri:  # the holding process would have nobody to ring
            raise _bad(NO_PHONE, 409)
        if not console.repository.offer(entry_id, user.id):
            return RedirectResponse("/konsole?hinweis=vergeben", status_code=303)
        from voicebot.staff.queue_notify import notify_queue

        try:
            notify_queue(console.engine, entry_id)
        except SQLAlchemyError as error:  # the offer stands; the holding process finds it on its next poll
            logger.warning(f"queue entry {entry_id}: notification failed ({error!r})")
        return RedirectResponse(f"/konsole/gespraech/{entry_id}", status_code=303)

    def own_entry(request: Request, path: str, raw_id: str) -> tuple[StaffUser, SessionToken, QueueEntry]:
        user, session = console.require(request, path)
        entry = console.repository.queue_entry(entry_id_of(raw_id))
        if entry is None:
            raise _bad("Diesen Eintrag gibt es nicht.", 404)
        from voicebot.web.console import SUPERVISORS

        # Whoever it is offered to or connected with, their group (the offer may have gone back to the queue) and
        # supervisors; the wrap-up itself only by whoever was connected (Repository.wrap_up).
        mine = user.id in (entry.offered_to, entry.staff_user_id)
        if not mine and not in_groups(user, entry.group_name) and user.role not in SUPERVISORS:
            raise _bad("Dieser Anruf gehört nicht zu Ihren Gruppen.", 403)
        return user, session, entry

    @app.get("/konsole/gespraech/{entry_id}/status", include_in_schema=False)
    async def call_status(request: Request, entry_id: str) -> Response:
        _user, _session, entry = own_entry(request, "/konsole/gespraech/{entry_id}/status", entry_id)
        return JSONResponse(
            {"status": entry.status, "outcome": entry.outcome, "offered_to": entry.offered_to},
            headers=NO_STORE,
        )

    @app.get("/konsole/gespraech/{entry_id}", include_in_schema=False)
    async def call_in_progress(request: Request, entry_id: str) -> Response:
        user, session, entry = own_entry(request, "/konsole/gespraech/{entry_id}", entry_id)
        csrf = console.signer.csrf_token(session)
        console.audit_view(user, entry.call_id)
        summary = book.summary(entry.call_id, entry.caller_number)
        record = book.record(entry.call_id)
        if entry.status == QueueStatus.OFFERED.value:
            phone = f" ({user.phone_uri})" if user.phone_uri else ""  # escaped with the sentence below
            state = f"Ihr Telefon{phone} klingelt – bitte nehmen Sie ab. Die anrufende Person wird verbunden."
        elif entry.status == QueueStatus.ANSWERED.value:
            state = "Im Gespräch. Nach dem Gespräch tragen Sie bitte unten den Abschluss ein."
        elif entry.status == QueueStatus.WAITING.value:
            state = "Nicht verbunden: Der Anruf wartet (wieder) in der Warteschlange und kann erneut angenommen werden."
        else:
            state = f"Der Anruf ist beendet ({STATUS_LABELS.get(entry.status, entry.status)})."
        wrap_up = ""
        if entry.status == QueueStatus.ANSWERED.value and entry.staff_user_id == user.id:
            if entry.outcome:
                wrap_up = f"""<section aria-labelledby="abschluss-titel">
  <h2 id="abschluss-titel">Abschluss</h2>
  <p>Ergebnis: <strong>{esc(OUTCOME_LABELS.get(entry.outcome, entry.outcome))}</strong></p>
  <p>Notiz: {esc(entry.wrap_up_note) or "–"}</p>
</section>"""
            else:
                options = "\n".join(
                    f'    <p class="option"><input type="radio" id="e-{value}" name="ergebnis" value="{value}"'
                    f'{" checked" if value == QueueOutcome.SOLVED.value else ""}> <label for="e-{value}">{label}</label></p>'
                    for value, label in OUTCOME_LABELS.items()
                )
                wrap_up = f"""<section aria-labelledby="abschluss-titel">
  <h2 id="abschluss-titel">Abschluss</h2>
  <form method="post" action="/konsole/abschluss">
    <input type="hidden" name="csrf" value="{csrf}">
    <input type="hidden" name="eintrag" value="{entry.id}">
    <fieldset>
      <legend>Ergebnis</legend>
{options}
    </fieldset>
    <p><label for="notiz">Notiz</label>
       <textarea id="notiz" name="notiz" rows="4" maxlength="{MAX_NOTE_CHARS}"></textarea></p>
    <p><button type="submit">Abschluss speichern</button></p>
  </form>
</section>"""
        body = f"""<h1>Gespräch</h1>
<p id="gespraech-status" role="status" data-status="{esc(entry.status)}" data-eintrag="{entry.id}">{esc(state)}</p>
<p>Gruppe: {esc(entry.group_name)} · Wartezeit bis zur Annahme:
   {clock((entry.offered_at or entry.answered_at or time.time()) - entry.enqueued_at)} Min.</p>
<section aria-labelledby="gespraech-zusammenfassung">
{render_summary(summary, "gespraech-zusammenfassung")}
</section>
<section aria-labelledby="gespraech-verlauf">
{render_transcript(record, "gespraech-verlauf")}
</section>
{wrap_up}
<p><a href="/konsole">Zurück zur Konsole</a></p>
<script src="/static/console.js" defer></script>"""
        return private_page(page("Gespräch – Konsole", body))

    @app.post("/konsole/abschluss", include_in_schema=False)
    async def wrap_up(request: Request) -> Response:
        user, _session, form = await checked_post(request, "/konsole/abschluss", max_bytes=NOTE_FORM_BYTES)
        entry_id = entry_id_of(form.get("eintrag", ""))
        outcome = form.get("ergebnis", "")
        if outcome not in OUTCOME_LABELS:
            raise _bad("Bitte wählen Sie ein Ergebnis (gelöst, Rückruf nötig oder weitergeleitet).")
        note = form.get("notiz", "").strip()
        if len(note) > MAX_NOTE_CHARS:
            raise _bad(f"Die Notiz ist zu lang (höchstens {MAX_NOTE_CHARS} Zeichen).")
        if not console.repository.wrap_up(entry_id, user.id, QueueOutcome(outcome), note):
            return message_page(
                "Nicht gespeichert",
                "Einen Abschluss kann nur eintragen, wer den Anruf angenommen hat und mit ihm verbunden war.",
                409,
            )
        return RedirectResponse("/konsole?hinweis=abgeschlossen", status_code=303)

    # --- call-backs ---------------------------------------------------------------------------------------

    @app.get("/konsole/rueckrufe", include_in_schema=False)
    async def callbacks(request: Request) -> Response:
        user, session = console.require(request, "/konsole/rueckrufe")
        csrf = console.signer.csrf_token(session)
        now = time.time()
        items = []
        names: dict[int, str] = {}
        for callback in console.repository.callbacks_for(user.groups):
            items.append(callback_item(callback, user, csrf, now, names))
        body_list = (
            '<ol class="rueckrufe">' + "\n".join(items) + "</ol>"
            if items
            else "<p>Keine offenen Rückrufe.</p>"
        )
        body = f"""<h1>Rückrufe</h1>
{notice_html(request)}
<p>Offene und übernommene Rückrufe Ihrer Gruppen, die am frühesten fälligen zuerst.</p>
{body_list}
<p><a href="/konsole">Zurück zur Konsole</a></p>"""
        return private_page(page("Rückrufe – Konsole", body))

    def callback_item(
        callback: Callback, user: StaffUser, csrf: str, now: float, names: dict[int, str]
    ) -> str:
        overdue = callback.due_at < now
        heading = f"rueckruf-{callback.id}-titel"
        due = (
            f'<strong class="ueberfaellig-text">Überfällig</strong> seit {when(callback.due_at)}'
            if overdue
            else f"Fällig bis {when(callback.due_at)}"
        )
        via = NUMBER_VIA.get(callback.number_via, "")
        if callback.status == CallbackStatus.OPEN.value:
            action = f"""<form method="post" action="/konsole/rueckrufe/uebernehmen">
  <input type="hidden" name="csrf" value="{csrf}">
  <input type="hidden" name="rueckruf" value="{callback.id}">
  <p><button type="submit" aria-describedby="{heading}">Übernehmen</button></p>
</form>"""
        elif callback.claimed_by == user.id:
            options = "\n".join(
                f'    <p class="option"><input type="radio" id="r{callback.id}-{value}" name="ergebnis" value="{value}">'
                f' <label for="r{callback.id}-{value}">{label}</label></p>'
                for value, label in CALLBACK_OUTCOMES.items()
            )
            action = f"""<form method="post" action="/konsole/rueckrufe/ergebnis">
  <input type="hidden" name="csrf" value="{csrf}">
  <input type="hidden" name="rueckruf" value="{callback.id}">
  <fieldset>
    <legend>Ergebnis des Rückrufs</legend>
{options}
  </fieldset>
  <p><label for="r{callback.id}-notiz">Notiz</label>
     <textarea id="r{callback.id}-notiz" name="notiz" rows="3" maxlength="{MAX_NOTE_CHARS}"></textarea></p>
  <p><button type="submit" aria-describedby="{heading}">Ergebnis speichern</button></p>
</form>"""
        else:
            if callback.claimed_by is not None and callback.claimed_by not in names:
                other = console.repository.staff_user_by_id(callback.claimed_by)
                names[callback.claimed_by] = (other.display_name or other.username) if other else "?"
            action = f"<p>Übernommen von {esc(names.get(callback.claimed_by or 0, '?'))}.</p>"
        name = esc(callback.caller_name) if callback.caller_name else "Name nicht genannt"
        return f"""<li class="rueckruf{" ueberfaellig" if overdue else ""}" id="rueckruf-{callback.id}">
<h2 id="{heading}">{"⚠ " if overdue else ""}{name} · {esc(callback.group_name)}</h2>
<p>{due}</p>
<p>Rufnummer: <strong>{esc(callback.phone_number)}</strong>{f" ({esc(via)})" if via else ""}</p>
<p>Thema: {esc(callback.topic) or "–"}</p>
<p><a href="/konsole/anruf/{esc(callback.call_id)}">Gesprächsverlauf ansehen</a></p>
{action}
</li>"""

    def callback_id_of(value: str) -> int:
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            raise _bad("Ungültige Rückrufnummer.")
        return int(value)

    @app.post("/konsole/rueckrufe/uebernehmen", include_in_schema=False)
    async def claim(request: Request) -> Response:
        user, _session, form = await checked_post(request, "/konsole/rueckrufe/uebernehmen")
        callback = console.repository.callback(callback_id_of(form.get("rueckruf", "")))
        if callback is None:
            raise _bad("Diesen Rückruf gibt es nicht.", 404)
        if not in_groups(user, callback.group_name):
            raise _bad("Dieser Rückruf gehört nicht zu Ihren Gruppen.", 403)
        claimed = console.repository.claim_callback(callback.id, user.id)
        hint = "uebernommen" if claimed else "vergeben-rueckruf"
        return RedirectResponse(f"/konsole/rueckrufe?hinweis={hint}#rueckruf-{callback.id}", status_code=303)

    @app.post("/konsole/rueckrufe/ergebnis", include_in_schema=False)
    async def callback_outcome(request: Request) -> Response:
        user, _session, form = await checked_post(
            request, "/konsole/rueckrufe/ergebnis", max_bytes=NOTE_FORM_BYTES
        )
        callback_id = callback_id_of(form.get("rueckruf", ""))
        outcome = form.get("ergebnis", "")
        if outcome not in CALLBACK_OUTCOMES:
            raise _bad("Bitte wählen Sie ein Ergebnis: erreicht oder nicht erreicht.")
        note = form.get("notiz", "").strip()
        if len(note) > MAX_NOTE_CHARS:
            raise _bad(f"Die Notiz ist zu lang (höchstens {MAX_NOTE_CHARS} Zeichen).")
        if not console.repository.finish_callback(callback_id, user.id, CallbackStatus(outcome), note):
            return message_page(
                "Nicht gespeichert", "Ein Ergebnis kann nur eintragen, wer den Rückruf übernommen hat.", 409
            )
        return RedirectResponse("/konsole/rueckrufe?hinweis=erledigt", status_code=303)

    # --- one call: the PBX hand-off link, search results ------------------------------------------------------

    @app.get("/konsole/anruf/{key}", include_in_schema=False)
    async def one_call(request: Request, key: str) -> Response:
        user, _session = console.require(request, "/konsole/anruf/{key}")
        entry: QueueEntry | None = None
        if is_call_id(key):
            call_id = key
            entries = console.repository.queue_entries_of(call_id)
            entry = entries[-1] if entries else None
        elif _REFERENCE.fullmatch(key):
            entry = console.repository.queue_entry_by_reference(key)
            if entry is None:
                raise _bad("Zu diesem Verweis ist kein Anruf gespeichert.", 404)
            call_id = entry.call_id
        else:
            raise _bad("Zu diesem Verweis ist kein Anruf gespeichert.", 404)
        record = book.record(call_id)
        if record is None and entry is None:
            raise _bad("Zu diesem Verweis ist kein Anruf gespeichert.", 404)
        console.audit_view(user, call_id)
        number = entry.caller_number if entry is not None else ""
        summary = book.summary(call_id, number)
        facts = [f"Beginn: {when(record.get('started_at'))}" if record and record.get("started_at") else ""]
        if entry is not None:
            facts.append(f"Gruppe: {esc(entry.group_name)}")
            facts.append(f"Stand: {esc(STATUS_LABELS.get(entry.status, entry.status))}")
            if entry.outcome:
                note = f" – {esc(entry.wrap_up_note)}" if entry.wrap_up_note else ""
                facts.append(f"Abschluss: {esc(OUTCOME_LABELS.get(entry.outcome, entry.outcome))}{note}")
        for callback in console.repository.callbacks_of(call_id):
            facts.append(
                f"Rückruf an {esc(callback.phone_number)}: "
                f"{esc(CALLBACK_STATUS_LABELS.get(callback.status, callback.status))}"
                + (f" – {esc(callback.outcome_note)}" if callback.outcome_note else "")
            )
        fact_list = "".join(f"<li>{fact}</li>" for fact in facts if fact)
        body = f"""<h1>Anruf</h1>
<ul class="fakten">{fact_list}</ul>
<section aria-labelledby="anruf-zusammenfassung">
{render_summary(summary, "anruf-zusammenfassung")}
</section>
<section aria-labelledby="anruf-verlauf">
{render_transcript(record, "anruf-verlauf")}
</section>
<p><a href="/konsole">Zur Konsole</a></p>"""
        return private_page(page("Anruf – Konsole", body))

    @app.get("/konsole/suche", include_in_schema=False)
    async def search(request: Request) -> Response:
        console.require(request, "/konsole/suche")
        raw = request.query_params.get("rufnummer", "").strip()
        digits = "".join(c for c in raw if c.isascii() and c.isdigit())
        if not _NUMBER_QUERY.fullmatch(raw) or len(digits) < 3:
            body = f"""<h1>Anruf suchen</h1>
<div id="fehler" class="error" role="alert"><p>Bitte geben Sie eine Rufnummer mit mindestens drei Ziffern ein
(Ziffern, Leerzeichen, +, -, / und Klammern).</p></div>
{search_form(raw[:32])}
<p><a href="/konsole">Zurück zur Konsole</a></p>"""
            return private_page(page("Anruf suchen – Konsole", body), status_code=400)
        # A national number (030 …) also finds the international form (+4930 …) and back: the part after the
        # trunk prefix is searched.
        fragment = digits[1:] if digits.startswith("0") and not digits.startswith("00") else digits
        fragment = fragment[2:] if digits.startswith("00") else fragment
        fragment = fragment.lstrip("0") or fragment
        rows_html = []
        for entry in console.repository.entries_by_number(fragment):
            rows_html.append(
                f"<tr><td>{esc(when(entry.enqueued_at))}</td><td>{esc(entry.caller_number)}</td>"
                f"<td>Übergabe an {esc(entry.group_name)} ({esc(STATUS_LABELS.get(entry.status, entry.status))})</td>"
                f'<td><a href="/konsole/anruf/{esc(entry.call_id)}">Anzeigen</a></td></tr>'
            )
        for callback in console.repository.callbacks_by_number(fragment):
            rows_html.append(
                f"<tr><td>{esc(when(callback.created_at))}</td><td>{esc(callback.phone_number)}</td>"
                f"<td>Rückrufwunsch ({esc(CALLBACK_STATUS_LABELS.get(callback.status, callback.status))})</td>"
                f'<td><a href="/konsole/anruf/{esc(callback.call_id)}">Anzeigen</a></td></tr>'
            )
        if rows_html:
            result = f"""<table>
  <caption>Anrufe mit der Rufnummer {esc(raw)}</caption>
  <thead><tr><th scope="col">Zeit</th><th scope="col">Rufnummer</th><th scope="col">Was</th><th scope="col">Verlauf</th></tr></thead>
  <tbody>{"".join(rows_html)}</tbody>
</table>"""
        else:
            result = f'<p role="status">Keine Anrufe mit der Rufnummer {esc(raw)} gefunden.</p>'
        body = f"""<h1>Anruf suchen</h1>
{search_form(raw)}
{result}
<p><a href="/konsole">Zurück zur Konsole</a></p>"""
        return private_page(page("Anruf suchen – Konsole", body))

    return view
