"""Shared test set-up: offline hub, and the embedded models assembled once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download models

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def embedded_models_dir() -> Path:
    """The repository's ``var/models`` with every embedded model assembled and verified (idempotent)."""
    from voicebot.models import setup_models

    models_dir = REPO_ROOT / "var" / "models"
    setup_models(models_dir)
    return models_dir
