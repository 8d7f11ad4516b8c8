"""Transcript review for supervisors (issue 11; decisions 0930–0932): ``/konsole/anrufe`` lists the calls newest
first with filters and German full-text search (:mod:`voicebot.staff.review`), one keyset page at a time;
``/konsole/anrufe/{call_id}`` shows one call's timeline: every turn with what the caller said and its ASR
confidence, the bot's answer, action, answer confidence, cited pages and per-stage latency, and the events
(barge-in, DTMF, hand-off, transfer, queue, call-back) in time order. No audio: recording is not built.

Supervisors and administrators only (:data:`voicebot.web.console.ACCESS`). Server-rendered German HTML, no
script; filters are a GET form, so a filtered list is a link that can be bookmarked.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from loguru import logger
from starlette.concurrency import run_in_threadpool

from voicebot.db import search
from voicebot.privacy.data import audit
from voicebot.privacy.recordings import TRACKS, recording_files, recording_path
from voicebot.records import is_call_id
from voicebot.staff import review
from voicebot.staff.summary import SourceLookup, SourceRef
from voicebot.web.staff_figures import PeriodError, parse_day

if TYPE_CHECKING:
    from voicebot.web.console import Console

NO_STORE = {"Cache-Control": "no-store"}  # callers' words: not kept in a browser's or proxy's cache
TOPICS_RELOAD_S = 300.0
MAX_PARAM_CHARS = 200
# The languages the speech recognition may detect (asr.languages), as the filter "Sprache" offers them.
LANGUAGE_LABELS = {
    "de": "Deutsch",
    "en": "Englisch",
    "tr": "Türkisch",
    "ar": "Arabisch",
    "uk": "Ukrainisch",
    "ru": "Russisch",
    "pl": "Polnisch",
}
REASON_LABELS = {
    "handoff_key": "Taste für persönliche Beratung",
    "caller_asked": "Wunsch nach einem Menschen",
    "frustration": "Unzufrieden mit den Antworten",
    "repeat_requests": "Mehrmals nicht verstanden",
    "low_confidence": "Bot zu unsicher",
    "engine_handoff": "Frage nicht beantwortbar",
    "emergency": "Möglicher Notfall",
    "redirect": "Andere Behörde zuständig",
    "component_failure": "Technischer Fehler",
}
BOT_KINDS = {
    "greeting": "Begrüßung",
    "answer": "Antwort",
    "clarify": "Rückfrage",
    "repeat": "Wiederholung",
    "silence_prompt": "Nachfrage bei Stille",
    "goodbye": "Verabschiedung",
    "recording_question": "Frage nach der Aufzeichnung",
    "recording_consent": "Dank für die Zustimmung zur Aufzeichnung",
}
ACTIONS = {
    "answer": "beantwortet",
    "clarify": "nachgefragt",
    "handoff": "übergeben",
    "redirect": "an andere Stelle verwiesen",
    "refuse": "abgelehnt (nicht zuständig)",
    "emergency": "Notfallhinweis",
}
STAGES = {
    "endpointing": "Sprechende erkannt",
    "asr": "Spracherkennung",
    "retrieval": "Suche im Wissen",
    "answer_first_sentence": "Erster Antwortsatz",
    "tts_first_chunk": "Sprachausgabe (erstes Stück)",
    "rest": "Übriges",
    "voice_to_voice": "Gesamt: Sprechende bis Antwort hörbar",
}
EVENTS = {
    "recording_consent": "Antwort auf die Frage nach der Aufzeichnung",
    "recording_started": "Aufzeichnung begonnen",
    "recording_stopped": "Aufzeichnung beendet",
    "barge_in": "Anrufer/in unterbricht den Bot (Barge-in)",
    "handoff_requested": "Übergabe an Mitarbeitende angefordert",
    "queued": "In die Warteschlange eingereiht",
    "queue_connected": "Mit Mitarbeiter/in verbunden",
    "queue_back_to_waiting": "Wieder wartend",
    "queue_abandoned": "Beim Warten aufgelegt",
    "queue_max_wait": "Höchste Wartezeit erreicht",
    "queue_unavailable": "Niemand verfügbar",
    "queue_failed": "Warteschlange nicht erreichbar",
    "transfer_started": "Weiterleitung begonnen",
    "transfer_ringing": "Weiterleitung: es klingelt",
    "transfer_referred": "Weiterleitung per REFER",
    "transfer_bridged": "Weiterleitung verbunden",
    "transfer_completed": "Weiterleitung abgeschlossen",
    "transfer_ended": "Weitergeleitetes Gespräch beendet",
    "transfer_failed": "Weiterleitung gescheitert",
    "transfer_refer_refused": "REFER abgelehnt",
    "pbx_queue_entry": "An die Warteschlange der Telefonanlage übergeben",
    "callback_offered": "Rückruf angeboten",
    "answer_error": "Fehler bei der Antwort",
    "interrupted": "Anruf unterbrochen (Prozess beendet)",
    "rtp": "Medienstatistik",
}
ENDINGS = {  # how a call ended (ended_reason, before a ":" detail)
    "hangup": "Anrufer/in hat aufgelegt",
    "caller": "Anrufer/in hat aufgelegt",
    "goodbye": "Vom Bot verabschiedet",
    "silence": "Stille: vom Bot beendet",
    "transferred": "Weitergeleitet, dann beendet",
    "max_duration": "Höchstdauer erreicht",
    "interrupted": "Unterbrochen (Prozess beendet)",
}
MAX_EVENT_FIELDS = 8
MAX_EVENT_VALUE_CHARS = 120


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def decimal(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}".replace(".", ",")


def call_time(seconds: Any) -> str:
    """Seconds since the call started as m:ss,s."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    minutes, secs = divmod(max(0.0, float(seconds)), 60)
    return f"{int(minutes)}:{secs:04.1f}".replace(".", ",")


