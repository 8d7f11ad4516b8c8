"""The one settings object: embedded defaults, TOML file, environment, and unknown keys as clear errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from voicebot.settings import PathSettings, Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No VOICEBOT_* variables and a working directory without voicebot.toml; returns that directory."""
    for name in list(os.environ):
        if name.startswith("VOICEBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_tests_never_read_the_developers_environment(no_developer_environment: Path) -> None:
    """The autouse fixture of tests/conftest.py: a VOICEBOT_* variable or a voicebot.toml of the developer
    would otherwise change what every ``Settings()`` of the suite sees."""
    assert sorted(
        name for name in os.environ if name.startswith("VOICEBOT_") and not name.startswith("VOICEBOT_TEST_")
    ) == ["VOICEBOT_CONFIG", "VOICEBOT_HOME", "VOICEBOT_OFFICE_HOURS__ALWAYS_OPEN"]
    assert not Path(os.environ["VOICEBOT_CONFIG"]).exists()
    assert Path.cwd() == no_developer_environment == Path(os.environ["VOICEBOT_HOME"]) != REPO_ROOT
    # Every field at its embedded default, but staff reachable at any hour (the suite runs at any hour).
    embedded = Settings.model_construct()
    embedded.office_hours.always_open = True
    assert Settings() == embedded


def test_embedded_defaults(clean_env: Path) -> None:
    settings = Settings()
    assert settings.asr.model == "whisper-base"
    assert settings.asr.device == "cpu"
    assert settings.asr.temperature == 0.0
    assert settings.paths.models_dir == REPO_ROOT / "var" / "models"  # a source checkout: its own var/
    assert settings.llm.base_url is None
    assert settings.resolved_answer_mode() == "extractive"


def test_toml_file_in_working_directory_overrides_defaults(clean_env: Path) -> None:
    (clean_env / "voicebot.toml").write_text(
        'town = "Beispielheim"\n[asr]\nbeam_size = 5\n[llm]\nbase_url = "http://127.0.0.1:8000/v1"\n',
        encoding="utf-8",
    )
    settings = Settings()
    assert settings.town == "Beispielheim"
    assert settings.asr.beam_size == 5
    assert settings.asr.language == "de"  # untouched fields keep their defaults
    assert settings.resolved_answer_mode() == "llm"


def test_environment_overrides_toml(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = clean_env / "elsewhere.toml"
    config.write_text('[asr]\ndevice = "cpu"\nbeam_size = 5\n', encoding="utf-8")
    monkeypatch.setenv("VOICEBOT_CONFIG", str(config))
    monkeypatch.setenv("VOICEBOT_ASR__DEVICE", "cuda")
    monkeypatch.setenv("VOICEBOT_PATHS__MODELS_DIR", "/srv/models")
    settings = Settings()
    assert settings.asr.device == "cuda"
    assert settings.asr.beam_size == 5
    assert settings.paths.models_dir == Path("/srv/models")


def test_explicit_arguments_win(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_PATHS__MODELS_DIR", "/srv/models")
    settings = Settings(paths=PathSettings(models_dir=clean_env / "m"))
    assert settings.paths.models_dir == clean_env / "m"


def test_secrets_keep_their_names_but_are_never_shown(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """database_url, llm.api_key and the SIP passwords come from the same TOML keys and VOICEBOT_* variables as
    before, and no rendering of the settings (repr, str, model_dump, JSON) discloses them."""
    (clean_env / "voicebot.toml").write_text(
        'database_url = "postgresql://voicebot:db-secret-1@127.0.0.1/voicebot"\n'
        '[sip]\nauth_username = "2001"\nauth_password = "sip-secret-2"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("VOICEBOT_LLM__API_KEY", "llm-secret-3")
    monkeypatch.setenv("VOICEBOT_SIP__INBOUND_PASSWORD", "sip-secret-4")
    settings = Settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://voicebot:db-secret-1@127.0.0.1/voicebot"
    assert settings.sip.auth_password is not None and settings.sip.inbound_password is not None
    assert settings.sip.auth_password.get_secret_value() == "sip-secret-2"
    assert settings.sip.inbound_password.get_secret_value() == "sip-secret-4"
    assert settings.llm.api_key.get_secret_value() == "llm-secret-3"
    assert Settings().llm.api_key.get_secret_value() == "llm-secret-3"  # env still wins over the default
    renderings = [
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        settings.model_dump_json(),
        repr(settings.sip),
        f"{settings.llm}",
    ]
    for rendering in renderings:
        for secret in ("db-secret-1", "sip-secret-2", "llm-secret-3", "sip-secret-4"):
            assert secret not in rendering, rendering


@pytest.mark.parametrize(
    ("toml", "location"),
    [
        ("[asr]\nbeamsize = 5\n", "asr.beamsize"),
        ("[sip]\nport = 5060\nstaff = 'sip:x@y'\n", "sip.staff"),
        ("tonw = 'Musterstadt'\n", "tonw"),
    ],
)
def test_unknown_toml_key_is_rejected(clean_env: Path, toml: str, location: str) -> None:
    (clean_env / "voicebot.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ValidationError) as excinfo:
        Settings()
    errors = excinfo.value.errors()
    assert [".".join(str(p) for p in e["loc"]) for e in errors] == [location]
    assert errors[0]["type"] == "extra_forbidden"


def test_unknown_environment_key_in_a_section_is_rejected(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicebot.settings import UnknownSettingError

    monkeypatch.setenv("VOICEBOT_ASR__BEAMSIZE", "5")
    with pytest.raises(
        UnknownSettingError, match=r"VOICEBOT_ASR__BEAMSIZE \(did you mean VOICEBOT_ASR__BEAM_SIZE\?\)"
    ):
        Settings()


def test_wrong_type_is_rejected(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_ASR__DEVICE", "tpu")
    with pytest.raises(ValidationError, match=r"asr\.device"):
        Settings()


def test_cli_reports_a_bad_config_in_one_line(clean_env: Path) -> None:
    (clean_env / "voicebot.toml").write_text("[asr]\nbeamsize = 5\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "voicebot"), "models", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=clean_env,
        env=env,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: invalid configuration (voicebot.toml or VOICEBOT_* environment): "
        "asr.beamsize: Extra inputs are not permitted"
    ]


def test_readme_toml_example_is_a_valid_configuration(clean_env: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (clean_env / "voicebot.toml").write_text(example, encoding="utf-8")
    settings = Settings()
    assert settings.asr.model == "whisper-large-v3-turbo"
    assert settings.resolved_answer_mode() == "llm"


def test_knowledge_gets_its_part_of_the_settings(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TOML keys and VOICEBOT_* names of the knowledge sections are unchanged; the library gets them as they are."""
    (clean_env / "voicebot.toml").write_text(
        'town = "Beispielheim"\n[retrieval]\ntop_k = 5\n[answer]\nmin_confidence = 0.6\n', encoding="utf-8"
    )
    monkeypatch.setenv("VOICEBOT_LLM__BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("VOICEBOT_PATHS__INDEX_DIR", "/srv/index")
    settings = Settings()
    config = settings.knowledge()
    assert (config.town, config.index_dir, list(config.kb_sources)) == (
        "Beispielheim",
        Path("/srv/index"),
        [*settings.paths.kb_sources, settings.paths.corrections_dir],  # corrections: decision 0940
    )
    assert config.retrieval.top_k == 5 and config.answer.min_confidence == 0.6
    assert config.llm.base_url == "http://127.0.0.1:8000/v1"
    assert config.resolved_answer_mode() == settings.resolved_answer_mode() == "llm"
    assert config.retrieval is settings.retrieval  # shared, not copied


@pytest.mark.parametrize(
    ("toml", "location"),
    [
        ("[answer]\nclarify_margin = 0.1\n", "answer.clarify_margin"),
        ("[paths]\ndata_dir = 'var'\n", "paths.data_dir"),
    ],
)
def test_settings_that_nothing_read_are_gone(clean_env: Path, toml: str, location: str) -> None:
    """A setting must do something: these two promised behaviour that no code had, so they were removed."""
    (clean_env / "voicebot.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ValidationError) as excinfo:
        Settings()
    assert [".".join(str(p) for p in e["loc"]) for e in excinfo.value.errors()] == [location]


def _voicebot(cwd: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """The real ``voicebot`` command with only ``variables`` of the VOICEBOT_* kind set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")} | variables
    return subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "voicebot"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("VOICEBOT_ASRR__DEVICE", "VOICEBOT_ASR__DEVICE"),
        ("VOICEBOT_TOWM", "VOICEBOT_TOWN"),
        ("VOICEBOT_DATABASE_ULR", "VOICEBOT_DATABASE_URL"),
        ("VOICEBOT_ASR_DEVICE", "VOICEBOT_ASR__DEVICE"),  # one underscore: the section delimiter is two
        ("VOICEBOT_SIP__STAF_URI", "VOICEBOT_SIP__STAFF_URI"),
    ],
)
def test_an_environment_variable_that_names_no_setting_stops_every_command(
    clean_env: Path, variable: str, closest: str
) -> None:
    """A typo in a VOICEBOT_* name is an error naming the closest setting, from commands that read the settings
    and from those that do not (``models list --models-dir``), with exit 1 and one line."""
    expected = [f"error: unknown setting {variable} (did you mean {closest}?)"]
    for command in (["models", "list", "--models-dir", str(clean_env)], ["kb", "stats"], ["serve"]):
        result = _voicebot(clean_env, *command, **{variable: "cuda"})
        assert (result.returncode, result.stdout) == (1, ""), (command, result.stderr)
        assert result.stderr.strip().splitlines() == expected, command


def test_settings_object_rejects_unknown_environment_names_and_keeps_the_known_ones(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicebot.settings import UnknownSettingError, unknown_environment_settings

    allowed = {
        "VOICEBOT_CONFIG": str(clean_env / "none.toml"),
        "VOICEBOT_HOME": str(clean_env),
        "VOICEBOT_TEST_DATABASE_URL": "postgresql://x@127.0.0.1/test",
        "VOICEBOT_SIP__PORT": "5070",
        "VOICEBOT_TTS__PIPER_VOICES__FR": "fr_FR-siwis-medium",  # a key inside a dict setting
        "voicebot_town": "Beispielheim",  # names are not case-sensitive, as in pydantic-settings
        "VOICEBOT_HTTP": '{"port": 8081}',  # a whole section as JSON
        "OTHER_VARIABLE": "x",
    }
    assert unknown_environment_settings(allowed) == []
    for name, value in allowed.items():
        monkeypatch.setenv(name, value)
    assert (Settings().sip.port, Settings().town, Settings().http.port) == (5070, "Beispielheim", 8081)
    monkeypatch.setenv("VOICEBOT_NOTHING_LIKE_ANY_SETTING_AT_ALL", "1")
    with pytest.raises(UnknownSettingError, match="unknown setting VOICEBOT_NOTHING_LIKE_ANY_SETTING_AT_ALL"):
        Settings()
