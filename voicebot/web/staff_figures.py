"""The service figures in the console (issue 10): ``/konsole/kennzahlen`` shows the figures of
:mod:`voicebot.staff.figures` per group and day for a period (the last seven days unless chosen), with the 115
target marked in text and colour, and ``/konsole/kennzahlen.csv`` gives the same table as CSV (decision 0861).

Supervisors and administrators only (:data:`voicebot.web.console.ACCESS`). Days are Europe/Berlin days, as in
``voicebot report queue``; the period is at most :data:`voicebot.commands.report.MAX_DAYS` days.
"""

from __future__ import annotations

import csv
import html
import io
import math
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from voicebot.staff import figures

if TYPE_CHECKING:
    from voicebot.web.console import Console

DEFAULT_DAYS = 7
MAX_DAYS = 366
NO_STORE = {"Cache-Control": "no-store"}
TARGET_TEXT = (
    f"Ziel der 115: mindestens {figures.ANSWER_TARGET_SHARE * 100:.0f} % der Anrufe innerhalb von "
    f"{figures.ANSWER_TARGET_S:.0f} Sekunden von einer Person angenommen"
)
# The CSV's columns: (heading, field, how a value is written). Numbers as a German spreadsheet reads them.
CSV_COLUMNS: list[tuple[str, str]] = [
    ("Tag", "day"),
    ("Gruppe", "group"),
    ("Angeboten", "offered"),
    ("Angenommen", "answered"),
    ("Angenommen ≤ 30 s", "answered_30s"),
    ("Quote ≤ 30 s (%)", "share_30s"),
    ("Ziel 115 erreicht", "target"),
    ("Ø Wartezeit (s)", "average_wait_s"),
    ("95 % Wartezeit (s)", "p95_wait_s"),
    ("Aufgelegt", "abandoned"),
    ("Rückrufe", "callbacks_requested"),
    ("Rückrufe erledigt", "callbacks_done"),
    ("Rückrufe überfällig", "callbacks_overdue"),
]


class PeriodError(ValueError):
    """A period the form cannot show (one German line)."""


def parse_day(text: str, label: str) -> date:
    for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    raise PeriodError(f"„{label}“ ist kein Datum: bitte als TT.MM.JJJJ oder JJJJ-MM-TT angeben.")


def period(start_text: str, end_text: str, today: date) -> tuple[date, date]:
    """The chosen days (empty fields: the last :data:`DEFAULT_DAYS` days up to today)."""
    end = parse_day(end_text, "Bis") if end_text.strip() else today
    start = parse_day(start_text, "Von") if start_text.strip() else end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise PeriodError("„Von“ liegt nach „Bis“: bitte den Zeitraum umdrehen.")
    if (end - start).days >= MAX_DAYS:
        raise PeriodError(f"Der Zeitraum ist länger als {MAX_DAYS} Tage: bitte kürzer wählen.")
    return start, end


def target_met(row: figures.GroupDay) -> bool | None:
    """The 115 measure of one group and day: answered within 30 s ≥ 75 % of offered (None: nothing offered)."""
    if row.share_30s is None:
        return None
    return row.share_30s >= figures.ANSWER_TARGET_SHARE


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{math.floor(value + 0.5)} s"  # as the report: half up


def _share_cell(row: figures.GroupDay) -> str:
    met = target_met(row)
    if met is None:
        return '<td class="zahl">–</td>'
    share = f"{(row.share_30s or 0.0) * 100:.0f} %"
    if met:
        return f'<td class="zahl ziel-erreicht">{share} <span class="ziel">✓ Ziel erreicht</span></td>'
    return f'<td class="zahl ziel-verfehlt">{share} <span class="ziel">✗ Ziel verfehlt</span></td>'


def group_table(rows: Sequence[figures.GroupDay]) -> str:
    if not rows:
        return '<p role="status">Im gewählten Zeitraum wurde kein Anruf an Mitarbeitende übergeben.</p>'
    body = []
    for row in rows:
        group = html.escape(row.group or "(ohne Gruppe)")
        body.append(
            f'<tr><th scope="row">{row.day:%d.%m.%Y}</th><td>{group}</td>'
            f'<td class="zahl">{row.offered}</td><td class="zahl">{row.answered}</td>'
            f'<td class="zahl">{row.answered_30s}</td>{_share_cell(row)}'
            f'<td class="zahl">{_seconds(row.average_wait_s)}</td><td class="zahl">{_seconds(row.p95_wait_s)}</td>'
            f'<td class="zahl">{row.abandoned}</td><td class="zahl">{row.callbacks_requested}</td>'
            f'<td class="zahl">{row.callbacks_done}</td><td class="zahl">{row.callbacks_overdue}</td></tr>'
        )
    headings = "".join(
        f'<th scope="col">{html.escape(title)}</th>'
        for title in (
            "Tag",
            "Gruppe",
            "Angeboten",
            "Angenommen",
            "Davon ≤ 30 s",
            "Quote ≤ 30 s (Ziel 115)",
            "Ø Wartezeit",
            "95 % Wartezeit",
            "Aufgelegt",
            "Rückrufe gewünscht",
            "Rückrufe erledigt",
            "Rückrufe überfällig",
        )
    )
    return f"""<div class="tabelle" role="region" aria-labelledby="kennzahlen-gruppen-titel" tabindex="0">
<table id="kennzahlen-gruppen">
  <caption id="kennzahlen-gruppen-titel">Warteschlange je Gruppe und Tag</caption>
  <thead><tr>{headings}</tr></thead>
  <tbody>
{chr(10).join(body)}
  </tbody>
</table>
</div>"""


