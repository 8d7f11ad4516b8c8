"""The supervisor's overview and knowledge-gap pages (issue 11; decisions 0950, 0951):

- ``/konsole/uebersicht``: the dashboard of :mod:`voicebot.staff.dashboard` for a period, each chart a server-side
  SVG (``role="img"`` with title and description) followed by a table of the same numbers (BITV: the text
  alternative), and ``/konsole/uebersicht.csv?tabelle=…`` for each table;
- ``/konsole/luecken``: the knowledge-gap report of :mod:`voicebot.staff.gaps`.

Supervisors and administrators only (:data:`voicebot.web.console.ACCESS`). No script, no chart library.
"""

from __future__ import annotations

import csv
import html
import io
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from voicebot.staff import dashboard, figures, gaps
from voicebot.web.staff_figures import chosen_period, period_form
from voicebot.web.staff_review import REASON_LABELS, Topics

if TYPE_CHECKING:
    from voicebot.web.console import Console

NO_STORE = {"Cache-Control": "no-store"}
INDEX_RELOAD_S = 300.0
esc = html.escape
BAR = "#1f4e8c"  # 8.6:1 on white


def decimal(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}".replace(".", ",") + unit


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def bar_chart(
    ident: str, title: str, description: str, labels: Sequence[str], values: Sequence[float]
) -> str:
    """A vertical bar chart as SVG; what it shows is in its title and description (the table follows)."""
    width, height, top, bottom, left = 720, 220, 16, 40, 8
    count = max(1, len(values))
    step = (width - left * 2) / count
    highest = max([v for v in values if v > 0], default=1.0)
    bars = []
    label_every = 1 if count <= 12 else (2 if count <= 24 else max(1, count // 12))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - top - bottom) * (value / highest) if value > 0 else 0.0
        x = left + i * step + step * 0.15
        y = height - bottom - h
        bar = min(step * 0.7, 60.0)
        x += (step * 0.7 - bar) / 2
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{BAR}"/>')
        if i % label_every == 0:
            bars.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'font-size="12" fill="#1a1a1a">{esc(label)}</text>'
            )
    return (
        f'<svg class="diagramm" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-labelledby="{ident}-titel {ident}-beschreibung" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-titel">{esc(title)}</title><desc id="{ident}-beschreibung">{esc(description)}</desc>'
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" stroke="#1a1a1a"/>'
        f"{''.join(bars)}</svg>"
    )


# Each table: (heading, values as text per row); the same rows go into its CSV.
def tables(result: dashboard.Dashboard) -> dict[str, tuple[str, list[str], list[list[str]]]]:
    bins = [f"{i / 10:.1f}–{(i + 1) / 10:.1f}".replace(".", ",") for i in range(dashboard.BINS)]
    return {
        "tage": (
            "Anrufe, Quote Bot, Servicelevel und Antwortzeit je Tag",
            ["Tag", "Anrufe", "Übergeben", "Vom Bot erledigt", "Quote Bot", "An Mitarbeitende",
             "Angenommen ≤ 30 s", "Servicelevel (115)", "Antwortzeit Median (ms)", "Antwortzeit 95 % (ms)"],
            [[f"{d.day:%d.%m.%Y}", str(d.calls), str(d.handed_off), str(d.contained), percent(d.containment),
              str(d.offered), str(d.answered_30s), percent(d.service_level), decimal(d.latency_p50_ms),
              decimal(d.latency_p95_ms)] for d in result.days],
        ),
        "stunden": (
            "Anrufe je Stunde (alle Tage des Zeitraums)",
            ["Stunde", "Anrufe"],
            [[f"{h:02d}–{h + 1:02d} Uhr", str(n)] for h, n in enumerate(result.hours)],
        ),
        "gruende": (
            "Übergaben nach Grund",
            ["Grund", "Anrufe"],
            [[REASON_LABELS.get(r, r), str(n)] for r, n in result.reasons],
        ),
        "themen": (
            "Häufigste Themen (Fachbereich der zitierten Seiten)",
            ["Fachbereich", "Anrufe"],
            [[name, str(n)] for name, n in result.topics],
        ),
        "konfidenz": (
            "Verteilung der Antwortsicherheit",
            ["Sicherheit", "Antworten"],
            [[label, str(n)] for label, n in zip(bins, result.confidence, strict=True)],
        ),
    }  # fmt: skip


def table_html(key: str, caption: str, headings: list[str], body: list[list[str]], query: str) -> str:
    if not body:
        return f'<p role="status" id="{key}-leer">{esc(caption)}: keine Daten im Zeitraum.</p>'
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headings)
    rows = "\n".join(
        "<tr>"
        + f'<th scope="row">{esc(cells[0])}</th>'
        + "".join(f'<td class="zahl">{esc(c)}</td>' for c in cells[1:])
        + "</tr>"
        for cells in body
    )
    return f"""<div class="tabelle" role="region" aria-labelledby="{key}-titel" tabindex="0">
<table id="tabelle-{key}">
  <caption id="{key}-titel">{esc(caption)}</caption>
  <thead><tr>{head}</tr></thead>
  <tbody>
{rows}
  </tbody>
</table>
</div>
<p><a href="/konsole/uebersicht.csv?tabelle={key}&amp;{query}" download>„{esc(caption)}“ als CSV</a></p>"""


