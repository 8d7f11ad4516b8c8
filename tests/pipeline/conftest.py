"""Real models for the voice pipeline tests, loaded once per session, and a builder for simulated calls.

The answer engine is the real one (``knowledge.engine.build_answer_engine``) over a handful of the sample KB's
pages, so that indexing takes seconds instead of embedding all ~80 pages.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from knowledge.config import SAMPLE_KB_DIR
from voicebot.pipeline.resources import CallResources
from voicebot.settings import PathSettings, Settings

KB_PAGES = (
    "buergerbuero-kontakt",
    "buergerbuero-kontakt-en",
    "fundbuero",
    "personalausweis-beantragen",
    "personalausweis-beantragen-en",
    "sperrmuell",
    "wohnsitz-anmelden",
    "kfz-zulassung",
    "rathaus-kontakt",
)
SHORT_GREETING = "Guten Tag, hier spricht der KI-Assistent."


@pytest.fixture(scope="session")
def pipeline_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pipeline")
    kb = base / "kb"
    kb.mkdir()
    for page in KB_PAGES:
        shutil.copy(SAMPLE_KB_DIR / f"{page}.md", kb / f"{page}.md")
    return base


def make_settings(base: Path, models_dir: Path, calls_dir: Path) -> Settings:
    return Settings(
        paths=PathSettings(
            models_dir=models_dir,
            index_dir=base / "index",
            calls_dir=calls_dir,
            kb_sources=[base / "kb"],
        )
    )


@pytest.fixture(scope="session")
def call_resources(pipeline_base_dir: Path, embedded_models_dir: Path) -> CallResources:
    settings = make_settings(pipeline_base_dir, embedded_models_dir, pipeline_base_dir / "calls")
    return CallResources.load(settings)


@pytest.fixture
def call_settings(
    pipeline_base_dir: Path, embedded_models_dir: Path, tmp_path: Path
) -> Callable[..., Settings]:
    """Settings for one call (own calls_dir); keyword arguments override ``settings.call`` fields."""

    def build(**call_fields: object) -> Settings:
        settings = make_settings(pipeline_base_dir, embedded_models_dir, tmp_path / "calls")
        settings.call.greeting = SHORT_GREETING
        settings.call.silence_timeout_s = 30.0  # pauses in test audio are not meant as silence
        for name, value in call_fields.items():
            setattr(settings.call, name, value)
        return settings

    return build
