"""``voicebot loadtest``: real SIP calls at concurrency 1, 2, 4, … K, and the knee (decision 0991)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from voicebot.commands.errors import fail, settings_or_exit


def loadtest(
    calls: Annotated[
        int, typer.Option("--calls", help="Calls per concurrency level (at least K at level K).")
    ] = 8,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Highest concurrency; levels 1, 2, 4, … up to it.")
    ] = 4,
    through: Annotated[
        str | None,
        typer.Option("--through", help="Call HOST:PORT (a SIP proxy on loopback) instead of an own server."),
    ] = None,
    max_calls: Annotated[
        int | None,
        typer.Option("--max-calls", help="sip.max_calls of the own server (default: the setting)."),
    ] = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Calls before the first level, not counted.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write latency against concurrency as this PNG file.")
    ] = None,
) -> None:
    """Real SIP calls with German questions at rising concurrency: set-up, voice-to-voice p50/p95/p99, audio
    gaps, hand-offs, refusals (503) and failures per level, and the knee (highest concurrency at p95 ≤ 2.5 s)."""
    from voicebot.benchmarks.loadtest import parse_through, run_loadtest

    for name, value, least in (
        ("--calls", calls, 1),
        ("--concurrency", concurrency, 1),
        ("--warmup", warmup, 0),
    ):
        if value < least:
            raise fail(f"{name} must be at least {least}, not {value}")
    if max_calls is not None and (max_calls < 1 or through is not None):
        raise fail("--max-calls must be at least 1 and applies to the own server only (not with --through)")
    try:
        target = parse_through(through) if through is not None else None
    except ValueError as error:
        raise fail(str(error)) from None
    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise fail(f"--plot must name a .png file, not {str(plot)!r}")
        if not plot.parent.resolve().is_dir():
            raise fail(f"--plot: the folder {str(plot.parent)!r} does not exist")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise fail(
                "--plot needs matplotlib: pip install 'voicebot[dev]' (or matplotlib==3.11.2)"
            ) from None
    settings = settings_or_exit()
    try:
        report = asyncio.run(
            run_loadtest(
                settings,
                calls=calls,
                concurrency=concurrency,
                through=target,
                max_calls=max_calls,
                warmup=warmup,
                on_level=None if as_json else _say_level_done,
            )
        )
    except RuntimeError as error:  # the server did not come up (missing model, port) or espeak-ng is missing
        last = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        raise fail(last.removeprefix("error: ")) from None  # the server's own one-line error
    from voicebot.benchmarks.loadtest_report import report_table, summary_lines, write_plot

    if plot is not None:
        write_plot(report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    Console().print(report_table(report))
    for line in summary_lines(report):
        typer.echo(line)
    if plot is not None:
        typer.echo(f"Plot: {plot}")


def _say_level_done(level: dict[str, Any]) -> None:
    typer.echo(
        f"concurrency {level['concurrency']}: {level['calls']} calls in {level['wall_s']:.0f} s", err=True
    )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot loadtest``."""
    app.command("loadtest")(loadtest)