def to_csv(headings: list[str], body: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(headings)
    for cells in body:
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells])
    return "\ufeff" + out.getvalue()


def dashboard_body(result: dashboard.Dashboard, query: str) -> str:
    t = result.totals
    parts = [
        f"""<section aria-labelledby="summe-titel"><h2 id="summe-titel">Auf einen Blick</h2>
<dl class="kennzahlen">
  <dt>Anrufe</dt><dd>{t["calls"]}</dd>
  <dt>Vom Bot erledigt (ohne Übergabe)</dt><dd>{t["contained"]} ({percent(_float(t["containment"]))})</dd>
  <dt>Servicelevel 115 (Übergaben in 30 s angenommen, Ziel 75 %)</dt>
  <dd>{t["answered_30s"]} von {t["offered"]} ({percent(_float(t["service_level"]))})</dd>
  <dt>Rückrufe offen</dt><dd>{result.callbacks_open}</dd>
  <dt>Rückrufe überfällig</dt><dd>{result.callbacks_overdue}</dd>
  <dt>Antwortzeit (Sprache zu Sprache), Median / 95 %</dt>
  <dd>{decimal(_float(t["latency_p50_ms"]), unit=" ms")} / {decimal(_float(t["latency_p95_ms"]), unit=" ms")}</dd>
</dl></section>"""
    ]
    all_tables = tables(result)
    charts: dict[str, tuple[list[str], list[float], str]] = {  # what each chart draws, and its description
        "tage": (
            [f"{d.day:%d.%m.}" for d in result.days],
            [float(d.calls) for d in result.days],
            "Anrufe je Tag. " + "; ".join(f"{d.day:%d.%m.%Y}: {d.calls}" for d in result.days),
        ),
        "stunden": (
            [f"{h}" for h in range(24)],
            [float(n) for n in result.hours],
            "Anrufe je Stunde. " + "; ".join(f"{h} Uhr: {n}" for h, n in enumerate(result.hours) if n),
        ),
        "gruende": (
            [REASON_LABELS.get(r, r)[:14] for r, _ in result.reasons],
            [float(n) for _, n in result.reasons],
            "Übergaben nach Grund. "
            + "; ".join(f"{REASON_LABELS.get(r, r)}: {n}" for r, n in result.reasons),
        ),
        "themen": (
            [name[:14] for name, _ in result.topics[:10]],
            [float(n) for _, n in result.topics[:10]],
            "Themen. " + "; ".join(f"{name}: {n}" for name, n in result.topics[:10]),
        ),
        "konfidenz": (
            [f"{i / 10:.1f}".replace(".", ",") for i in range(dashboard.BINS)],
            [float(n) for n in result.confidence],
            "Antworten je Sicherheitsstufe von 0 bis 1. "
            + "; ".join(row[0] + ": " + row[1] for row in all_tables["konfidenz"][2]),
        ),
    }
    for key, (caption, headings, body) in all_tables.items():
        labels, values, description = charts[key]
        title = "Anrufe je Tag" if key == "tage" else caption  # the chart draws the calls; the table has all
        chart = bar_chart(f"diagramm-{key}", title, description, labels, values) if any(values) else ""
        parts.append(
            f'<section aria-labelledby="{key}-ueberschrift"><h2 id="{key}-ueberschrift">{esc(caption)}</h2>\n'
            f"{chart}\n{table_html(key, caption, headings, body, query)}</section>"
        )
    return "\n".join(parts)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def gaps_body(result: gaps.GapReport, zone: Any) -> str:
    intro = (
        f'<p id="luecken-anzahl" role="status">{result.considered} Fragen ohne gute Antwort in '
        f"{len(result.groups)} Themen, nach Zahl der Anrufe geordnet."
        + (f" Ausgewertet wurden nur die neuesten {gaps.MAX_QUESTIONS} Fragen." if result.truncated else "")
        + "</p>"
    )
    if not result.groups:
        return intro
    rows = []
    for n, group in enumerate(result.groups, 1):
        examples = "".join(f"<li>„{esc(e)}“</li>" for e in group.examples)
        kinds = ", ".join(f"{esc(gaps.KINDS[k])}: {v}" for k, v in group.kinds.items())
        pages = (
            "".join(
                f'<li>{esc(p.title)} <span class="hilfe">({esc(p.doc_id)}, Ähnlichkeit '
                f"{decimal(p.similarity, 2)})</span></li>"
                for p in group.pages
            )
            or "<li>keine</li>"
        )
        last = datetime.fromtimestamp(group.last_asked, zone)
        rows.append(
            f'<tr><th scope="row">{n}</th><td class="zahl">{group.calls}</td><td class="zahl">{group.questions}</td>'
            f"<td><ul>{examples}</ul></td><td>{kinds}</td><td><ul>{pages}</ul></td>"
            f"<td>{last:%d.%m.%Y %H:%M}</td></tr>"
        )
    return f"""{intro}
<div class="tabelle" role="region" aria-labelledby="luecken-titel" tabindex="0">
<table id="luecken">
  <caption id="luecken-titel">Fragen, die der Bot nicht gut beantworten konnte, nach Bedeutung gruppiert</caption>
  <thead><tr><th scope="col">Rang</th><th scope="col">Anrufe</th><th scope="col">Fragen</th>
    <th scope="col">Beispiele</th><th scope="col">Ausgang</th><th scope="col">Nächstliegende Seiten</th>
    <th scope="col">Zuletzt gefragt</th></tr></thead>
  <tbody>
{chr(10).join(rows)}
  </tbody>
</table>
</div>"""