def ending(reason: Any) -> str:
    """The call's end in words, with the stored reason for the technically minded ("–" while it runs)."""
    if not reason:
        return "–"
    label = ENDINGS.get(str(reason).split(":", 1)[0])
    return f'{esc(label)} <span class="hilfe">({esc(reason)})</span>' if label else esc(reason)


class Topics:
    """Department → the chunk ids of its pages, from the search index (re-read every :data:`TOPICS_RELOAD_S`:
    a re-ingest while serving)."""

    def __init__(self, index_dir: Any) -> None:
        self._index_dir = index_dir
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._sources: dict[str, tuple[str, ...]] = {}

    def get(self) -> dict[str, tuple[str, ...]]:
        with self._lock:
            if self._loaded_at is None or time.monotonic() - self._loaded_at > TOPICS_RELOAD_S:
                self._loaded_at = time.monotonic()
                self._sources = self._load()
            return self._sources

    def _load(self) -> dict[str, tuple[str, ...]]:
        from knowledge.index import KnowledgeIndex

        try:
            index = KnowledgeIndex.open(self._index_dir)
        except Exception as error:  # no index yet: no topics to choose
            logger.info(f"call review: no topics ({error!r})")
            return {}
        found: dict[str, list[str]] = {}
        for chunk in index.chunks:
            department = " ".join(chunk.department.split())
            if department:
                found.setdefault(department, []).append(chunk.id)
        return {name: tuple(ids) for name, ids in sorted(found.items(), key=lambda item: item[0].casefold())}


@dataclass
class CorrectionsOfCall:
    """For one timeline: the pages a correction may name and the corrections already made, by turn index."""

    titles: dict[str, str]
    rows: dict[int, list[Any]]

    @classmethod
    def load(cls, console: Console, call_id: str) -> CorrectionsOfCall:
        from voicebot.staff import corrections
        from voicebot.web.staff_corrections import page_choices

        rows: dict[int, list[Any]] = {}
        for row in corrections.for_call(console.engine, call_id):
            rows.setdefault(row.turn_index, []).append(row)
        return cls(page_choices(console), rows)


class FilterError(ValueError):
    """A filter value the form cannot have sent (one German line)."""


