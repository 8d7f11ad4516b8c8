"""Corrections in the console (issue 11, decision 0940): the form under each bot turn of a call's timeline
(``/konsole/anrufe/{call_id}``) stores a draft; ``/konsole/korrekturen`` lists drafts, applied and taken-back
corrections, where a second supervisor or administrator approves (applies) or rejects a draft and takes an applied
one back. The work itself is :mod:`voicebot.staff.corrections`; the index is written in a worker thread.

Supervisors and administrators only (:data:`voicebot.web.console.ACCESS`); every form carries the session's CSRF
token; server-rendered German HTML, no script (``<details>`` opens the form with the keyboard).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from loguru import logger
from starlette.concurrency import run_in_threadpool

from voicebot.records import is_call_id
from voicebot.staff import corrections
from voicebot.web.staff_queue import esc, private_page

if TYPE_CHECKING:
    from voicebot.web.console import Console

MAX_FORM_BYTES = 16384  # the text (2,000 characters, umlauts percent-encoded) and the page


def caller_words(turns: list[Any], index: int) -> str:
    """What the caller said before the bot turn ``index`` (their last spoken words, not keys)."""
    for turn in reversed(turns[:index]):
        if isinstance(turn, dict) and turn.get("role") == "caller" and turn.get("kind") != "dtmf":
            return " ".join(str(turn.get("text") or "").split())
    return ""


def cited_page(turn: Mapping[str, Any]) -> str:
    sources = turn.get("sources")
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, str) and source:
            return source.split("#", 1)[0]
    return ""


def turn_form(call_id: str, index: int, turn: Mapping[str, Any], csrf: str, titles: Mapping[str, str]) -> str:
    """The correction form under one bot turn."""
    if not titles:
        return '<p class="hilfe">Korrigieren geht erst, wenn Wissen geladen ist.</p>'
    cited = cited_page(turn)
    options = "".join(
        f'<option value="{esc(page)}"{" selected" if page == cited else ""}>{esc(title)}</option>'
        for page, title in titles.items()
    )
    base = f"k{index}"
    return f"""<details class="korrektur"><summary>Antwort korrigieren</summary>
<form method="post" action="/konsole/anrufe/{esc(call_id)}/korrektur">
  <input type="hidden" name="csrf" value="{esc(csrf)}">
  <input type="hidden" name="beitrag" value="{index}">
  <fieldset><legend>Art der Korrektur</legend>
    <p class="option"><input id="{base}-falsch" type="radio" name="art" value="wrong" checked>
       <label for="{base}-falsch">Antwort falsch (richtige Antwort eingeben)</label></p>
    <p class="option"><input id="{base}-fehlt" type="radio" name="art" value="missing">
       <label for="{base}-fehlt">Fehlende Information (ergänzt die Seite)</label></p>
  </fieldset>
  <p><label for="{base}-seite">Seite im Wissen</label>
     <select id="{base}-seite" name="seite" required>{options}</select></p>
  <p><label for="{base}-text">Richtige Antwort oder fehlende Information</label>
     <textarea id="{base}-text" name="text" rows="3" maxlength="{corrections.MAX_TEXT_CHARS}" required></textarea></p>
  <p><button type="submit">Als Entwurf speichern</button>
     <span class="hilfe">Eine zweite Person gibt die Korrektur frei.</span></p>
