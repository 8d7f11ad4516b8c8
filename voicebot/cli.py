"""The ``voicebot`` command: one entry point, each group of commands in its own module under ``commands/``.

Command modules keep heavy imports (models, pipecat) inside the command functions so that ``voicebot --help``
and quick commands stay fast.
"""

from __future__ import annotations

import importlib

import typer

# Plain click help: typer's rich help shows every flag as ``--json <bool>``, as if it took a value.
HELP_STYLE = None

app = typer.Typer(
    name="voicebot",
    help="Telefon-Voicebot für Bürgertelefone: answers citizens from the town's own knowledge base.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=HELP_STYLE,
)
bench_app = typer.Typer(
    help="Benchmarks that print numbers (never timed tests).",
    no_args_is_help=True,
    rich_markup_mode=HELP_STYLE,
)
app.add_typer(bench_app, name="bench")


@app.callback()
def _before_every_command() -> None:
    """A VOICEBOT_* variable that names no setting stops every command with one line (a typo is never ignored)."""
    from voicebot.commands.errors import check_environment_or_exit

    check_environment_or_exit()


# Each module defines ``register(app, bench_app)``.
COMMAND_MODULES = (
    "voicebot.commands.models",  # voicebot models setup|list|pull
    "voicebot.commands.kb",  # voicebot kb ingest|stats
    "voicebot.commands.answers",  # voicebot ask, voicebot eval, voicebot bench answer
    "voicebot.commands.calls",  # voicebot call, voicebot bench latency, voicebot bench asr
    "voicebot.commands.serve",  # voicebot serve, voicebot bench sip|soak
    "voicebot.commands.db",  # voicebot db upgrade|status|import-json
    "voicebot.commands.users",  # voicebot users add|list
    "voicebot.commands.report",  # voicebot report queue
    "voicebot.commands.privacy",  # voicebot privacy export|delete|audit, voicebot retention run
    "voicebot.commands.loadtest",  # voicebot loadtest
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app, bench_app)


def main() -> None:
    from voicebot.logs import configure_logging

    configure_logging(
        "DEBUG", stdlib=False
    )  # loguru's own default level, but no variable dumps in tracebacks
    app()


if __name__ == "__main__":
    main()
