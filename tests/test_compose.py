"""compose.yaml and Dockerfile of the production profile: valid against the compose specification's JSON schema,
wired as documented (Kamailio in front of two voicebots, decision 0910), real setting names.

The schema is the compose specification's ``compose_spec.json`` as Debian's ``docker-compose`` package ships it
(scripts/test installs the package; nothing is downloaded). That copy (2021) predates the top-level ``name``
property of the specification; the test adds it as the specification defines it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicebot.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
VOICEBOTS = ("voicebot-1", "voicebot-2")


def interpolate(value: str) -> str:
    """Resolve compose's ${VAR:-default} / ${VAR:?message} the way compose would with VAR unset (or set for ?)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        return arg if op == ":-" else f"test-{name.lower()}"

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", replace, value)


def interpolated(value: Any) -> Any:
    """The document as compose sees it after variable interpolation."""
    if isinstance(value, str):
        return interpolate(value)
    if isinstance(value, list):
        return [interpolated(item) for item in value]
    if isinstance(value, dict):
        return {key: interpolated(item) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    import jsonschema

    assert COMPOSE_SPEC.is_file(), (
        "the compose schema comes with Debian's docker-compose package (scripts/test)"
    )
    schema = json.loads(COMPOSE_SPEC.read_text(encoding="utf-8"))
    assert "name" not in schema["properties"]  # when Debian's copy has it, drop the line below
    schema["properties"]["name"] = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    document = interpolated(compose)
    validator = jsonschema.Draft201909Validator(schema)  # the draft its $schema names
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    broken = {**document, "services": {**document["services"], "kamailio": {"network": "host"}}}
    assert any("network" in e.message for e in validator.iter_errors(broken))  # a misspelt key is caught


def test_services_and_volumes(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"vllm", "postgres", "kamailio", *VOICEBOTS}
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
    assert vllm["environment"]["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("name", VOICEBOTS)
def test_voicebot_uses_host_network_and_the_published_ports(compose: dict[str, Any], name: str) -> None:
    voicebot = compose["services"][name]
    assert voicebot["network_mode"] == "host"
    env = voicebot["environment"]
    assert env["VOICEBOT_LLM__BASE_URL"] == "http://127.0.0.1:8000/v1"
    assert "127.0.0.1:8000:8000" in compose["services"]["vllm"]["ports"]
    assert "127.0.0.1:5432:5432" in compose["services"]["postgres"]["ports"]
    assert env["VOICEBOT_LLM__MODEL"] == "voicebot-llm"
    assert env["VOICEBOT_DATABASE_URL"].startswith("postgresql://voicebot:")
    assert env["VOICEBOT_LOG_FORMAT"] == "json"
    assert set(voicebot["depends_on"]) == {"vllm", "postgres"}
    assert voicebot["healthcheck"]["test"][-1].endswith(f":{env['VOICEBOT_HTTP__PORT']}/readyz')")


def test_the_voicebot_replicas_use_distinct_ports_and_instance_names(compose: dict[str, Any]) -> None:
    envs = [compose["services"][name]["environment"] for name in VOICEBOTS]
    for key in ("VOICEBOT_SIP__PORT", "VOICEBOT_HTTP__PORT", "VOICEBOT_QUEUE__INSTANCE_NAME"):
        assert len({env[key] for env in envs}) == len(envs), key
    ranges = sorted(
        (int(env["VOICEBOT_SIP__RTP_PORT_MIN"]), int(env["VOICEBOT_SIP__RTP_PORT_MAX"])) for env in envs
    )
    assert all(low < high for low, high in ranges)
    assert all(ranges[i][1] < ranges[i + 1][0] for i in range(len(ranges) - 1)), ranges  # RTP ranges apart


def test_kamailio_runs_the_shipped_config_in_front_of_both_replicas(compose: dict[str, Any]) -> None:
    kamailio = compose["services"]["kamailio"]
    assert kamailio["network_mode"] == "host"
    assert (REPO_ROOT / kamailio["build"] / "Dockerfile").is_file()
    mounts = {mount.split(":")[1]: mount.split(":") for mount in kamailio["volumes"]}
    config = mounts["/etc/kamailio/kamailio.cfg"]
    assert config[0] == "./deploy/kamailio/kamailio.cfg" and config[2] == "ro"
    command = kamailio["command"]
    assert command[command.index("-f") + 1] == "/etc/kamailio/kamailio.cfg"
    # The dispatcher list is mounted where the config's default DISPATCHER_LIST points, and lists both replicas.
    cfg = (REPO_ROOT / "deploy" / "kamailio" / "kamailio.cfg").read_text(encoding="utf-8")
    default_list = re.search(r'^#!trydef DISPATCHER_LIST "([^"]+)"', cfg, re.MULTILINE)
    assert default_list is not None
    listed = mounts[default_list.group(1)]
    assert listed[0] == "./deploy/kamailio/dispatcher.list" and listed[2] == "ro"
    entries = (REPO_ROOT / "deploy" / "kamailio" / "dispatcher.list").read_text(encoding="utf-8")
    for name in VOICEBOTS:
        port = compose["services"][name]["environment"]["VOICEBOT_SIP__PORT"]
        assert re.search(rf"^1 sip:127\.0\.0\.1:{port};transport=udp 8 ", entries, re.MULTILINE), name
    assert set(kamailio["depends_on"]) == set(VOICEBOTS)
    listen = [interpolate(arg) for arg in command if arg.startswith("SIP_LISTEN")]
    assert listen == [
        "SIP_LISTEN=udp:test-hotline_sip_address:5060",
        "SIP_LISTEN_TCP=tcp:test-hotline_sip_address:5060",
    ]


@pytest.mark.parametrize("name", VOICEBOTS)
def test_voicebot_environment_is_a_valid_settings_object(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """Every VOICEBOT_* variable names a real setting (unknown keys would be rejected) with a valid value."""
    for variable in list(os.environ):
        if variable.startswith("VOICEBOT_"):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)
    for variable, value in compose["services"][name]["environment"].items():
        monkeypatch.setenv(variable, interpolate(str(value)))
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
    assert settings.sip.public_host == "test-hotline_sip_address"
    assert settings.queue.instance_name == name
    assert settings.log_format == "json"


def test_dockerfile_copies_what_exists_and_installs_espeak() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    assert "espeak-ng" in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert 'ENTRYPOINT ["voicebot"]' in dockerfile