</form></details>"""


def install_staff_corrections(
    app: FastAPI,
    console: Console,
    checked_post: Callable[..., Any],
    page: Callable[[str, str], str],
) -> None:
    settings = console.settings
    zone = ZoneInfo(settings.http.console_timezone)

    def when(epoch: float | None) -> str:
        return "–" if epoch is None else f"{datetime.fromtimestamp(epoch, zone):%d.%m.%Y %H:%M}"

    def message(title: str, text: str, status: int) -> Response:
        body = (
            f'<h1>{esc(title)}</h1>\n<p role="alert" id="fehler">{esc(text)}</p>\n'
            '<p><a href="/konsole/korrekturen">Zu den Korrekturen</a></p>'
        )
        return private_page(page(f"{title} – Konsole", body), status_code=status)

    def correction_id(form: Mapping[str, str]) -> int | None:
        value = form.get("korrektur", "")
        return int(value) if value.isdigit() and len(value) < 12 else None

    @app.post("/konsole/anrufe/{call_id}/korrektur", include_in_schema=False)
    async def draft(request: Request, call_id: str) -> Response:
        user, _session, form = await checked_post(
            request, "/konsole/anrufe/{call_id}/korrektur", MAX_FORM_BYTES
        )
        record = await run_in_threadpool(console.records.get, call_id) if is_call_id(call_id) else None
        turns = record.get("turns") if isinstance(record, dict) else None
        index = form.get("beitrag", "")
        if not isinstance(turns, list) or not index.isdigit() or int(index) >= len(turns):
            return message("Beitrag nicht gefunden", "Diesen Anruf oder Beitrag gibt es nicht (mehr).", 404)
        turn = turns[int(index)]
        if not isinstance(turn, dict) or turn.get("role") != "bot":
            return message("Kein Bot-Beitrag", "Korrigiert werden nur Antworten des Bots.", 400)
        titles = await asyncio.to_thread(page_choices, console)
        page_id = form.get("seite", "")
        if page_id not in titles:
            return message(
                "Seite unbekannt", "Diese Seite gibt es im Wissen nicht: bitte aus der Liste wählen.", 400
            )
        try:
            new_id = await run_in_threadpool(
                lambda: corrections.create_draft(
                    console.engine,
                    call_id=call_id,
                    turn_index=int(index),
                    kind=form.get("art", ""),
                    page_id=page_id,
                    question=caller_words(turns, int(index)),
                    text=form.get("text", ""),
                    author=user.username,
                )
            )
        except corrections.CorrectionError as error:
            return message("Korrektur nicht gespeichert", str(error), 400)
        return RedirectResponse(f"/konsole/korrekturen?{urlencode({'neu': new_id})}", status_code=303)

    def row_html(row: corrections.CorrectionRow, csrf: str, username: str, titles: Mapping[str, str]) -> str:
        actions = ""
        hidden = f'<input type="hidden" name="csrf" value="{esc(csrf)}"><input type="hidden" name="korrektur" value="{row.id}">'  # fmt: skip
        if row.status == "draft" and row.created_by != username:
            actions = f"""<form method="post" action="/konsole/korrekturen/entscheiden">{hidden}
  <input type="hidden" name="entscheidung" value="freigeben">
  <p><button type="submit">Freigeben und anwenden</button></p></form>
<form method="post" action="/konsole/korrekturen/entscheiden">{hidden}
  <input type="hidden" name="entscheidung" value="ablehnen">
  <p><label for="grund-{row.id}">Begründung der Ablehnung</label>
     <input id="grund-{row.id}" name="begruendung" type="text" maxlength="{corrections.MAX_REASON_CHARS}" required>
     <button type="submit" class="secondary">Ablehnen</button></p></form>"""
        elif row.status == "draft":
            actions = '<p class="hilfe">Ihr eigener Entwurf: eine zweite Person gibt ihn frei.</p>'
        elif row.status == "approved":
            actions = f"""<form method="post" action="/konsole/korrekturen/zuruecknehmen">{hidden}
  <p><label for="zurueck-{row.id}">Begründung der Rücknahme</label>
     <input id="zurueck-{row.id}" name="begruendung" type="text" maxlength="{corrections.MAX_REASON_CHARS}" required>
     <button type="submit" class="secondary">Zurücknehmen</button></p></form>"""
        decided = (
            f"<dt>Entschieden</dt><dd>{esc(row.decided_by)}, {when(row.decided_at)}</dd>"
            if row.decided_by
            else ""
        )
        reason = f"<dt>Begründung</dt><dd>{esc(row.reason)}</dd>" if row.reason else ""
        applied = (
            f"<dt>Angewandt</dt><dd>Seite {esc(row.page_name)}, Index-Stand {row.applied_generation}</dd>"
            if row.status == "approved"
            else ""
        )
        return f"""<li id="korrektur-{row.id}"><h3>Korrektur {row.id}: {esc(corrections.KINDS.get(row.kind, row.kind))}
  – {esc(corrections.STATUSES.get(row.status, row.status))}</h3>
<dl class="zusammenfassung">
  <dt>Frage der anrufenden Person</dt><dd>„{esc(row.question) or "–"}“</dd>
  <dt>Seite</dt><dd>{esc(titles.get(row.page_id, row.page_id))} <span class="hilfe">({esc(row.page_id)})</span></dd>
  <dt>Korrektur</dt><dd>{esc(row.text)}</dd>
  <dt>Verfasst</dt><dd>{esc(row.created_by)}, {when(row.created_at)}</dd>
  <dt>Aus dem Anruf</dt><dd><a href="/konsole/anrufe/{esc(row.call_id)}">Verlauf ansehen</a> (Beitrag {row.turn_index + 1})</dd>
  {decided}{reason}{applied}