class IndexCache:
    """The knowledge index (for topics and the closest pages), re-read every :data:`INDEX_RELOAD_S`."""

    def __init__(self, index_dir: Any) -> None:
        self._dir = index_dir
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._index: Any = None

    def get(self) -> Any:
        with self._lock:
            if self._loaded_at is None or time.monotonic() - self._loaded_at > INDEX_RELOAD_S:
                self._loaded_at = time.monotonic()
                self._index = gaps.open_index(self._dir)
            return self._index


@dataclass(frozen=True)
class Knowledge:
    topics: Topics
    index: IndexCache


def install_staff_dashboard(app: FastAPI, console: Console, page: Callable[[str, str], str]) -> None:
    settings = console.settings
    made: list[Knowledge] = []

    def sources() -> Knowledge:
        """Made on first use, from the index folder configured then."""
        if not made:
            made.append(Knowledge(Topics(settings.paths.index_dir), IndexCache(settings.paths.index_dir)))
        return made[0]

    def departments() -> dict[str, str]:
        return {chunk_id: name for name, ids in sources().topics.get().items() for chunk_id in ids}

    chosen = chosen_period

    form = period_form

    @app.get("/konsole/uebersicht", include_in_schema=False)
    async def overview(request: Request) -> Response:
        console.require(request, "/konsole/uebersicht")
        start, end, error = chosen(request)
        result = await run_in_threadpool(
            dashboard.report, console.engine, start, end, now=time.time(), departments=departments()
        )
        query = f"von={start.isoformat()}&amp;bis={end.isoformat()}"
        body = f"""<h1>Übersicht</h1>
{form("/konsole/uebersicht", request, start, end, error)}
{dashboard_body(result, query)}
<p><a href="/konsole/luecken?{query}">Wissenslücken im selben Zeitraum</a> · <a href="/konsole">Zurück zur Konsole</a></p>"""
        return HTMLResponse(
            page("Übersicht – Konsole", body), status_code=400 if error else 200, headers=NO_STORE
        )

    @app.get("/konsole/uebersicht.csv", include_in_schema=False)
    async def overview_csv(request: Request) -> Response:
        console.require(request, "/konsole/uebersicht.csv")
        start, end, error = chosen(request)
        key = request.query_params.get("tabelle", "tage")
        if error or key not in ("tage", "stunden", "gruende", "themen", "konfidenz"):
            line = (
                error or "Unbekannte Tabelle: tabelle=tage, stunden, gruende, themen oder konfidenz angeben."
            )
            return Response(line + "\n", status_code=400, media_type="text/plain; charset=utf-8")
        result = await run_in_threadpool(
            dashboard.report, console.engine, start, end, now=time.time(), departments=departments()
        )
        _caption, headings, body = tables(result)[key]
        name = f"uebersicht-{key}-{start.isoformat()}-bis-{end.isoformat()}.csv"
        return Response(
            to_csv(headings, body),
            media_type="text/csv; charset=utf-8",
            headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.get("/konsole/luecken", include_in_schema=False)
    async def gap_page(request: Request) -> Response:
        console.require(request, "/konsole/luecken")
        start, end, error = chosen(request)
        result = await run_in_threadpool(
            gaps.report,
            console.engine,
            start,
            end,
            min_answer_confidence=settings.handoff.min_answer_confidence,
            index=sources().index.get(),
        )
        body = f"""<h1>Wissenslücken</h1>
<p>Fragen von Anrufenden, die der Bot nicht kannte, nachfragen musste, an Mitarbeitende übergab oder nur unsicher
beantwortete – nach Bedeutung gruppiert. Ganz oben steht, was die meisten Anrufe betraf: dort fehlt am ehesten
eine Seite oder eine Angabe.</p>
{form("/konsole/luecken", request, start, end, error)}
{gaps_body(result, figures.BERLIN)}
<p><a href="/konsole/uebersicht">Zur Übersicht</a> · <a href="/konsole">Zurück zur Konsole</a></p>"""
        return HTMLResponse(
            page("Wissenslücken – Konsole", body), status_code=400 if error else 200, headers=NO_STORE
        )
