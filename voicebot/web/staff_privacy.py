"""The administrators' data-protection pages (issue 11): a caller's data by number — found, exported as JSON
(GDPR Art. 15), deleted after a confirmation (Art. 17) — and the audit log (``/konsole/protokoll``).

The number travels only in POST bodies (never in a URL, where access logs and the browser history would keep it);
every form carries the session's CSRF token. Every export and deletion is written to the audit log with the
administrator's name and the masked number (decision 0922).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from voicebot.db.models import StaffUser
from voicebot.privacy import data
from voicebot.web.staff_queue import NO_STORE, esc, private_page

if TYPE_CHECKING:
    from voicebot.web.console import Console

# What a deletion or a retention run counted, in the words of the page.
COUNT_LABELS = {
    "calls": "Anrufe",
    "turns": "Gesprächsbeiträge",
    "events": "Ereignisse",
    "queue_entries": "Warteschlangen-Einträge",
    "callbacks": "Rückrufwünsche",
    "json_files": "Ersatzdateien",
    "audit_entries": "Protokolleinträge",
    "recordings": "Aufnahmen",
}
ACTION_LABELS = {
    "view_transcript": "Gesprächsverlauf geöffnet",
    "play_recording": "Tonaufnahme abgespielt",
    "export": "Daten exportiert",
    "delete": "Daten gelöscht",
    "retention": "Löschfristen angewandt",
    "correction_draft": "Korrektur entworfen",
    "correction_approve": "Korrektur freigegeben und angewandt",
    "correction_reject": "Korrektur abgelehnt",
    "correction_revert": "Korrektur zurückgenommen",
}
AUDIT_PAGE_ROWS = 200
ZONE = ZoneInfo("Europe/Berlin")


def counts_text(counts: dict[str, Any]) -> str:
    parts = [f"{count} {COUNT_LABELS.get(name, name)}" for name, count in counts.items() if count]
    return ", ".join(parts) or "nichts"


def audit_actor(user: StaffUser) -> str:
    return f"console:{user.username}"


def install_staff_privacy(
    app: FastAPI,
    console: Console,
    checked_post: Callable[..., Any],
    page: Callable[[str, str], str],
) -> None:
    def search_form(csrf: str, entered: str = "", error: str = "") -> str:
        error_html = (
            f'<div id="nummer-fehler" class="error" role="alert"><p>{esc(error)}</p></div>' if error else ""
        )
        described = "nummer-hilfe nummer-fehler" if error else "nummer-hilfe"
        invalid = ' aria-invalid="true"' if error else ""
        return f"""{error_html}
<form method="post" action="/konsole/datenschutz">
  <input type="hidden" name="csrf" value="{csrf}">
  <p><label for="rufnummer">Rufnummer der anfragenden Person</label>
     <input id="rufnummer" name="rufnummer" type="tel" autocomplete="off" maxlength="{data.MAX_NUMBER_CHARS}"
            value="{esc(entered)}" aria-describedby="{described}"{invalid} required>
     <span id="nummer-hilfe" class="hilfe">Mit Vorwahl, z. B. 0171 2345678 oder +49 171 2345678.</span></p>
  <p><button type="submit">Gespeicherte Daten suchen</button></p>
</form>"""

    def privacy_page(body: str, status: int = 200) -> HTMLResponse:
        full = f"""<h1>Datenschutz: Auskunft und Löschung</h1>
<p>Auskunft (Art. 15 DSGVO) und Löschung (Art. 17 DSGVO) aller Anrufe, Rückrufwünsche und
   Warteschlangen-Einträge zu einer Rufnummer. Jede Auskunft und jede Löschung wird protokolliert.</p>
{body}
<p><a href="/konsole/protokoll">Protokoll ansehen</a> · <a href="/konsole">Zurück zur Konsole</a></p>"""
        return private_page(page("Datenschutz – Konsole", full), status_code=status)

    def number_or_page(form: dict[str, str], csrf: str) -> str | HTMLResponse:
        entered = form.get("rufnummer", "")[: data.MAX_NUMBER_CHARS + 10]
        try:
            return data.normalise_number(entered)
        except data.NumberError as error:
            return privacy_page(search_form(csrf, entered, str(error)), status=400)

    def hidden(csrf: str, number: str) -> str:
        return (
            f'<input type="hidden" name="csrf" value="{csrf}">'
            f'<input type="hidden" name="rufnummer" value="{esc(number)}">'
        )

    @app.get("/konsole/datenschutz", include_in_schema=False)
    async def privacy_home(request: Request) -> Response:
        _user, session = console.require(request, "/konsole/datenschutz")
        done = request.query_params.get("geloescht", "")
        notice = (
            '<p id="hinweis" role="status">Gelöscht. Die Löschung steht im Protokoll.</p>'
            if done == "1"
            else '<p id="hinweis" role="status"></p>'
        )
        return privacy_page(notice + search_form(console.signer.csrf_token(session)))

    @app.post("/konsole/datenschutz", include_in_schema=False)
    async def privacy_search(request: Request) -> Response:
        _user, session, form = await checked_post(request, "/konsole/datenschutz")
        csrf = console.signer.csrf_token(session)
        number = number_or_page(form, csrf)
        if isinstance(number, HTMLResponse):
            return number
        found = data.erase(
            console.engine,
            number,
            console.settings.paths.calls_dir,
            dry_run=True,
            recordings_dir=console.settings.paths.recordings_dir,
        )
        if found.total == 0:
            result = f'<p id="ergebnis" role="status">Zur Rufnummer {esc(number)} ist nichts gespeichert.</p>'
        else:
            result = f"""<section aria-labelledby="ergebnis-titel">
  <h2 id="ergebnis-titel">Gespeichert zur Rufnummer {esc(number)}</h2>
  <p id="ergebnis" role="status">{esc(counts_text(found.counts()))}</p>
  <form method="post" action="/konsole/datenschutz/export">
    {hidden(csrf, number)}
    <p><button type="submit">Als JSON herunterladen (Auskunft)</button></p>
  </form>
  <form method="post" action="/konsole/datenschutz/loeschen">
    {hidden(csrf, number)}
    <p><button type="submit" class="secondary">Löschen …</button>
       <span class="hilfe">Sie werden vor dem Löschen noch einmal gefragt.</span></p>
  </form>
