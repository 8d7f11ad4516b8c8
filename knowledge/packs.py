"""Knowledge packs: one versioned archive of a town's pages that another town can import as its base layer.

A pack is a gzip'd tar with ``pack.json`` (format, format version, name, version, licence, author town, source,
language, the sha256 of every file, the evaluation figures measured at export), the pages under ``pages/`` (their
synonyms travel in the pages: front matter, XZuFi Begriffe) and the pack's own evaluation questions under
``eval/questions.yaml``. A pack is untrusted input: members must be plain files with safe relative names under
those folders, counts and sizes are bounded, every hash must match, and nothing is written before all checks
passed. Installed, the pack's folder keeps its ``pack.json``, which makes its pages the base layer
(knowledge.layers) when indexed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from knowledge.loaders import discover

FORMAT = "voicebot-kb-pack"
FORMAT_VERSION = 1
MANIFEST = "pack.json"
QUESTIONS = "eval/questions.yaml"
MAX_MEMBERS = 20_000
MAX_TOTAL_BYTES = 200 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class PackError(ValueError):
    """A pack that cannot be exported or imported; the message says why in one line."""


@dataclass
class PackInfo:
    name: str
    version: str
    licence: str = "EUPL-1.2"
    author: str = ""  # the town that made it
    source: str = ""  # where its content comes from (editorial system, website, ...)
    language: str = "de"


@dataclass
class Manifest:
    info: PackInfo
    files: dict[str, str]  # archive path → sha256
    evaluation: dict[str, Any] = field(default_factory=dict)  # figures measured at export (EvalReport fields)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        data = {
            "format": self.format,
            "format_version": self.format_version,
            **asdict(self.info),
            "files": dict(sorted(self.files.items())),
            "evaluation": self.evaluation,
        }
        return json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PackError(f"{MANIFEST} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PackError(f"not a knowledge pack ({MANIFEST} lacks format {FORMAT!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise PackError(
                f"pack format version {data.get('format_version')!r} is not supported (this version reads "
                f"{FORMAT_VERSION})"
            )
        files = data.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise PackError(f"{MANIFEST} has no valid 'files' table")
        try:
            info = PackInfo(**{k: str(data[k]) for k in PackInfo.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise PackError(f"{MANIFEST} lacks {exc}") from None
        evaluation = data.get("evaluation")
        figures: dict[str, Any] = evaluation if isinstance(evaluation, dict) else {}
        return cls(info, {str(k): v for k, v in files.items()}, figures)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if (
        path.is_absolute()
        or not path.parts
        or any(part in ("", ".", "..") or part.startswith(".") for part in path.parts)
        or "\\" in name
        or (path.parts[0] not in ("pages", "eval") and name != MANIFEST)
    ):
        raise PackError(f"unsafe or unexpected file name in pack: {name!r}")
    return path


def export_pack(
    source: Path, out: Path, info: PackInfo, questions: Path | None, evaluation: dict[str, Any]
) -> Manifest:
    """Write the loadable pages under ``source`` (and the question set) as a pack to ``out``."""
    if not info.name or not info.version:
        raise PackError("a pack needs a name and a version")
    pages = discover([source])
    if not pages:
        raise PackError(f"no knowledge pages under {source}")
    contents: dict[str, bytes] = {}
    root = source.resolve()
    for page in pages:
        contents[f"pages/{page.relative_to(root).as_posix()}"] = page.read_bytes()
    if questions is not None:
        contents[QUESTIONS] = questions.read_bytes()
    manifest = Manifest(info, {name: _sha256(data) for name, data in contents.items()}, evaluation)
    contents = {MANIFEST: manifest.to_json(), **contents}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_archive(contents))
    return manifest


def _archive(contents: dict[str, bytes]) -> bytes:
    """The tar.gz of ``contents``, byte-identical for identical contents.

    Members are sorted, owned by nobody and dated 0, and the gzip header carries neither a time nor a file name
    (``tarfile.open(..., "w:gz")`` would write both), so a pack built twice from the same pages is the same file.
    """
    raw = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in sorted(contents):
            member = tarfile.TarInfo(name)
            member.size = len(contents[name])
            member.mode = 0o644
            member.mtime = 0
            archive.addfile(member, io.BytesIO(contents[name]))
    return raw.getvalue()


SAMPLE_NAME = "musterstadt-basis"
SAMPLE_AUTHOR = "Musterstadt"
SAMPLE_SOURCE = "Beispielbasis des Voicebot-Projekts (knowledge/sample/musterstadt)"


def sample_info() -> PackInfo:
    """The manifest data of the shipped Musterstadt pack; its version is the project's, so it changes with it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        project_version = version("voicebot")
    except PackageNotFoundError:  # run from a checkout that was never installed
        project_version = "0"
    return PackInfo(SAMPLE_NAME, project_version, "EUPL-1.2", SAMPLE_AUTHOR, SAMPLE_SOURCE, "de")


