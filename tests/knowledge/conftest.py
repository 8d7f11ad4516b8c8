"""Fixtures for knowledge tests: a small fixture knowledge base, a hand-made PDF, and the sample KB index.

The sample KB index is built once per test session (embedding ≈ 80 pages takes tens of seconds on 2 cores) and
shared by every test that needs real retrieval over Musterstadt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kb_fixtures import write_fixture_kb

from knowledge.config import SAMPLE_KB_DIR
from knowledge.index import KnowledgeIndex


@pytest.fixture
def fixture_kb(tmp_path: Path) -> Path:
    return write_fixture_kb(tmp_path / "kb")


@pytest.fixture(scope="session")
def sample_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the shipped Musterstadt sample KB, built once per session."""
    index_dir = tmp_path_factory.mktemp("sample-index")
    report = KnowledgeIndex.open(index_dir).ingest([SAMPLE_KB_DIR])
    assert report.chunks > 0, report.skipped
    return index_dir
