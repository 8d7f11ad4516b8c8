"""`voicebot serve` refuses to start without its models, with one line that says what to run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from interop.peers import REPO_ROOT, free_port


def test_missing_model_is_one_line_naming_the_setup_command(tmp_path: Path) -> None:
    env = {
        "VOICEBOT_PATHS__MODELS_DIR": str(tmp_path / "no-models"),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicebot.cli",
            "serve",
            "--sip-port",
            str(free_port()),
            "--http-port",
            str(free_port()),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "voicebot models setup" in errors[0], result.stderr[-2000:]


def test_bad_port_is_rejected_before_anything_loads() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "serve", "--sip-port", "70000"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == "error: --sip-port must be between 1 and 65535, not 70000"
    )


def test_invalid_configuration_is_one_line_naming_the_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "serve"],
        cwd=REPO_ROOT,
        env={"VOICEBOT_SIP__PORT": "fünf", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        "error: invalid configuration (voicebot.toml or VOICEBOT_* environment): sip.port:"
    )
