"""The installed ``voicebot`` entry point, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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
    from typer.testing import CliRunner

    from voicebot.cli import app

    group = typer.main.get_command(app)
    paths: list[list[str]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        paths.extend([[name, child] for child in sub] if sub else [[name]])
    assert ["models", "setup"] in paths
    runner = CliRunner()  # in-process: one import of every command module instead of one process per command
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"voicebot {' '.join(path)} --help: {result.output}"


def test_unknown_command_fails() -> None:
    result = run("no-such-command")
    assert result.returncode != 0
    assert "no-such-command" in result.stderr


def test_setup_scripts_are_executable_bash_that_parses() -> None:
    for relpath in ("scripts/run-hotline", "scripts/test", ".ci/run"):
        path = REPO_ROOT / relpath
        assert os.access(path, os.X_OK), f"{relpath} is not executable"
        assert path.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
        checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr


def test_every_command_reports_invalid_configuration_in_the_same_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from voicebot.cli import app
    from voicebot.settings import get_settings

    monkeypatch.setenv("VOICEBOT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("VOICEBOT_SIP__PORT", "fünf")
    get_settings.cache_clear()  # settings read by an earlier test in this process would hide the bad value
    runner = CliRunner()
    commands = [
        ["models", "list"],
        ["kb", "stats"],
        ["ask", "Was kostet ein Perso?"],
        ["serve"],
        ["bench", "sip"],
        ["bench", "latency"],
        ["bench", "asr"],
        ["bench", "answer"],
    ]
    for command in commands:
        result = runner.invoke(app, command)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code != 0 and len(lines) == 1, f"voicebot {' '.join(command)}: {result.output}"
        assert lines[0].startswith(
            "error: invalid configuration (voicebot.toml or VOICEBOT_* environment): sip.port: "
        ), f"voicebot {' '.join(command)}: {lines[0]}"
