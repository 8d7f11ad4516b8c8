"""The model registry and ``voicebot models``: real assembly from registry packages, real CLI processes."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from voicebot.models import (
    EMBEDDED_EXTRA_HINT,
    REGISTRY,
    ModelError,
    ModelFile,
    ModelMissingError,
    ModelSpec,
    PackagePart,
    SourcePackageMissingError,
    embedded_specs,
    list_states,
    require_model,
    setup_models,
)
from voicebot.settings import PathSettings, Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
VOICEBOT = REPO_ROOT / ".venv" / "bin" / "voicebot"
ASSEMBLED = [f.relpath for spec in embedded_specs() for f in spec.files]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI; the timeout turns a hang into a failure."""
    return subprocess.run(
        [str(VOICEBOT), *args], capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT
    )


@pytest.fixture(scope="module")
def fresh_models_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """An empty directory set up once for this module (≈ 460 MB copied); returns it and the first outcomes."""
    models_dir = tmp_path_factory.mktemp("models")
    results = setup_models(models_dir)
    return models_dir, [r.outcome for r in results]


def test_setup_assembles_every_embedded_file(fresh_models_dir: tuple[Path, list[str]]) -> None:
    models_dir, outcomes = fresh_models_dir
    assert outcomes == ["assembled"] * len(ASSEMBLED)
    assert (models_dir / "whisper-base" / "model.bin").stat().st_size == 145_217_607
    assert json.loads((models_dir / "whisper-base" / "config.json").read_text())
    assert {s.spec.name: s.status for s in list_states(models_dir) if s.spec.profile == "embedded"} == {
        spec.name: "ok" for spec in embedded_specs()
    }


def test_second_setup_copies_nothing(fresh_models_dir: tuple[Path, list[str]]) -> None:
    models_dir, _ = fresh_models_dir
    before = {rel: (models_dir / rel).stat().st_mtime_ns for rel in ASSEMBLED}
    results = setup_models(models_dir)
    assert [r.outcome for r in results] == ["ok"] * len(ASSEMBLED)
    assert {rel: (models_dir / rel).stat().st_mtime_ns for rel in ASSEMBLED} == before


def test_corrupted_file_is_detected_and_repaired(fresh_models_dir: tuple[Path, list[str]]) -> None:
    models_dir, _ = fresh_models_dir
    config = models_dir / "whisper-base" / "config.json"
    original = config.read_bytes()
    config.write_bytes(original.replace(b"{", b"[", 1))  # same size, different content
    states = {s.spec.name: s for s in list_states(models_dir)}
    assert states["whisper-base"].status == "corrupt"
    assert "sha256" in states["whisper-base"].detail

    outcomes = {r.relpath: r.outcome for r in setup_models(models_dir, ["whisper-base"])}
    assert outcomes["whisper-base/config.json"] == "repaired"
    assert outcomes["whisper-base/model.bin"] == "ok"
    assert config.read_bytes() == original


def test_truncated_file_is_corrupt_by_size_without_hashing(fresh_models_dir: tuple[Path, list[str]]) -> None:
    models_dir, _ = fresh_models_dir
    voice_json = models_dir / "piper" / "en_US-joe-medium.onnx.json"
    original = voice_json.read_bytes()
    voice_json.write_bytes(original[:100])
    settings = Settings(paths=PathSettings(models_dir=models_dir))
    with pytest.raises(ModelMissingError, match="voicebot models setup"):
        require_model(settings, "piper-en_US-joe-medium")
    setup_models(models_dir, ["piper-en_US-joe-medium"])
    assert require_model(settings, "piper-en_US-joe-medium") == models_dir / "piper" / "en_US-joe-medium.onnx"


def test_require_model_returns_paths(fresh_models_dir: tuple[Path, list[str]]) -> None:
    models_dir, _ = fresh_models_dir
    settings = Settings(paths=PathSettings(models_dir=models_dir))
    assert require_model(settings, "whisper-base") == models_dir / "whisper-base"
    assert require_model(settings, "gemma-3-270m").name == "gemma-3-270m-q4_k_m.gguf"
    assert require_model(settings, "silero-vad").name == "silero_vad.onnx"
    assert require_model(settings, "smart-turn-v3.2-cpu").is_file()
    assert require_model(settings, "multilingual-e5-small").is_file()
    assert require_model(settings, "espeak-ng-de").name == "de_dict"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("whisper-base", "`voicebot models setup`"),
        ("piper-de_DE-thorsten-medium", "`voicebot models pull piper-de_DE-thorsten-medium`"),
        ("whisper-large-v3-turbo", "`voicebot models pull whisper-large-v3-turbo`"),
    ],
)
def test_missing_model_error_is_one_line_naming_the_command(tmp_path: Path, name: str, command: str) -> None:
    settings = Settings(paths=PathSettings(models_dir=tmp_path))
    with pytest.raises(ModelMissingError) as excinfo:
        require_model(settings, name)
    message = str(excinfo.value)
    assert "\n" not in message
    assert command in message
    assert name in message


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model 'whisper-huge'; known models: whisper-base"):
        require_model(Settings(paths=PathSettings(models_dir=tmp_path)), "whisper-huge")