def chosen_filter(
    params: Mapping[str, str], zone: ZoneInfo, topics: Mapping[str, tuple[str, ...]]
) -> tuple[review.CallFilter, review.Cursor | None]:
    """The filter and page of a request's query parameters. Raises :class:`FilterError`,
    :class:`voicebot.staff.review.CursorError` or :class:`voicebot.db.search.SearchQueryError`."""

    def param(name: str) -> str:
        value = params.get(name, "")
        if len(value) > MAX_PARAM_CHARS:
            raise FilterError(f"Eine Angabe im Filter ist zu lang: höchstens {MAX_PARAM_CHARS} Zeichen.")
        return value.strip()

    start = end = None
    try:
        if param("von"):
            day = parse_day(param("von"), "Von")
            start = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        if param("bis"):
            day = parse_day(param("bis"), "Bis") + timedelta(days=1)
            end = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
    except PeriodError as error:
        raise FilterError(str(error)) from None
    if start is not None and end is not None and start >= end:
        raise FilterError("„Von“ liegt nach „Bis“: bitte den Zeitraum umdrehen.")
    outcome, reason, channel, topic = param("ergebnis"), param("grund"), param("kanal"), param("thema")
    if outcome and outcome not in review.OUTCOMES:
        raise FilterError("Dieses Ergebnis gibt es nicht: bitte aus der Liste wählen.")
    if reason and reason not in REASON_LABELS:
        raise FilterError("Diesen Übergabegrund gibt es nicht: bitte aus der Liste wählen.")
    if channel and channel not in review.CHANNELS:
        raise FilterError("Diesen Kanal gibt es nicht: bitte aus der Liste wählen.")
    if topic and topic not in topics:
        raise FilterError("Dieses Thema gibt es (nicht mehr) im Wissen: bitte aus der Liste wählen.")
    language = param("sprache")
    if language and language not in LANGUAGE_LABELS:
        raise FilterError("Diese Sprache gibt es nicht: bitte aus der Liste wählen.")
    text = param("q")
    search.words(text)  # a text that cannot be searched: refused here, with its line
    chosen = review.CallFilter(
        start=start,
        end=end,
        outcome=outcome,
        reason=reason,
        topic_sources=topics[topic] if topic else None,
        low_confidence=param("unsicher") == "1",
        channel=channel,
        search=text,
        flagged=param("markiert") == "1",
        language=language,
    )
    cursor = review.Cursor.parse(param("nach")) if param("nach") else None
    return chosen, cursor


def _options(choices: Mapping[str, str], selected: str, empty: str) -> str:
    options = [f'<option value="">{esc(empty)}</option>']
    options += [
        f'<option value="{esc(value)}"{" selected" if value == selected else ""}>{esc(label)}</option>'
        for value, label in choices.items()
    ]
    return "\n".join(options)


