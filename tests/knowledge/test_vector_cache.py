"""The shared passage-vector cache gives back exactly what the model computes, and never a wrong vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge import embeddings, vector_cache

TEXTS = ["passage: Der Personalausweis kostet 37 Euro.", "passage: Das Bürgerbüro öffnet um acht Uhr."]


def test_cached_vectors_equal_computed_ones_and_a_damaged_file_is_computed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(vector_cache.ENVIRONMENT_VARIABLE, raising=False)
    computed = embeddings.embed_passages(TEXTS)
    monkeypatch.setenv(vector_cache.ENVIRONMENT_VARIABLE, str(tmp_path / "vectors"))
    first = embeddings.embed_passages(TEXTS)
    files = sorted((tmp_path / "vectors").rglob("*.f32"))
    assert len(files) == 2 and np.array_equal(first, computed)
    assert np.array_equal(vector_cache.VectorCache(tmp_path / "vectors").get_many(TEXTS)[1], computed[1])

    files[0].write_bytes(b"\0" * 10)  # damaged (a full disk, a killed writer): ignored and replaced
    again = embeddings.embed_passages([*TEXTS, "passage: Ein neuer Satz."])
    assert np.array_equal(again[:2], computed)
    assert files[0].stat().st_size == vector_cache.DIM * 4
    assert len(list((tmp_path / "vectors").rglob("*.f32"))) == 3
    assert not list((tmp_path / "vectors").rglob("*.tmp"))


def test_a_different_text_never_hits(tmp_path: Path) -> None:
    cache = vector_cache.VectorCache(tmp_path)
    cache.put_many(TEXTS[:1], np.ones((1, vector_cache.DIM), dtype=np.float32))
    assert set(cache.get_many([TEXTS[1], TEXTS[0] + " "])) == set()
    assert set(cache.get_many(TEXTS)) == {0}