def test_missing_source_package_names_the_extra(tmp_path: Path) -> None:
    spec = ModelSpec(
        name="needs-absent-package",
        profile="embedded",
        kind="asr",
        description="a model whose registry package is not installed",
        target="absent.bin",
        files=(
            ModelFile(
                "absent.bin", "0" * 64, 10, (PackagePart("voicebot_no_such_pkg", "no-such-pkg", "d/x"),)
            ),
        ),
    )
    with pytest.raises(SourcePackageMissingError) as excinfo:
        setup_models(tmp_path, registry=(spec,))
    assert "no-such-pkg" in str(excinfo.value)
    assert EMBEDDED_EXTRA_HINT in str(excinfo.value)
    assert not (tmp_path / "absent.bin").exists()


def test_registry_embedded_files_have_hashes_and_sizes() -> None:
    for spec in REGISTRY:
        if spec.profile == "embedded" and not spec.is_bundled:
            assert spec.files
            for model_file in spec.files:
                assert model_file.sha256 is not None and len(model_file.sha256) == 64
                assert model_file.size is not None and model_file.size > 0
                assert model_file.parts
        if spec.profile == "production":
            assert spec.hub is not None


def test_models_list_json(fresh_models_dir: tuple[Path, list[str]]) -> None:
    models_dir, _ = fresh_models_dir
    result = run_cli("models", "list", "--json", "--models-dir", str(models_dir))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    rows = {row["name"]: row for row in payload["models"]}
    assert rows["whisper-base"]["status"] == "ok"
    assert rows["whisper-base"]["size"] >= 145_217_607
    assert rows["whisper-base"]["profile"] == "embedded"
    assert rows["silero-vad"]["bundled"] is True
    assert rows["whisper-large-v3-turbo"] == rows["whisper-large-v3-turbo"] | {
        "status": "missing",
        "profile": "production",
        "kind": "asr",
        "install": "voicebot models pull whisper-large-v3-turbo",
    }


def test_cli_setup_is_idempotent_and_lists_ok(fresh_models_dir: tuple[Path, list[str]]) -> None:
    models_dir, _ = fresh_models_dir
    result = run_cli("models", "setup", "--models-dir", str(models_dir))
    assert result.returncode == 0, result.stderr
    assert f"{len(ASSEMBLED)} files verified, 0 assembled or repaired" in result.stderr


def test_cli_setup_refuses_a_production_model(tmp_path: Path) -> None:
    result = run_cli("models", "setup", "whisper-large-v3", "--models-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: 'whisper-large-v3' is a production model; run `voicebot models pull whisper-large-v3`"
    ]


def _offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    env.update(extra)
    return env