def filter_form(params: Mapping[str, str], topics: Mapping[str, tuple[str, ...]], error: str) -> str:
    def value(name: str) -> str:
        return esc(params.get(name, "")[:MAX_PARAM_CHARS])

    described = ' aria-describedby="filter-fehler"' if error else ""
    topic_choices = {name: name for name in topics}
    topic_help = "" if topics else '<span class="hilfe">Kein Wissen geladen: keine Themen zur Auswahl.</span>'
    return f"""<form method="get" action="/konsole/anrufe" class="filter" role="search" aria-label="Anrufe filtern"{described}>
  <p><label for="q">Suche im Gesagten</label>
     <input id="q" name="q" type="search" maxlength="{search.MAX_QUERY_CHARS}" value="{value("q")}"
            aria-describedby="q-hilfe">
     <span id="q-hilfe" class="hilfe">Alle Wörter müssen in einem Beitrag vorkommen; Wortanfänge genügen
     („Ausweis“ findet „Ausweisdokument“), Groß- und Kleinschreibung und Umlaute sind egal.</span></p>
  <fieldset>
    <legend>Zeitraum</legend>
    <p><label for="von">Von</label> <input id="von" name="von" type="date" value="{value("von")}"></p>
    <p><label for="bis">Bis</label> <input id="bis" name="bis" type="date" value="{value("bis")}"></p>
  </fieldset>
  <p><label for="ergebnis">Ergebnis</label>
     <select id="ergebnis" name="ergebnis">{_options(review.OUTCOMES, params.get("ergebnis", ""), "alle")}</select></p>
  <p><label for="grund">Übergabegrund</label>
     <select id="grund" name="grund">{_options(REASON_LABELS, params.get("grund", ""), "alle")}</select></p>
  <p><label for="thema">Thema (Fachbereich der zitierten Seite)</label>
     <select id="thema" name="thema">{_options(topic_choices, params.get("thema", ""), "alle")}</select>
     {topic_help}</p>
  <p><label for="kanal">Kanal</label>
     <select id="kanal" name="kanal">{_options(review.CHANNELS, params.get("kanal", ""), "alle")}</select></p>
  <p><label for="sprache">Sprache (erkannt beim Anrufenden)</label>
     <select id="sprache" name="sprache">{_options(LANGUAGE_LABELS, params.get("sprache", ""), "alle")}</select></p>
  <p class="option"><input id="unsicher" name="unsicher" type="checkbox" value="1"{" checked" if params.get("unsicher") == "1" else ""}>
     <label for="unsicher">Nur Anrufe mit geringer Sicherheit (Spracherkennung oder Antwort)</label></p>
  <p class="option"><input id="markiert" name="markiert" type="checkbox" value="1"{" checked" if params.get("markiert") == "1" else ""}>
     <label for="markiert">Nur markierte Anrufe</label></p>
  <p><button type="submit">Filtern</button> <a href="/konsole/anrufe">Filter zurücksetzen</a></p>
</form>"""


def flag_form(call_id: str, flagged: bool, csrf: str) -> str:
    """Mark the call for another look (the list's filter "Nur markierte Anrufe"), or take the mark away."""
    label = "Markierung entfernen" if flagged else "Anruf markieren"
    return f"""<form method="post" action="/konsole/anrufe/{esc(call_id)}/markieren" class="markieren">
  <input type="hidden" name="csrf" value="{esc(csrf)}">
  <input type="hidden" name="markiert" value="{"0" if flagged else "1"}">
  <button type="submit">{label}</button>
</form>"""


