"""How `voicebot loadtest` shows its result: a rich table per concurrency level, and a PNG of latency against
concurrency (matplotlib's Agg backend: no display, no GUI toolkit; decision 0991)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voicebot.benchmarks.loadtest import level_passes


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def report_table(report: dict[str, Any]) -> Any:
    """A ``rich.table.Table``: one row per level, the knee marked, levels beyond it flagged."""
    from rich.table import Table

    knee = report["knee"]
    title = f"Load test: {report['calls_per_level']} calls per level against {report['target']}" + (
        f" (sip.max_calls {report['server_max_calls']})" if report["server_max_calls"] else ""
    )
    table = Table(title=title)
    for header in ("concurrency", "calls", "answered", "refused 503", "failed"):
        table.add_column(header, justify="right")
    table.add_column("set-up p50 / p95 ms", justify="right")
    table.add_column("voice-to-voice p50 / p95 / p99 ms", justify="right")
    table.add_column("gaps (never sent) ms/min", justify="right")
    table.add_column("hand-offs", justify="right")
    table.add_column("")
    for level in report["levels"]:
        setup, v2v = level["call_setup_ms"], level["voice_to_voice_ms"]
        gaps, never_sent = level["gaps_ms_per_minute"], level["never_sent_ms_per_minute"]
        mark = "knee" if level["concurrency"] == knee else ("" if level_passes(level) else "over")
        table.add_row(
            str(level["concurrency"]),
            str(level["calls"]),
            str(level["answered"]),
            str(level["refused_503"]),
            str(level["failed"]),
            f"{_ms(setup['p50'])} / {_ms(setup['p95'])}",
            f"{_ms(v2v['p50'])} / {_ms(v2v['p95'])} / {_ms(v2v['p99'])}",
            "–" if gaps is None else f"{gaps:.0f} ({never_sent:.0f})",
            "–" if level["handoffs"] is None else str(level["handoffs"]),
            mark,
        )
    return table


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The knee in words, and every failure (refusals with 503 are counted in the table, not failures)."""
    limit_s = report["p95_limit_ms"] / 1000
    knee = report["knee"]
    lines = [
        f"Knee: {knee} call{'s' if knee != 1 else ''} at once (voice-to-voice p95 ≤ {limit_s:g} s, no failed or "
        "refused call)"
        if knee is not None
        else f"Knee: none (not even one call at a time kept p95 ≤ {limit_s:g} s without a failed call)"
    ]
    for level in report["levels"]:
        lines += [
            f"  concurrency {level['concurrency']}, call {failure['call']}: {failure['error']}"
            for failure in level["failures"]
        ]
    return lines


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Voice-to-voice p50/p95/p99 (seconds) against concurrency, the 2.5 s line and the knee, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    levels = report["levels"]
    concurrency = [level["concurrency"] for level in levels]
    figure = Figure(figsize=(8, 4.8), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^--")):
        values = [level["voice_to_voice_ms"][key] for level in levels]
        axes.plot(concurrency, [float("nan") if v is None else v / 1000 for v in values], style, label=key)
    limit_s = report["p95_limit_ms"] / 1000
    axes.axhline(limit_s, color="tab:red", linestyle=":", label=f"p95 limit {limit_s:g} s")
    knee = report["knee"]
    if knee is not None:
        label = f"knee: {knee} call{'s' if knee != 1 else ''} at once"
        axes.axvline(knee, color="tab:green", linestyle="--", label=label)
    for level in levels:
        if level["refused_503"] or level["failed"]:
            axes.annotate(
                f"503 × {level['refused_503']}, failed {level['failed']}",
                (level["concurrency"], limit_s),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
    axes.set_xscale("log", base=2)
    axes.set_xticks(concurrency, [str(c) for c in concurrency])
    axes.set_xlim(concurrency[0] / 1.3, concurrency[-1] * 1.3)
    axes.set_xlabel("concurrent calls")
    axes.set_ylabel("voice-to-voice latency (s)")
    seconds = [
        level["voice_to_voice_ms"][key] / 1000
        for level in levels
        for key in ("p50", "p95", "p99")
        if level["voice_to_voice_ms"][key] is not None
    ]
    axes.set_ylim(0, max([limit_s, *seconds]) * 1.2)
    axes.set_title(f"Load test: {report['calls_per_level']} calls per level, {report['target']}")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
