"""The installed ``voicebot`` entry point, run as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import wave
from pathlib import Path

import pytest

from knowledge.config import SAMPLE_KB_DIR

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

    def command_paths(command: object, prefix: list[str]) -> list[list[str]]:
        """Every leaf command under ``command``, nested groups (``kb pack export``) included."""
        children = getattr(command, "commands", None)
        if not children:
            return [prefix]
        return [path for name, child in children.items() for path in command_paths(child, [*prefix, name])]

    paths = command_paths(typer.main.get_command(app), [])
    assert ["models", "setup"] in paths and ["kb", "pack", "export"] in paths
    runner = CliRunner()  # in-process: one import of every command module instead of one process per command
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"voicebot {' '.join(path)} --help: {result.output}"
        # A flag takes no value: its help line must not read "--json <bool>" (typer's rich help did).
        assert "<bool>" not in result.output, f"voicebot {' '.join(path)} --help: {result.output}"


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
        # The same exit code from every command (the README's promise): a configuration error is not a usage
        # error (2), which `ask` used to report it as.
        assert result.exit_code == 1 and len(lines) == 1, f"voicebot {' '.join(command)}: {result.output}"
        assert lines[0].startswith(
            "error: invalid configuration (voicebot.toml or VOICEBOT_* environment): sip.port: "
        ), f"voicebot {' '.join(command)}: {lines[0]}"


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("taken_kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["http", "sip"])
def test_serve_on_a_taken_port_names_the_port(
    tmp_path: Path, embedded_models_dir: Path, taken_kind: int
) -> None:
    """ "Address already in use" alone does not say which of SIP and HTTP, nor which port, is taken."""
    with socket.socket(socket.AF_INET, taken_kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if taken_kind == socket.SOCK_STREAM:
            taken.listen(1)
        port = taken.getsockname()[1]
        http_port = port if taken_kind == socket.SOCK_STREAM else _free_port(socket.SOCK_STREAM)
        sip_port = port if taken_kind == socket.SOCK_DGRAM else _free_port(socket.SOCK_DGRAM)
        env = os.environ | {"VOICEBOT_PATHS__MODELS_DIR": str(embedded_models_dir)}
        result = subprocess.run(
            [str(VOICEBOT), "serve", "--http-port", str(http_port), "--sip-port", str(sip_port)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
            env=env,
        )
    what = "HTTP" if taken_kind == socket.SOCK_STREAM else "SIP (UDP/TCP)"
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen: {what} port {port} on 127.0.0.1: Address already in use; "
        "choose another --sip-port/--http-port or --host"
    )


def test_serve_names_a_folder_it_cannot_make_instead_of_blaming_the_ports(
    tmp_path: Path, embedded_models_dir: Path
) -> None:
    """An index folder that is a dangling link (a copied tree, a shared folder not mounted) stopped `serve` with
    "cannot listen: File exists; choose another --sip-port"; the error must name the folder, not the ports."""
    index = tmp_path / "index"
    index.symlink_to(tmp_path / "not-mounted")
    env = os.environ | {
        "VOICEBOT_PATHS__MODELS_DIR": str(embedded_models_dir),
        "VOICEBOT_PATHS__INDEX_DIR": str(index),
    }
    result = subprocess.run(
        [str(VOICEBOT), "serve", "--http-port", str(_free_port(socket.SOCK_STREAM)), "--sip-port",
         str(_free_port(socket.SOCK_DGRAM))],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot start: ") and str(index) in last, last
    assert "port" not in last


def _silence_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return path


def test_call_from_another_folder_names_the_absolute_models_folder_it_looked_in(tmp_path: Path) -> None:
    home = tmp_path / "hotline"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wav = _silence_wav(tmp_path / "caller.wav", 0.5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")} | {
        "VOICEBOT_HOME": str(home)
    }
    result = subprocess.run(
        [str(VOICEBOT), "call", str(wav)], capture_output=True, text=True, timeout=120, cwd=elsewhere, env=env
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model "), result.stderr
    assert f" in {home / 'var' / 'models'} " in lines[0]


def test_call_from_another_folder_finds_the_models_and_keeps_its_record_apart(
    tmp_path: Path, embedded_models_dir: Path
) -> None:
    """``voicebot call`` run outside the hotline's folder uses the models configured there, and its record goes to
    ``paths.simulated_calls_dir``, not among the real calls' records (``paths.calls_dir``)."""
    home = tmp_path / "hotline"
    (home / "kb").mkdir(parents=True)
    shutil.copy(SAMPLE_KB_DIR / "fundbuero.md", home / "kb" / "fundbuero.md")
    (home / "models").symlink_to(embedded_models_dir)
    config = home / "voicebot.toml"
    config.write_text(
        '[paths]\nmodels_dir = "models"\nindex_dir = "index"\nkb_sources = ["kb"]\n'
        '[call]\ngreeting = "Guten Tag."\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wav = _silence_wav(tmp_path / "caller.wav", 1.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")} | {
        "VOICEBOT_CONFIG": str(config)
    }
    result = subprocess.run(
        [str(VOICEBOT), "call", str(wav), "--json", "--speed", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=elsewhere,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    record = home / "var" / "calls-simulated" / f"{data['call_id']}.json"
    assert data["simulation"]["transcript_json"] == str(record)
    assert json.loads(record.read_text(encoding="utf-8"))["channel"] == "simulation"
    assert not (home / "var" / "calls").exists()  # the real calls' folder stays as it was
    assert list(elsewhere.iterdir()) == []
