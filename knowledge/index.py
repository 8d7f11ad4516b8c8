"""The persistent, incremental knowledge index under ``KnowledgeConfig.index_dir``.

Layout (one *generation* per ingest, switched atomically by rewriting ``manifest.json`` last)::

    manifest.json            version, generation, source files {path: sha256, doc/chunk ids, error}
    chunks-<gen>.json        the chunks in row order, each with the hash of the text it was embedded from
    embeddings-<gen>.npy     float32 (n_chunks, 384), row i belongs to chunk i
    facts-<gen>.npz          e5 vectors of the pages' fact units (knowledge.facts), keyed by unit text hash

Only files whose sha256 changed are parsed again, and only chunks whose embedding text changed are embedded
again. A file that became broken keeps its previously indexed chunks (and is reported); files that disappeared
are dropped only with ``prune=True``. BM25 is rebuilt from the chunks at load (a few ms for the sample KB).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowledge import areas, embeddings, facts, layers, packs
from knowledge.chunking import LoadError, chunk_document, passage_text
from knowledge.loaders import discover, load_file
from knowledge.types import Chunk

if TYPE_CHECKING:
    from knowledge.config import KnowledgeConfig, RetrievalConfig
    from knowledge.retrieval import HybridRetriever

INDEX_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".ingest.lock"

# progress(phase, done, total): phase is "read" (files) or "embed" (chunks).
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class IngestReport:
    """What one ingest run did. File counts for added/updated/unchanged; skipped lists (path, reason)."""

    documents: int = 0  # documents in the index afterwards
    chunks: int = 0  # chunks in the index afterwards
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # files pruned
    embedded: int = 0  # chunks whose embedding was computed in this run
    skipped: list[tuple[str, str]] = field(default_factory=list)
    kept_stale: list[str] = field(default_factory=list)  # broken files whose earlier chunks were kept

    @property
    def files_indexed(self) -> int:
        return self.added + self.updated + self.unchanged


@dataclass
class _FileEntry:
    sha256: str
    chunk_ids: list[str]
    error: str = ""
    error_sha256: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def chunk_to_dict(chunk: Chunk) -> dict[str, Any]:
    data = asdict(chunk)
    data["synonyms"] = list(chunk.synonyms)
    data["areas"] = list(chunk.areas)
    return data


def chunk_from_dict(data: dict[str, Any]) -> Chunk:
    fields = {k: v for k, v in data.items() if k in Chunk.__dataclass_fields__}
    fields["synonyms"] = tuple(fields.get("synonyms", ()))
    fields["areas"] = tuple(fields.get("areas", ()))
    return Chunk(**fields)


class KnowledgeIndex:
    """Chunks + embeddings + source manifest of one knowledge base, persisted in ``index_dir``."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.generation = 0
        self.files: dict[str, _FileEntry] = {}
        self.chunks: list[Chunk] = []
        self.embeddings = np.zeros((0, embeddings.DIM), dtype=np.float32)
        self._embed_hashes: list[str] = []
        self._by_id: dict[str, int] = {}
        self.fact_vectors: dict[str, np.ndarray] = {}  # knowledge.facts.unit_key → e5 vector

    # --- loading ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, index_dir: Path | str) -> KnowledgeIndex:
        """Open the index in ``index_dir``; a missing or empty directory gives an empty index."""
        index = cls(Path(index_dir))
        for attempt in range(3):
            try:
                index._read()
                return index
            except FileNotFoundError:
                # An ingest in another process switched generations between our reads: read the new one.
                if attempt == 2:
                    raise ValueError(
                        f"index in {index.index_dir} is incomplete; run 'voicebot kb ingest'"
                    ) from None
        return index

    def _read(self) -> None:
        manifest_path = self.index_dir / MANIFEST
        if not manifest_path.is_file():
            return
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("version") != INDEX_VERSION:
            raise ValueError(
                f"index in {self.index_dir} has version {manifest.get('version')}, expected {INDEX_VERSION}; "
                "delete the directory and run 'voicebot kb ingest' again"
            )
        rows = json.loads((self.index_dir / manifest["chunks"]).read_text(encoding="utf-8"))
        vectors = np.load(self.index_dir / manifest["embeddings"])
        if vectors.shape != (len(rows), embeddings.DIM):
            raise ValueError(f"index in {self.index_dir} is inconsistent; delete it and ingest again")
        self.generation = int(manifest["generation"])
        self.files = {path: _FileEntry(**entry) for path, entry in manifest["files"].items()}
        self.chunks = [chunk_from_dict(row["chunk"]) for row in rows]
        self._embed_hashes = [row["embed_hash"] for row in rows]
        self.embeddings = vectors
        self._by_id = {chunk.id: i for i, chunk in enumerate(self.chunks)}
        self.fact_vectors = {}
        if manifest.get("fact_vectors"):
            with np.load(self.index_dir / manifest["fact_vectors"]) as stored:
                keys, rows = stored["keys"], stored["vectors"]
                self.fact_vectors = {str(key): rows[i] for i, key in enumerate(keys)}

    # --- queries ---------------------------------------------------------------------------------------------

    def get(self, chunk_id: str) -> Chunk | None:
        row = self._by_id.get(chunk_id)
        return None if row is None else self.chunks[row]

    @property
    def document_ids(self) -> list[str]:
        return sorted({chunk.doc_id for chunk in self.chunks})

    def __len__(self) -> int:
        return len(self.chunks)

    def retriever(
        self, config: RetrievalConfig | None = None, area_ids: Sequence[str] = ()
    ) -> HybridRetriever:
        """The retriever over this index as the town sees it: its layer over the base (knowledge.layers), and with
        ``area_ids`` pages of other areas redirected (knowledge.areas)."""
        from knowledge.retrieval import HybridRetriever

        chunks = areas.for_town(layers.resolve(self.chunks)[0], area_ids)
        return HybridRetriever(chunks, self.embeddings, config, self.fact_vectors)

    # --- ingest ----------------------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[Path | str],
        progress: ProgressCallback | None = None,
        prune: bool = False,
    ) -> IngestReport:
        """Index new and changed files under ``paths``; see the module docstring for the rules."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with (self.index_dir / LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one ingest at a time per index (CLI and service may both run)
            try:
                self._read()  # pick up what another ingest wrote while we waited
                return self._ingest(paths, progress, prune)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _ingest(
        self, paths: Iterable[Path | str], progress: ProgressCallback | None, prune: bool
    ) -> IngestReport:
        report = IngestReport()
        path_list = [Path(p) for p in paths]
        for path in path_list:
            if not path.exists():
                report.skipped.append((str(path), "no such file or directory"))
        files = discover(p for p in path_list if p.exists())

        # Per source file: its chunks with (embed hash, embedding or None = to embed).
        by_file: dict[str, list[tuple[Chunk, str, np.ndarray | None]]] = {}
        for key, known in self.files.items():
            by_file[key] = [self._row(cid) for cid in known.chunk_ids if cid in self._by_id]
        old_vectors = {h: self.embeddings[i] for i, h in enumerate(self._embed_hashes)}
        owner = {chunk.doc_id: key for key, rows in by_file.items() for chunk, _, _ in rows}

        for done, path in enumerate(files, start=1):
            key = str(path)
            entry = self.files.get(key)
            try:
                sha = _sha256(path)
            except OSError as exc:
                self._skip(report, key, f"cannot read file: {exc}", entry, "")
                continue
            if entry is not None and entry.sha256 == sha and not entry.error:
                report.unchanged += 1
            else:
                self._reingest(report, path, sha, by_file, old_vectors, owner)
            if progress is not None:
                progress("read", done, len(files))

        if prune:
            for key in list(self.files):
                if not Path(key).exists():
                    del self.files[key]
                    by_file.pop(key, None)
                    report.removed += 1

        self._rebuild(by_file, report, progress)
        report.documents = len(self.document_ids)
        report.chunks = len(self.chunks)
        return report

    def _row(self, chunk_id: str) -> tuple[Chunk, str, np.ndarray | None]:
        row = self._by_id[chunk_id]
        return self.chunks[row], self._embed_hashes[row], self.embeddings[row]

    def _skip(self, report: IngestReport, key: str, reason: str, entry: _FileEntry | None, sha: str) -> None:
        report.skipped.append((key, reason))
        if entry is not None and entry.chunk_ids:
            entry.error, entry.error_sha256 = reason, sha
            report.kept_stale.append(key)

    def _reingest(
        self,
        report: IngestReport,
        path: Path,
        sha: str,
        by_file: dict[str, list[tuple[Chunk, str, np.ndarray | None]]],
        old_vectors: dict[str, np.ndarray],
        owner: dict[str, str],
    ) -> None:
        key = str(path)
        entry = self.files.get(key)
        try:
            result = load_file(path)
        except LoadError as exc:
            self._skip(report, key, str(exc), entry, sha)
            return
        report.skipped.extend(result.warnings)
        if packs.in_pack(path):  # an installed knowledge pack is the base the town's pages amend
            for document in result.documents:
                if not document.meta.layer:
                    document.meta = replace(document.meta, layer=layers.BASE)
        # Document ids are citation keys: the first file that claims one keeps it.
        mine = {doc_id for doc_id, k in owner.items() if k == key}
        new_rows: list[tuple[Chunk, str, np.ndarray | None]] = []
        duplicates: list[tuple[str, str]] = []
        for document in result.documents:
            doc_id = document.meta.doc_id
            previous = owner.get(doc_id, key)
            if previous != key and not Path(previous).exists():
                self._forget_moved(previous, by_file, owner)  # the page moved to this file: take it over
            elif previous != key:
                duplicates.append((key, f"duplicate id {doc_id!r} (already used by {owner[doc_id]})"))
                continue
            owner[doc_id] = key
            for chunk in chunk_document(document):
                embed_hash = _text_hash(passage_text(chunk))
                new_rows.append((chunk, embed_hash, old_vectors.get(embed_hash)))
        if not new_rows:
            reason = "; ".join(r for _, r in duplicates) or "no usable documents in file"
            self._skip(report, key, reason, entry, sha)
            return
        report.skipped.extend(duplicates)
        for doc_id in mine - {c.doc_id for c, _, _ in new_rows}:
            del owner[doc_id]
        if entry is None or not entry.chunk_ids:
            report.added += 1
        else:
            report.updated += 1
        by_file[key] = new_rows
        self.files[key] = _FileEntry(sha256=sha, chunk_ids=[c.id for c, _, _ in new_rows])

    def _forget_moved(
        self, key: str, by_file: dict[str, list[tuple[Chunk, str, np.ndarray | None]]], owner: dict[str, str]
    ) -> None:
        """Drop a vanished file whose page ids reappear elsewhere (renamed/moved file, moved repository)."""
        by_file.pop(key, None)
        self.files.pop(key, None)
        for doc_id in [d for d, k in owner.items() if k == key]:
            del owner[doc_id]

    def _rebuild(
        self,
        by_file: dict[str, list[tuple[Chunk, str, np.ndarray | None]]],
        report: IngestReport,
        progress: ProgressCallback | None,
    ) -> None:
        rows = [row for key in sorted(by_file) if key in self.files for row in by_file[key]]
        todo = [i for i, (_, _, vector) in enumerate(rows) if vector is None]
        fresh = embeddings.embed_passages(
            [passage_text(rows[i][0]) for i in todo],
            progress=(lambda d, t: progress("embed", d, t)) if progress else None,
        )
        report.embedded = len(todo)
        matrix = np.zeros((len(rows), embeddings.DIM), dtype=np.float32)
        for i, (_, _, vector) in enumerate(rows):
            if vector is not None:
                matrix[i] = vector
        for j, i in enumerate(todo):
            matrix[i] = fresh[j]
        changed = bool(todo or report.added or report.updated or report.removed or report.kept_stale)
        self.chunks = [c for c, _, _ in rows]
        self._embed_hashes = [h for _, h, _ in rows]
        self.embeddings = matrix
        self._by_id = {chunk.id: i for i, chunk in enumerate(self.chunks)}
        changed = self._embed_fact_units(progress) or changed
        if changed or not (self.index_dir / MANIFEST).exists():
            self.save()

    def _embed_fact_units(self, progress: ProgressCallback | None) -> bool:
        """Embed the fact units (list items, sentences) not embedded before; drop vectors of vanished units.

        Fact answers compare the question with each unit of the found page; embedding them here keeps that a
        dot product at question time. Returns whether the stored vectors changed.
        """
        texts: dict[str, str] = {}
        # the units as stored and as the town's layer amends them (what the retriever will ask about)
        for chunk in [*self.chunks, *layers.resolve(self.chunks)[0]]:
            for unit in facts.fact_units(chunk):
                texts.setdefault(unit.key, unit.embed_text)
        todo = [key for key in texts if key not in self.fact_vectors]
        fresh = embeddings.embed_passages(
            [texts[key] for key in todo],
            progress=(lambda d, t: progress("facts", d, t)) if progress else None,
        )
        kept = {key: vector for key, vector in self.fact_vectors.items() if key in texts}
        changed = bool(todo) or len(kept) != len(self.fact_vectors)
        kept.update({key: fresh[i] for i, key in enumerate(todo)})
        self.fact_vectors = kept
        return changed

    # --- saving ----------------------------------------------------------------------------------------------

    def save(self) -> None:
        """Write a new generation, switch the manifest to it atomically, then delete the old generation."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        old_generation = self.generation
        self.generation += 1
        chunks_name = f"chunks-{self.generation}.json"
        embeddings_name = f"embeddings-{self.generation}.npy"
        facts_name = f"facts-{self.generation}.npz"
        rows = [
            {"chunk": chunk_to_dict(c), "embed_hash": h}
            for c, h in zip(self.chunks, self._embed_hashes, strict=True)
        ]
        _atomic_write_bytes(
            self.index_dir / chunks_name, json.dumps(rows, ensure_ascii=False).encode("utf-8")
        )
        buffer = io.BytesIO()
        np.save(buffer, self.embeddings.astype(np.float32))
        _atomic_write_bytes(self.index_dir / embeddings_name, buffer.getvalue())
        buffer = io.BytesIO()
        keys = sorted(self.fact_vectors)
        vectors = np.stack([self.fact_vectors[k] for k in keys]) if keys else np.zeros((0, embeddings.DIM))
        np.savez(buffer, keys=np.array(keys, dtype="U40"), vectors=vectors.astype(np.float32))
        _atomic_write_bytes(self.index_dir / facts_name, buffer.getvalue())
        manifest = {
            "version": INDEX_VERSION,
            "generation": self.generation,
            "chunks": chunks_name,
            "embeddings": embeddings_name,
            "fact_vectors": facts_name,
            "files": {key: asdict(entry) for key, entry in sorted(self.files.items())},
        }
        _atomic_write_bytes(
            self.index_dir / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8")
        )
        for name in (
            f"chunks-{old_generation}.json",
            f"embeddings-{old_generation}.npy",
            f"facts-{old_generation}.npz",
        ):
            if old_generation and old_generation != self.generation:
                (self.index_dir / name).unlink(missing_ok=True)