def test_pull_offline_fails_fast_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "models",
        "pull",
        "whisper-large-v3-turbo",
        "--models-dir",
        str(tmp_path),
        env=_offline_env(HF_HUB_OFFLINE="1"),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "offline" in lines[0] and "voicebot models pull whisper-large-v3-turbo" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_pull_with_unreachable_hub_fails_fast(tmp_path: Path) -> None:
    with (
        socket.socket() as probe
    ):  # a port nobody listens on: connection refused, like a machine without network
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = _offline_env(HF_ENDPOINT=f"http://127.0.0.1:{closed_port}")
    result = run_cli("models", "pull", "piper-de_DE-thorsten-medium", "--models-dir", str(tmp_path), env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot reach http://127.0.0.1:{closed_port}")
    assert not (tmp_path / "piper").exists()


# --- pull against a local stand-in for the Hugging Face hub (the real hub is not reachable here) -------------

HUB_COMMIT = "c0ffee" + "0" * 34
HUB_REPOS: dict[str, dict[str, bytes]] = {
    "rhasspy/piper-voices": {
        "de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx": b"onnx-bytes" * 100,
        "de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx.json": b'{"audio": {"sample_rate": 22050}}',
        "de/de_DE/kerstin/low/de_DE-kerstin-low.onnx": b"not pulled",
    },
    "mobiuslabsgmbh/faster-whisper-large-v3-turbo": {
        "config.json": b'{"alignment_heads": []}',
        "model.bin": b"ctranslate2" * 1000,
        "tokenizer.json": b"{}",
        "vocabulary.json": b"[]",
        "README.md": b"not pulled: outside the allow patterns",
    },
}


class HubHandler(BaseHTTPRequestHandler):
    """The three hub endpoints huggingface_hub uses: file HEAD/GET (resolve), repo info and repo tree."""

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _resolve(self) -> tuple[bytes | None, dict[str, str]]:
        path = self.path.split("?")[0]
        for repo, files in HUB_REPOS.items():
            prefix = f"/{repo}/resolve/"
            if path.startswith(prefix):
                data = files.get(path[len(prefix) :].partition("/")[2])
                etag = '"' + hashlib.sha1(data or b"").hexdigest() + '"'
                return data, {"X-Repo-Commit": HUB_COMMIT, "ETag": etag}
        return None, {}

    def do_HEAD(self) -> None:
        data, headers = self._resolve()
        if self.path == "/":
            self._send(200)
        elif data is None:
            self._send(404)
        else:
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/api/models/"):
            repo, kind, _ = path[len("/api/models/") :].partition("/tree/")
            if not kind:
                repo = repo.split("/revision/")[0]
            files = HUB_REPOS.get(repo)
            if files is None:
                self._send(404)
                return
            if kind:
                tree = [
                    {"type": "file", "path": n, "size": len(d), "oid": "0" * 40} for n, d in files.items()
                ]
                self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
            else:
                info = {"id": repo, "sha": HUB_COMMIT, "siblings": [{"rfilename": n} for n in files]}
                self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            return
        data, headers = self._resolve()
        self._send(404) if data is None else self._send(200, data, headers)


@pytest.fixture
def local_hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _pull_from(hub: str, name: str, models_dir: Path) -> subprocess.CompletedProcess[str]:
    """``voicebot models pull NAME`` against the local stand-in hub."""
    return run_cli("models", "pull", name, "--models-dir", str(models_dir), env=_offline_env(HF_ENDPOINT=hub))


def test_pull_single_files_then_verify_the_copy(local_hub: str, tmp_path: Path) -> None:
    result = _pull_from(local_hub, "piper-de_DE-thorsten-medium", tmp_path)
    assert result.returncode == 0, result.stderr
    voice = tmp_path / "piper" / "de_DE-thorsten-medium.onnx"
    repo_files = HUB_REPOS["rhasspy/piper-voices"]
    assert voice.read_bytes() == repo_files["de/de_DE/thorsten/medium/de_DE-thorsten-medium.onnx"]
    assert voice.with_suffix(".onnx.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".manifests", "piper"]  # no staging left behind
    manifest = json.loads((tmp_path / ".manifests" / "piper-de_DE-thorsten-medium.json").read_text())
    assert (
        manifest["files"]["piper/de_DE-thorsten-medium.onnx"]["sha256"]
        == hashlib.sha256(voice.read_bytes()).hexdigest()
    )

    settings = Settings(paths=PathSettings(models_dir=tmp_path))
    assert require_model(settings, "piper-de_DE-thorsten-medium") == voice
    voice.write_bytes(b"X" * voice.stat().st_size)  # damaged in transit to the offline server
    states = {s.spec.name: s for s in list_states(tmp_path)}
    assert states["piper-de_DE-thorsten-medium"].status == "corrupt"


def test_pull_snapshot_takes_only_the_model_files(local_hub: str, tmp_path: Path) -> None:
    result = _pull_from(local_hub, "whisper-large-v3-turbo", tmp_path)
    assert result.returncode == 0, result.stderr
    target = tmp_path / "whisper-large-v3-turbo"
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.json",
    ]
    settings = Settings(paths=PathSettings(models_dir=tmp_path))
    assert require_model(settings, "whisper-large-v3-turbo") == target
    assert {s.spec.name: s.status for s in list_states(tmp_path)}["whisper-large-v3-turbo"] == "ok"


def test_pull_of_a_missing_file_is_one_line(local_hub: str, tmp_path: Path) -> None:
    """The hub answers but lacks the file (e.g. a renamed voice): one line, exit 1, nothing half-written."""
    result = _pull_from(local_hub, "qwen2.5-1.5b-instruct", tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: pulling 'qwen2.5-1.5b-instruct' from Qwen/")
    assert not list(tmp_path.glob("*.gguf"))