class ReviewView:
    def __init__(self, console: Console) -> None:
        self.console = console
        settings = console.settings
        self.zone = ZoneInfo(settings.http.console_timezone)
        self.thresholds = review.Thresholds(
            settings.handoff.min_asr_confidence, settings.handoff.min_answer_confidence
        )
        self.topics = Topics(settings.paths.index_dir)

    def when(self, epoch: float) -> str:
        return f"{datetime.fromtimestamp(epoch, self.zone):%d.%m.%Y %H:%M:%S}"

    def sources(self) -> SourceLookup | None:
        view = self.console.queue_view
        return view.book.sources() if view is not None else None

    def confidence_cell(self, row: review.CallRow) -> str:
        parts = []
        low = False
        if row.lowest_asr is not None:
            low |= row.lowest_asr < self.thresholds.min_asr_confidence
            parts.append(f"Erkennung {decimal(row.lowest_asr)}")
        if row.lowest_answer is not None:
            low |= row.lowest_answer < self.thresholds.min_answer_confidence
            parts.append(f"Antwort {decimal(row.lowest_answer)}")
        text = ", ".join(parts) or "–"
        return (
            f'<td class="unsicher">{esc(text)} <strong>(unsicher)</strong></td>'
            if low
            else f"<td>{esc(text)}</td>"
        )

    def table(self, page: review.CallPage, searching: bool) -> str:
        if not page.rows:
            return '<p role="status" id="ergebnis-anzahl">Keine Anrufe gefunden.</p>'
        body = []
        for row in page.rows:
            if searching and row.snippet:
                who = "Anrufer/in" if row.snippet_role == "caller" else "Bot"
                said = f'<span class="wer">{who}:</span> {search.marked_html(row.snippet)}'
            else:
                said = esc(row.first_question) if row.first_question else "–"
            reason = esc(REASON_LABELS.get(row.reason, row.reason)) if row.reason else "–"
            mark = ' <span class="markiert">(markiert)</span>' if row.flagged else ""
            body.append(
                f'<tr><th scope="row"><a href="/konsole/anrufe/{esc(row.call_id)}">{self.when(row.started_at)}</a>'
                f"{mark}</th>"
                f"<td>{esc(review.CHANNELS.get(row.channel, row.channel))}</td>"
                f"<td>{esc(review.OUTCOMES.get(row.outcome, row.outcome))}</td><td>{reason}</td>"
                f'<td>{said}</td>{self.confidence_cell(row)}<td class="zahl">{row.turns}</td></tr>'
            )
        said_heading = "Treffer im Gesagten" if searching else "Erste Frage"
        return f"""<div class="tabelle" role="region" aria-labelledby="anrufe-titel" tabindex="0">
<table id="anrufe">
  <caption id="anrufe-titel">Anrufe, neueste zuerst</caption>
  <thead><tr><th scope="col">Beginn</th><th scope="col">Kanal</th><th scope="col">Ergebnis</th>
    <th scope="col">Übergabegrund</th><th scope="col">{said_heading}</th>
    <th scope="col">Niedrigste Sicherheit</th><th scope="col">Beiträge</th></tr></thead>
  <tbody>
{chr(10).join(body)}
  </tbody>
</table>
</div>"""

    def list_page(self, params: Mapping[str, str]) -> tuple[str, int]:
        topics = self.topics.get()
        error = ""
        try:
            chosen, cursor = chosen_filter(params, self.zone, topics)
        except (FilterError, review.CursorError, search.SearchQueryError) as problem:
            error = str(problem)
        if error:
            results = ""
        else:
            page = review.list_calls(self.console.engine, chosen, self.thresholds, after=cursor)
            results = self.table(page, bool(chosen.search.strip()))
            kept = {name: params[name] for name in ("q", "von", "bis", "ergebnis", "grund", "thema", "kanal", "sprache", "unsicher", "markiert") if params.get(name)}  # fmt: skip
            links = []
            if cursor is not None:
                links.append(f'<a href="/konsole/anrufe?{esc(urlencode(kept))}">Zu den neuesten Anrufen</a>')
            if page.next_cursor is not None:
                query = urlencode({**kept, "nach": page.next_cursor.token()})
                links.append(f'<a href="/konsole/anrufe?{esc(query)}" rel="next">Ältere Anrufe</a>')
            if links:
                results += f'\n<nav aria-label="Seiten"><p>{" · ".join(links)}</p></nav>'
        error_html = (
            f'<div id="filter-fehler" class="error" role="alert"><p>{esc(error)}</p></div>' if error else ""
        )
        body = f"""<h1>Anrufe prüfen</h1>
<p>Was Anrufende und der Bot gesagt haben, mit Ergebnis, Übergabegrund und Sicherheit. Ein Klick auf den Beginn
zeigt den ganzen Verlauf.</p>
{error_html}
{filter_form(params, topics, error)}
{results}
<p><a href="/konsole">Zurück zur Konsole</a></p>"""
        return body, 400 if error else 200

    # --- one call ---------------------------------------------------------------------------------------

    def source_links(self, cited: Any) -> str:
        lookup = self.sources()
        links = []
        for source in cited if isinstance(cited, list) else []:
            if not isinstance(source, str):
                continue
            ref = (lookup(source) if lookup is not None else None) or SourceRef(source, source)
            title = esc(ref.title)
            if ref.url.startswith(("https://", "http://")):
                links.append(
                    f'<li><a href="{esc(ref.url)}">{title}</a> <span class="hilfe">({esc(source)})</span></li>'
                )
            else:
                links.append(f'<li>{title} <span class="hilfe">({esc(source)})</span></li>')
        return f'<ul class="quellen">{"".join(links)}</ul>' if links else ""

    def timings(self, timings: Any) -> str:
        if not isinstance(timings, dict) or not timings:
            return ""
        items = []
        for key in (*STAGES, *sorted(set(timings) - set(STAGES))):
            value = timings.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                items.append(f"<dt>{esc(STAGES.get(key, key))}</dt><dd>{decimal(float(value), 0)} ms</dd>")
        return f'<dl class="latenz" aria-label="Latenz je Stufe">{"".join(items)}</dl>' if items else ""

    def turn_item(self, turn: Mapping[str, Any]) -> str:
        at = call_time(turn.get("start_s"))
        said = esc(" ".join(str(turn.get("text") or "").split())) or "<em>(nichts)</em>"
        if turn.get("role") == "caller":
            if turn.get("kind") == "dtmf":
                return f'<li class="anrufer"><span class="zeit">{at}</span> <span class="wer">Anrufer/in</span> Taste {said} gedrückt (DTMF)</li>'
            confidence = turn.get("asr_confidence")
            value = float(confidence) if isinstance(confidence, int | float) else None
            unsure = value is not None and value < self.thresholds.min_asr_confidence
            note = f"Sicherheit der Spracherkennung: {decimal(value)}" + (" – unsicher" if unsure else "")
            return (
                f'<li class="anrufer"><span class="zeit">{at}</span> <span class="wer">Anrufer/in</span> „{said}“'
                f'<br><span class="{"unsicher" if unsure else "hilfe"}">{esc(note)}</span>'
                f"{self.timings(turn.get('timings_ms'))}</li>"
            )
        kind = str(turn.get("kind") or "")
        details = []
        action = turn.get("action")
        if action:
            details.append(f"Aktion: {esc(ACTIONS.get(str(action), str(action)))}")
        confidence = turn.get("confidence")
        if isinstance(confidence, int | float) and not isinstance(confidence, bool):
            unsure = confidence < self.thresholds.min_answer_confidence
            details.append(
                f"Sicherheit der Antwort: {decimal(float(confidence))}"
                + (" – <strong>unsicher</strong>" if unsure else "")
            )
        if turn.get("interrupted"):
            details.append("<strong>Unterbrochen</strong> (Barge-in)")
        cited = self.source_links(turn.get("sources"))
        return (
            f'<li class="bot"><span class="zeit">{at}</span> <span class="wer">Bot – {esc(BOT_KINDS.get(kind, kind))}</span> {said}'
            + (f"<br>{' · '.join(details)}" if details else "")
            + (f"<br>Zitierte Seiten: {cited}" if cited else "")
            + self.timings(turn.get("timings_ms"))
            + "</li>"
        )

    def event_item(self, event: Mapping[str, Any]) -> str:
        kind = str(event.get("kind") or "")
        fields: list[str] = []
        for key, value in event.items():
            if key in ("t", "kind") or len(fields) >= MAX_EVENT_FIELDS:
                continue
            shown = REASON_LABELS.get(str(value), str(value)) if key == "reason" else str(value)
            if len(shown) > MAX_EVENT_VALUE_CHARS:
                shown = shown[: MAX_EVENT_VALUE_CHARS - 1] + "…"
            fields.append(f"{esc(key)}: {esc(shown)}")
        extra = f' <span class="hilfe">({"; ".join(fields)})</span>' if fields else ""
        return (
            f'<li class="ereignis"><span class="zeit">{call_time(event.get("t"))}</span> '
            f'<span class="wer">Ereignis</span> {esc(EVENTS.get(kind, kind))}{extra}</li>'
        )

    def correction_part(
        self, call_id: str, index: int, turn: Mapping[str, Any], csrf: str, made_of: CorrectionsOfCall
    ) -> str:
        """Under a bot turn: the corrections already made of it, and the form for a new one (decision 0940)."""
        from voicebot.staff import corrections
        from voicebot.web.staff_corrections import turn_form

        made = [
            f'<li><a href="/konsole/korrekturen#korrektur-{row.id}">Korrektur {row.id}</a>: '
            f"{esc(corrections.KINDS.get(row.kind, row.kind))} – {esc(corrections.STATUSES.get(row.status, row.status))}</li>"
            for row in made_of.rows.get(index, [])
        ]
        listed = f'<ul class="korrekturen">{"".join(made)}</ul>' if made else ""
        return listed + turn_form(call_id, index, turn, csrf, made_of.titles)

    def timeline(
        self, record: Mapping[str, Any], csrf: str = "", made_of: CorrectionsOfCall | None = None
    ) -> str:
        items: list[tuple[float, int, int, str]] = []
        last = 0.0
        turns = record.get("turns")
        call_id = str(record.get("call_id") or "")
        for index, turn in enumerate(turns if isinstance(turns, list) else []):
            if isinstance(turn, dict):
                start = turn.get("start_s")
                last = float(start) if isinstance(start, int | float) else last
                item = self.turn_item(turn)
                if csrf and made_of is not None and turn.get("role") == "bot":
                    part = self.correction_part(call_id, index, turn, csrf, made_of)
                    item = item.removesuffix("</li>") + part + "</li>"
                items.append((last, 0, index, item))
        last = 0.0
        events = record.get("events")
        for index, event in enumerate(events if isinstance(events, list) else []):
            if isinstance(event, dict):
                t = event.get("t")
                last = float(t) if isinstance(t, int | float) else last
                items.append((last, 1, index, self.event_item(event)))
        items.sort(key=lambda item: item[:3])
        if not items:
            return "<p>Zu diesem Anruf ist nichts gespeichert.</p>"
        return '<ol class="verlauf" id="verlauf">\n' + "\n".join(item[3] for item in items) + "\n</ol>"

    def recording_part(self, call_id: str) -> str:
        """Players for the call's recording (only where the caller consented; every playback is logged)."""
        files = recording_files(self.console.settings.paths.recordings_dir, call_id)
        if not files:
            return "<p>Eine Tonaufnahme gibt es nicht.</p>"
        players = []
        for path in files:
            track = path.stem.rpartition("-")[2]
            label = "Anrufer/in" if track == "anrufer" else "Bot"
            players.append(
                f'<li><span id="spur-{track}">{label}</span> <audio controls preload="none" '
                f'aria-labelledby="aufnahme-titel spur-{track}" '
                f'src="/konsole/anrufe/{esc(call_id)}/aufnahme?spur={track}"></audio></li>'
            )
        return (
            '<h2 id="aufnahme-titel">Tonaufnahme</h2>\n<p class="hilfe">Die Anruferin oder der Anrufer hat der '
            'Aufzeichnung zugestimmt. Jedes Abspielen wird protokolliert.</p>\n<ul class="aufnahme">'
            + "".join(players)
            + "</ul>"
        )

    def call_page(self, call_id: str, csrf: str = "") -> tuple[str, int]:
        record = self.console.records.get(call_id) if is_call_id(call_id) else None
        made_of = CorrectionsOfCall.load(self.console, call_id) if record is not None and csrf else None
        if record is None:
            return '<h1>Anruf nicht gefunden</h1>\n<p role="alert">Diesen Anruf gibt es nicht (mehr).</p>\n<p><a href="/konsole/anrufe">Zur Anrufliste</a></p>', 404  # fmt: skip
        overview = review.call_overview(self.console.engine, call_id)
        started = record.get("started_at")
        ended = record.get("ended_at")
        duration = (
            f"{decimal(float(ended) - float(started), 0)} s"
            if isinstance(started, int | float) and isinstance(ended, int | float)
            else "läuft noch oder unbekannt"
        )
        channel = str(record.get("channel") or "")
        outcome = review.OUTCOMES.get(overview.outcome, overview.outcome) if overview else "–"
        reason = REASON_LABELS.get(overview.reason, overview.reason) if overview and overview.reason else "–"
        body = f"""<h1>Anruf vom {self.when(float(started)) if isinstance(started, int | float) else "–"}</h1>
<dl class="zusammenfassung">
  <dt>Kanal</dt><dd>{esc(review.CHANNELS.get(channel, channel))}</dd>
  <dt>Dauer</dt><dd>{esc(duration)}</dd>
  <dt>Ergebnis</dt><dd>{esc(outcome)}</dd>
  <dt>Übergabegrund</dt><dd>{esc(reason)}</dd>
  <dt>Ende</dt><dd>{ending(record.get("ended_reason"))}</dd>
  <dt>Markiert</dt><dd id="markierung">{"ja" if overview and overview.flagged else "nein"}</dd>
</dl>
{flag_form(call_id, bool(overview and overview.flagged), csrf) if csrf else ""}
<p class="hilfe">Zeiten ab Anrufbeginn (Minuten:Sekunden). Sicherheit: 0 bis 1; unsicher heißt unter
{decimal(self.thresholds.min_asr_confidence)} (Spracherkennung) oder {decimal(self.thresholds.min_answer_confidence)}
(Antwort).</p>
{self.recording_part(call_id)}
<h2>Verlauf</h2>
{self.timeline(record, csrf, made_of)}
<p><a href="/konsole/anrufe">Zur Anrufliste</a></p>"""
        return body, 200


