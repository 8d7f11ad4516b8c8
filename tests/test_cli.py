"""The installed ``voicebot`` entry point, run as a user would run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VOICEBOT = REPO_ROOT / ".venv" / "bin" / "voicebot"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VOICEBOT), *args], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


def test_help_lists_the_command_groups() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for group in ("models", "bench"):
        assert group in result.stdout


def test_models_help_lists_setup_list_pull() -> None:
    result = run("models", "--help")
    assert result.returncode == 0, result.stderr
    for command in ("setup", "list", "pull"):
        assert command in result.stdout


def test_every_registered_command_has_working_help() -> None:
    """Each command module registers without import errors and each command's --help renders."""
    import typer.main

    from voicebot.cli import app

    group = typer.main.get_command(app)
    paths: list[list[str]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        paths.extend([[name, child] for child in sub] if sub else [[name]])
    assert ["models", "setup"] in paths
    for path in paths:
        result = run(*path, "--help")
        assert result.returncode == 0, f"voicebot {' '.join(path)} --help: {result.stderr}"


def test_unknown_command_fails() -> None:
    result = run("no-such-command")
    assert result.returncode != 0
    assert "no-such-command" in result.stderr