def day_table(days: Sequence[figures.Day]) -> str:
    if not days:
        return '<p role="status">Im gewählten Zeitraum gab es keine Anrufe.</p>'
    body = "\n".join(
        f'<tr><th scope="row">{day.day:%d.%m.%Y}</th><td class="zahl">{day.calls}</td>'
        f'<td class="zahl">{day.handed_off}</td><td class="zahl">{day.contained}</td>'
        f'<td class="zahl">{"–" if day.containment is None else f"{day.containment * 100:.0f} %"}</td></tr>'
        for day in days
    )
    return f"""<table id="kennzahlen-tage">
  <caption>Anrufe je Tag: vom Bot abschließend beantwortet</caption>
  <thead><tr><th scope="col">Tag</th><th scope="col">Anrufe</th><th scope="col">An Mitarbeitende übergeben</th>
    <th scope="col">Vom Bot erledigt</th><th scope="col">Quote Bot</th></tr></thead>
  <tbody>
{body}
  </tbody>
</table>"""


def _csv_value(key: str, row: figures.GroupDay) -> str:
    if key == "day":
        return row.day.isoformat()
    if key == "target":
        met = target_met(row)
        return "" if met is None else ("ja" if met else "nein")
    value: Any = getattr(row, key)
    if value is None:
        return ""
    if key == "share_30s":
        return f"{value * 100:.1f}".replace(".", ",")
    if key.endswith("_s"):
        return f"{value:.1f}".replace(".", ",")
    text = str(value)
    # A cell a spreadsheet would run as a formula (a group name is configuration, still: never executable).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def group_csv(rows: Sequence[figures.GroupDay]) -> str:
    """The group table as CSV: ';'-separated, decimal comma, UTF-8 with BOM (what a German spreadsheet opens)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([title for title, _ in CSV_COLUMNS])
    for row in rows:
        writer.writerow([_csv_value(key, row) for _, key in CSV_COLUMNS])
    return "\ufeff" + out.getvalue()


def chosen_period(request: Request) -> tuple[date, date, str]:
    """The period the request asks for (``von``, ``bis``), and an error line ("" if none; then the default
    period)."""
    today = figures.day_of(time.time())
    try:
        start, end = period(
            request.query_params.get("von", "")[:32], request.query_params.get("bis", "")[:32], today
        )
    except PeriodError as error:
        start, end = period("", "", today)
        return start, end, str(error)
    return start, end, ""


def period_form(action: str, request: Request, start: date, end: date, error: str, *, note: str = "") -> str:
    """The period form of the figures, dashboard and gap pages: the error (if any) as an alert, the two date
    fields, and the period shown (``note`` follows it in the same paragraph)."""
    shown_from = request.query_params.get("von", "")[:32] if error else start.isoformat()
    shown_to = request.query_params.get("bis", "")[:32] if error else end.isoformat()
    described = ' aria-describedby="zeitraum-fehler" aria-invalid="true"' if error else ""
    error_html = (
        f'<div id="zeitraum-fehler" class="error" role="alert"><p>{html.escape(error)}</p>'
        f"<p>Gezeigt werden die letzten {DEFAULT_DAYS} Tage.</p></div>"
        if error
        else ""
    )
    return f"""{error_html}
<form method="get" action="{action}" class="zeitraum">
  <fieldset>
    <legend>Zeitraum (Tage in Europe/Berlin)</legend>
    <p><label for="von">Von</label>
       <input id="von" name="von" type="date" value="{html.escape(shown_from)}"{described}></p>
    <p><label for="bis">Bis</label>
       <input id="bis" name="bis" type="date" value="{html.escape(shown_to)}"{described}></p>
  </fieldset>
  <p><button type="submit">Anzeigen</button></p>
</form>
<p id="zeitraum">Vom {start:%d.%m.%Y} bis {end:%d.%m.%Y}.{note}</p>"""


def install_staff_figures(app: FastAPI, console: Console, page: Callable[[str, str], str]) -> None:
    chosen = chosen_period

    @app.get("/konsole/kennzahlen", include_in_schema=False)
    async def figures_page(request: Request) -> Response:
        console.require(request, "/konsole/kennzahlen")
        start, end, error = chosen(request)
        result = figures.report(console.engine, start, end, now=time.time())
        csv_link = f"/konsole/kennzahlen.csv?von={start.isoformat()}&amp;bis={end.isoformat()}"
        target = (
            f' {html.escape(TARGET_TEXT)}:\n   <span class="ziel-erreicht">✓ erreicht</span> oder '
            '<span class="ziel-verfehlt">✗ verfehlt</span>.'
        )
        form = period_form("/konsole/kennzahlen", request, start, end, error, note=target)
        body = f"""<h1>Servicekennzahlen</h1>
{form}
{group_table(result.groups)}
<p><a href="{csv_link}" download>Tabelle als CSV herunterladen</a>
   <span class="hilfe">Semikolon-getrennt, für Tabellenkalkulationen.</span></p>
{day_table(result.days)}
<p><a href="/konsole">Zurück zur Konsole</a></p>"""
        return HTMLResponse(page("Servicekennzahlen – Konsole", body), status_code=400 if error else 200,
                            headers=NO_STORE)  # fmt: skip

    @app.get("/konsole/kennzahlen.csv", include_in_schema=False)
    async def figures_csv(request: Request) -> Response:
        console.require(request, "/konsole/kennzahlen.csv")
        start, end, error = chosen(request)
        if error:
            return Response(error + "\n", status_code=400, media_type="text/plain; charset=utf-8")
        result = figures.report(console.engine, start, end, now=time.time())
        name = f"kennzahlen-{start.isoformat()}-bis-{end.isoformat()}.csv"
        return Response(
            group_csv(result.groups),
            media_type="text/csv; charset=utf-8",
            headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
        )