def index_generation(index_dir: Path | str) -> int | None:
    """The generation ``manifest.json`` in ``index_dir`` points to (None: no index yet, or unreadable now).

    Cheap (one small file): a running server polls it to notice a ``voicebot kb ingest`` of another process.
    The manifest is replaced atomically after the generation's files are written, so a changed number means a
    complete new generation is there to load."""
    try:
        manifest = json.loads((Path(index_dir) / MANIFEST).read_text(encoding="utf-8"))
        return int(manifest["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_retriever(config: KnowledgeConfig, refresh: bool = True) -> HybridRetriever:
    """The retriever over ``config.index_dir``, brought up to date with ``config.kb_sources``.

    An empty or missing index is built from the sources, so the answer engine works on a fresh machine without a
    separate ``voicebot kb ingest``. With ``refresh`` (default) changed source pages are re-indexed too; when
    nothing changed this only hashes the files (milliseconds) and loads no model. A read-only index directory is
    used as it is.
    """
    index = KnowledgeIndex.open(config.index_dir)
    sources = [Path(p) for p in config.kb_sources if Path(p).exists()]
    if sources and (refresh or not index.chunks):
        try:
            index.ingest(sources)
        except OSError:
            if not index.chunks:
                raise
    if not index.chunks:
        listed = ", ".join(str(p) for p in config.kb_sources) or "(none configured)"
        raise FileNotFoundError(f"no knowledge pages found in {listed}; run 'voicebot kb ingest PATH'")
    return index.retriever(config.retrieval, config.answer.area_ids)
