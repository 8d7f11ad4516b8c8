"""Shared test set-up: offline hub, no developer environment, and the embedded models assembled once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download models

REPO_ROOT = Path(__file__).resolve().parent.parent
# Passage vectors computed once for the whole session and its server processes, kept between runs like var/index
# (the sample pages are indexed in several folders; each would otherwise embed them again for minutes).
os.environ.setdefault("KNOWLEDGE_VECTOR_CACHE", str(REPO_ROOT / "var" / "cache" / "vectors"))


@pytest.fixture(scope="session")
def embedded_models_dir() -> Path:
    """The repository's ``var/models`` with every embedded model assembled and verified (idempotent)."""
    from voicebot.models import setup_models

    models_dir = REPO_ROOT / "var" / "models"
    setup_models(models_dir)
    return models_dir


@pytest.fixture(scope="session", autouse=True)
def no_developer_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Settings built by the tests, and by the voicebot processes they start, see only what a test sets.

    No ``VOICEBOT_*`` variable of the developer's shell (``VOICEBOT_TEST_*`` configure the tests themselves and
    stay), no ``voicebot.toml`` (``VOICEBOT_CONFIG`` names a file that does not exist; a test that wants a file
    sets its own), and a working directory of the session's own that is also ``VOICEBOT_HOME``, so that relative
    default paths (``var/calls``, ``var/index``) land there and not in the checkout. Session-wide, so that session fixtures are covered too;
    a test's own ``monkeypatch`` changes are undone back to this state.
    """
    workdir = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("VOICEBOT_") and not name.startswith("VOICEBOT_TEST_"):
                patch.delenv(name)
        patch.setenv("VOICEBOT_CONFIG", str(workdir / "no-voicebot.toml"))
        patch.setenv("VOICEBOT_HOME", str(workdir))  # the root of relative paths (else: the checkout)
        patch.chdir(workdir)
        # The suite runs at any hour: hand-off tests expect staff to be rung, not the office to be closed. The
        # call-back tests (tests/pipeline/test_callback.py, tests/interop/test_callback_call.py) set their own hours.
        patch.setenv("VOICEBOT_OFFICE_HOURS__ALWAYS_OPEN", "true")
        yield workdir


@pytest.fixture(autouse=True)
def fresh_process_settings() -> Iterator[None]:
    """``get_settings()`` caches the process settings: a command a test runs in-process (CliRunner) must read the
    environment that test set, not what an earlier test of the same worker left cached (order-independent, also
    under pytest-xdist)."""
    from voicebot.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