def _members(archive: tarfile.TarFile) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    total = 0
    for number, member in enumerate(archive):
        if number >= MAX_MEMBERS:
            raise PackError(f"pack has more than {MAX_MEMBERS} files")
        if member.isdir():
            continue
        if not member.isfile():
            raise PackError(f"pack member {member.name!r} is not a plain file (links are refused)")
        name = _safe_name(member.name).as_posix()
        total += member.size
        if total > MAX_TOTAL_BYTES or (name == MANIFEST and member.size > MAX_MANIFEST_BYTES):
            raise PackError(f"pack is larger than {MAX_TOTAL_BYTES // (1024 * 1024)} MB unpacked")
        extracted = archive.extractfile(member)
        if extracted is None or name in contents:
            raise PackError(f"pack member {name!r} is unreadable or repeated")
        contents[name] = extracted.read(member.size + 1)
        if len(contents[name]) != member.size:
            raise PackError(f"pack member {name!r} has the wrong size")
    return contents


def read_pack(pack: Path) -> tuple[Manifest, dict[str, bytes]]:
    """The pack's manifest and files, after every check (format version, names, sizes, hashes)."""
    try:
        with tarfile.open(pack, "r:gz") as archive:
            contents = _members(archive)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise PackError(f"cannot read pack {pack}: {exc}") from None
    if MANIFEST not in contents:
        raise PackError(f"not a knowledge pack (no {MANIFEST})")
    manifest = Manifest.from_json(contents.pop(MANIFEST))
    for name in manifest.files:
        _safe_name(name)
    if set(contents) != set(manifest.files):
        missing = sorted(set(manifest.files) - set(contents))
        extra = sorted(set(contents) - set(manifest.files))
        raise PackError(f"pack files do not match its manifest (missing {missing}, not listed {extra})")
    for name, data in contents.items():
        if _sha256(data) != manifest.files[name]:
            raise PackError(f"hash mismatch for {name}: the pack was changed or damaged")
    return manifest, contents


def install_pack(manifest: Manifest, contents: dict[str, bytes], target: Path) -> list[Path]:
    """Write a checked pack to ``target`` (empty, absent, or an earlier version of the same pack).

    Returns the written page files. Files are written to a temporary folder next to ``target`` first and moved
    into place only when complete.
    """
    if target.exists():
        earlier = target / MANIFEST
        if any(target.iterdir()) and not earlier.is_file():
            raise PackError(f"{target} is not empty and holds no pack: refusing to overwrite it")
        if earlier.is_file():
            try:
                name = json.loads(earlier.read_text(encoding="utf-8")).get("name")
            except ValueError:
                name = None
            if name != manifest.info.name:
                raise PackError(f"{target} holds another pack ({name!r}): refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        written = []
        for name, data in contents.items():
            path = staging.joinpath(*PurePosixPath(name).parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(target.joinpath(*PurePosixPath(name).parts))
        (staging / MANIFEST).write_bytes(manifest.to_json())
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [p for p in written if p.parts[len(target.parts)] == "pages"]


def in_pack(path: Path) -> bool:
    """Whether a source file belongs to an installed pack (a ``pack.json`` above it): its pages are base layer."""
    return any((parent / MANIFEST).is_file() for parent in path.resolve().parents)


FIGURES = ("recall_at_1", "recall_at_3", "action_accuracy", "answer_accuracy", "groundedness", "fact_recall")


def evaluate_pages(pages: Path, questions: Path, town: str) -> dict[str, Any]:
    """The pack's figures: its question set over an index of its pages alone (a fresh temporary index)."""
    import asyncio

    from knowledge.config import KnowledgeConfig
    from knowledge.engine import build_answer_engine
    from knowledge.evaluation import evaluate, load_eval_set
    from knowledge.index import KnowledgeIndex

    items = load_eval_set(questions)
    with tempfile.TemporaryDirectory(prefix="pack-eval-") as index_dir:
        index = KnowledgeIndex.open(Path(index_dir))
        index.ingest([pages])
        config = KnowledgeConfig(town=town, index_dir=Path(index_dir), kb_sources=())
        retriever = index.retriever(config.retrieval)
        engine = build_answer_engine(config, retriever, mode="extractive")
        report = asyncio.run(evaluate(items, engine, retriever, list(retriever.chunks)))
    data = report.to_dict(with_items=False)
    return {"items": report.items, **{name: data[name] for name in FIGURES}}