def install_staff_review(
    app: FastAPI,
    console: Console,
    page: Callable[[str, str], str],
    checked_post: Callable[..., Any],
) -> ReviewView:
    view = ReviewView(console)

    @app.get("/konsole/anrufe", include_in_schema=False)
    async def calls_page(request: Request) -> Response:
        console.require(request, "/konsole/anrufe")
        body, status = await run_in_threadpool(view.list_page, dict(request.query_params))
        return HTMLResponse(page("Anrufe prüfen – Konsole", body), status_code=status, headers=NO_STORE)

    @app.get("/konsole/anrufe/{call_id}", include_in_schema=False)
    async def call_page(request: Request, call_id: str) -> Response:
        _user, session = console.require(request, "/konsole/anrufe/{call_id}")
        body, status = await run_in_threadpool(view.call_page, call_id, console.signer.csrf_token(session))
        return HTMLResponse(page("Anrufverlauf – Konsole", body), status_code=status, headers=NO_STORE)

    @app.get("/konsole/anrufe/{call_id}/aufnahme", include_in_schema=False)
    async def recording(request: Request, call_id: str, spur: str = "anrufer") -> Response:
        user, _session = console.require(request, "/konsole/anrufe/{call_id}/aufnahme")
        if spur not in TRACKS:
            return PlainTextResponse("spur: anrufer oder bot", status_code=400, headers=NO_STORE)
        if not is_call_id(call_id):
            return PlainTextResponse("Keine Aufnahme zu diesem Anruf.", status_code=404, headers=NO_STORE)
        path = recording_path(console.settings.paths.recordings_dir, call_id, spur)
        if not path.is_file():
            return PlainTextResponse("Keine Aufnahme zu diesem Anruf.", status_code=404, headers=NO_STORE)
        await run_in_threadpool(
            audit, console.engine, f"console:{user.username}", "play_recording", call_id, {"spur": spur}
        )
        return FileResponse(path, media_type="audio/wav", headers=NO_STORE)

    @app.post("/konsole/anrufe/{call_id}/markieren", include_in_schema=False)
    async def flag(request: Request, call_id: str) -> Response:
        user, _session, form = await checked_post(request, "/konsole/anrufe/{call_id}/markieren")
        wanted = form.get("markiert", "")
        if wanted not in ("0", "1"):
            body = '<h1>Ungültige Angabe</h1>\n<p role="alert">„markiert“ muss 0 oder 1 sein.</p>'
            return HTMLResponse(page("Ungültige Angabe – Konsole", body), status_code=400, headers=NO_STORE)
        flagged = wanted == "1"

        def store() -> bool:
            if not is_call_id(call_id) or not review.set_flag(
                console.engine, call_id, by=user.username, flagged=flagged, now=time.time()
            ):
                return False
            audit(
                console.engine, f"console:{user.username}", "flag_call" if flagged else "unflag_call", call_id
            )
            return True

        if not await run_in_threadpool(store):
            body = '<h1>Anruf nicht gefunden</h1>\n<p role="alert">Diesen Anruf gibt es nicht (mehr).</p>'
            return HTMLResponse(
                page("Anruf nicht gefunden – Konsole", body), status_code=404, headers=NO_STORE
            )
        return RedirectResponse(f"/konsole/anrufe/{call_id}", status_code=303)

    return view
