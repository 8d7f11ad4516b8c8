"""compose.yaml and Dockerfile of the production profile: valid YAML, wired as documented, real setting names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicebot.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def interpolate(value: str) -> str:
    """Resolve compose's ${VAR:-default} / ${VAR:?message} the way compose would with VAR unset (or set for ?)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        return arg if op == ":-" else f"test-{name.lower()}"

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", replace, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_services_and_volumes(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"vllm", "voicebot", "postgres"}
    assert "pgdata" in compose["volumes"]
    assert compose["services"]["postgres"]["image"] == "postgres:16"
    assert any(v.startswith("pgdata:") for v in compose["services"]["postgres"]["volumes"])


def test_vllm_gets_a_gpu_and_serves_an_instruct_model(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    assert "vllm/vllm-openai" in vllm["image"]
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    model_args = [interpolate(a) for a in vllm["command"] if a.startswith("--model=")]
    assert len(model_args) == 1 and "Instruct" in model_args[0]
    assert any(a == "--served-model-name=voicebot-llm" for a in vllm["command"])


def test_voicebot_uses_host_network_and_the_published_ports(compose: dict[str, Any]) -> None:
    voicebot = compose["services"]["voicebot"]
    assert voicebot["network_mode"] == "host"
    env = voicebot["environment"]
    assert env["VOICEBOT_LLM__BASE_URL"] == "http://127.0.0.1:8000/v1"
    assert "127.0.0.1:8000:8000" in compose["services"]["vllm"]["ports"]
    assert "127.0.0.1:5432:5432" in compose["services"]["postgres"]["ports"]
    assert env["VOICEBOT_LLM__MODEL"] == "voicebot-llm"
    assert env["VOICEBOT_DATABASE_URL"].startswith("postgresql://voicebot:")
    assert set(voicebot["depends_on"]) == {"vllm", "postgres"}


def test_voicebot_environment_is_a_valid_settings_object(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every VOICEBOT_* variable names a real setting (unknown keys would be rejected) with a valid value."""
    for name in list(os.environ):
        if name.startswith("VOICEBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for name, value in compose["services"]["voicebot"]["environment"].items():
        monkeypatch.setenv(name, interpolate(str(value)))
    settings = Settings()
    assert settings.asr.device == "cuda"
    assert settings.asr.model == "whisper-large-v3-turbo"
    assert settings.resolved_answer_mode() == "llm"
    assert settings.paths.models_dir == Path("/models")
    assert settings.database_url is not None
    assert (
        settings.database_url.get_secret_value()
        == "postgresql://voicebot:test-postgres_password@127.0.0.1:5432/voicebot"
    )
    assert "10.0.0.0/8" in settings.sip.allowed_networks


def test_dockerfile_copies_what_exists_and_installs_espeak() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    assert "espeak-ng" in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert 'ENTRYPOINT ["voicebot"]' in dockerfile