</section>"""
        return privacy_page(search_form(csrf, number) + result)

    @app.post("/konsole/datenschutz/export", include_in_schema=False)
    async def privacy_export(request: Request) -> Response:
        user, session, form = await checked_post(request, "/konsole/datenschutz/export")
        number = number_or_page(form, console.signer.csrf_token(session))
        if isinstance(number, HTMLResponse):
            return number
        document = data.export(console.engine, number, now=time.time())
        counts = {name: len(document[name]) for name in ("calls", "callbacks", "queue_entries")}
        data.audit(console.engine, audit_actor(user), "export", data.masked(number), counts)
        name = f"auskunft-{number}-{datetime.now(ZONE):%Y-%m-%d}.json"
        return Response(
            json.dumps(document, ensure_ascii=False, indent=1),
            media_type="application/json; charset=utf-8",
            headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.post("/konsole/datenschutz/loeschen", include_in_schema=False)
    async def privacy_delete(request: Request) -> Response:
        user, session, form = await checked_post(request, "/konsole/datenschutz/loeschen")
        csrf = console.signer.csrf_token(session)
        number = number_or_page(form, csrf)
        if isinstance(number, HTMLResponse):
            return number
        calls_dir = console.settings.paths.calls_dir
        recordings_dir = console.settings.paths.recordings_dir
        if form.get("bestaetigt") != "ja":
            found = data.erase(console.engine, number, calls_dir, dry_run=True, recordings_dir=recordings_dir)
            body = f"""<section aria-labelledby="bestaetigen-titel">
  <h2 id="bestaetigen-titel">Wirklich löschen?</h2>
  <p id="ergebnis" role="alert">Zur Rufnummer {esc(number)} werden endgültig gelöscht:
     {esc(counts_text(found.counts()))}. Offene Rückrufwünsche werden ebenfalls gelöscht.</p>
  <form method="post" action="/konsole/datenschutz/loeschen">
    {hidden(csrf, number)}
    <input type="hidden" name="bestaetigt" value="ja">
    <p><button type="submit">Endgültig löschen</button>
       <a href="/konsole/datenschutz">Abbrechen</a></p>
  </form>
</section>"""
            return privacy_page(body)
        deleted = data.erase(console.engine, number, calls_dir, recordings_dir=recordings_dir)
        data.audit(console.engine, audit_actor(user), "delete", data.masked(number), deleted.counts())
        return privacy_page(
            f'<p id="hinweis" role="status">Gelöscht zur Rufnummer {esc(number)}: '
            f"{esc(counts_text(deleted.counts()))}. Die Löschung steht im Protokoll.</p>" + search_form(csrf)
        )

    @app.get("/konsole/protokoll", include_in_schema=False)
    async def audit_log(request: Request) -> Response:
        console.require(request, "/konsole/protokoll")
        entries = data.audit_entries(console.engine, limit=AUDIT_PAGE_ROWS)
        if entries:
            rows_html = "".join(
                f"<tr><td>{esc(datetime.fromtimestamp(entry.at, ZONE).strftime('%d.%m.%Y, %H:%M:%S'))}</td>"
                f"<td>{esc(entry.actor.removeprefix('console:'))}</td>"
                f"<td>{esc(ACTION_LABELS.get(entry.action, entry.action))}</td>"
                f"<td>{esc(entry.subject)}</td><td>{esc(counts_text(entry.details or {}))}</td></tr>"
                for entry in entries
            )
            table = f"""<table id="protokoll">
  <caption>Die letzten {len(entries)} Einträge, die neuesten zuerst</caption>
  <thead><tr><th scope="col">Zeit</th><th scope="col">Wer</th><th scope="col">Was</th>
    <th scope="col">Betroffen</th><th scope="col">Umfang</th></tr></thead>
  <tbody>{rows_html}</tbody>
</table>"""
        else:
            table = '<p role="status">Noch keine Einträge.</p>'
        body = f"""<h1>Datenschutz-Protokoll</h1>
<p>Wer welchen Gesprächsverlauf geöffnet, wer Daten exportiert oder gelöscht hat, und was die Löschfristen
   entfernt haben. Rufnummern stehen hier nur gekürzt. Aufbewahrt {console.settings.privacy.audit_days} Tage.</p>
{table}
<p><a href="/konsole/datenschutz">Auskunft und Löschung</a> · <a href="/konsole">Zurück zur Konsole</a></p>"""
        return private_page(page("Protokoll – Konsole", body))