</dl>
{actions}</li>"""

    @app.get("/konsole/korrekturen", include_in_schema=False)
    async def corrections_page(request: Request) -> Response:
        user, session = console.require(request, "/konsole/korrekturen")
        status = request.query_params.get("status", "")
        if status and status not in corrections.STATUSES:
            return message(
                "Unbekannter Status", "Diesen Status gibt es nicht: bitte aus der Liste wählen.", 400
            )
        rows = await run_in_threadpool(corrections.list_corrections, console.engine, status or None)
        titles = await asyncio.to_thread(page_choices, console) if rows else {}
        csrf = console.signer.csrf_token(session)
        notice = ""
        if request.query_params.get("neu", "").isdigit():
            notice = f'<p role="status" id="hinweis">Entwurf {esc(request.query_params["neu"])} gespeichert: eine zweite Person gibt ihn frei.</p>'  # fmt: skip
        elif request.query_params.get("erledigt", "").isdigit():
            notice = f'<p role="status" id="hinweis">Korrektur {esc(request.query_params["erledigt"])}: erledigt.</p>'  # fmt: skip
        choices = "".join(
            f'<option value="{value}"{" selected" if value == status else ""}>{esc(label)}</option>'
            for value, label in corrections.STATUSES.items()
        )
        listed = (
            '<ol class="korrekturen">'
            + "\n".join(row_html(row, csrf, user.username, titles) for row in rows)
            + "</ol>"
            if rows
            else '<p id="keine">Keine Korrekturen.</p>'
        )
        body = f"""<h1>Korrekturen</h1>
<p>Korrekturen an Antworten des Bots. Ein Entwurf wird erst wirksam, wenn eine zweite Person ihn freigibt; dann
gilt er ab dem nächsten Anruf. Jeder Schritt steht im Protokoll.</p>
{notice}
<form method="get" action="/konsole/korrekturen" class="filter">
  <p><label for="status">Status</label>
     <select id="status" name="status"><option value="">alle</option>{choices}</select>
     <button type="submit">Anzeigen</button></p>
</form>
{listed}
<p><a href="/konsole">Zurück zur Konsole</a></p>"""
        return private_page(page("Korrekturen – Konsole", body))

    @app.post("/konsole/korrekturen/entscheiden", include_in_schema=False)
    async def decide(request: Request) -> Response:
        user, _session, form = await checked_post(request, "/konsole/korrekturen/entscheiden")
        chosen = correction_id(form)
        if chosen is None:
            return message("Korrektur unbekannt", "Diese Korrektur gibt es nicht.", 404)
        try:
            if form.get("entscheidung") == "freigeben":
                await asyncio.to_thread(
                    corrections.approve,
                    console.engine,
                    chosen,
                    user.username,
                    corrections_dir=settings.paths.corrections_dir,
                    index_dir=settings.paths.index_dir,
                    zone=zone,
                )
            elif form.get("entscheidung") == "ablehnen":
                await run_in_threadpool(
                    corrections.reject, console.engine, chosen, user.username, form.get("begruendung", "")
                )
            else:
                return message("Entscheidung fehlt", "Bitte „Freigeben“ oder „Ablehnen“ wählen.", 400)
        except corrections.NotAllowed as error:
            return message("Nicht erlaubt", str(error), 403)
        except corrections.InvalidInput as error:
            return message("Angabe fehlt", str(error), 400)
        except corrections.CorrectionError as error:
            return message("Nicht möglich", str(error), 409)
        logger.info(f"correction {chosen}: {form.get('entscheidung')} by {user.username}")
        return RedirectResponse(f"/konsole/korrekturen?erledigt={chosen}", status_code=303)

    @app.post("/konsole/korrekturen/zuruecknehmen", include_in_schema=False)
    async def take_back(request: Request) -> Response:
        user, _session, form = await checked_post(request, "/konsole/korrekturen/zuruecknehmen")
        chosen = correction_id(form)
        if chosen is None:
            return message("Korrektur unbekannt", "Diese Korrektur gibt es nicht.", 404)
        try:
            await asyncio.to_thread(
                corrections.revert,
                console.engine,
                chosen,
                user.username,
                form.get("begruendung", ""),
                index_dir=settings.paths.index_dir,
            )
        except corrections.InvalidInput as error:
            return message("Angabe fehlt", str(error), 400)
        except corrections.CorrectionError as error:
            return message("Nicht möglich", str(error), 409)
        logger.info(f"correction {chosen}: reverted by {user.username}")
        return RedirectResponse(f"/konsole/korrekturen?erledigt={chosen}", status_code=303)


_choices_lock = threading.Lock()
_choices: dict[str, tuple[int | None, dict[str, str]]] = {}  # index dir → (generation, page titles)


def page_choices(console: Console) -> dict[str, str]:
    """The pages a correction may name, read again only when the index has a new generation."""
    from knowledge.index import index_generation

    index_dir = console.settings.paths.index_dir
    generation = index_generation(index_dir)
    with _choices_lock:
        known = _choices.get(str(index_dir))
        if known is not None and known[0] == generation and generation is not None:
            return known[1]
    try:
        titles = corrections.page_titles(index_dir)
    except Exception as error:  # no index: nothing to correct against
        logger.info(f"corrections: no pages to choose ({error!r})")
        return {}
    with _choices_lock:
        _choices[str(index_dir)] = (generation, titles)
    return titles
