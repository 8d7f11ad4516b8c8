"""Knowledge packs (knowledge.packs, ``voicebot kb pack export|import``): real archives, real index and e5."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from knowledge import layers
from knowledge.config import SAMPLE_KB_DIR
from knowledge.evaluation import DEFAULT_SET
from knowledge.index import KnowledgeIndex
from knowledge.loaders import discover
from knowledge.packs import FORMAT_VERSION, SAMPLE_NAME, PackError, read_pack
from voicebot.cli import app

XZUFI = Path(__file__).resolve().parents[1] / "data" / "xzufi"
runner = CliRunner()


def _export(source: Path, out: Path, questions: Path | None = None) -> str:
    args = ["kb", "pack", "export", str(source), "--out", str(out), "--name", "test-pack", "--version", "1.0"]
    args += ["--author", "Musterstadt", "--source", "Testdaten"]
    if questions is not None:
        args += ["--questions", str(questions)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_musterstadt_pack_imports_into_an_empty_folder_and_reproduces_its_figures(tmp_path: Path) -> None:
    questions = tmp_path / "questions.yaml"
    items = yaml.safe_load(DEFAULT_SET.read_text(encoding="utf-8"))[:12]
    questions.write_text(yaml.safe_dump(items, allow_unicode=True), encoding="utf-8")
    pack = tmp_path / "musterstadt.kbpack"
    result = runner.invoke(app, ["kb", "pack", "sample", "--out", str(pack), "--questions", str(questions)])
    assert result.exit_code == 0, result.output
    exported = result.output
    manifest, contents = read_pack(pack)
    assert manifest.info.name == SAMPLE_NAME and manifest.info.author == "Musterstadt"
    assert manifest.info.licence == "EUPL-1.2"
    assert manifest.evaluation["items"] == 12 and "recall_at_1" in manifest.evaluation
    assert f"recall_at_1: {manifest.evaluation['recall_at_1']}" in exported
    assert "pages/personalausweis-beantragen.md" in contents and "eval/questions.yaml" in contents
    empty = tmp_path / "neu"
    result = runner.invoke(
        app, ["kb", "pack", "import", str(pack), "--into", str(empty), "--index-dir", str(tmp_path / "index")]
    )
    assert result.exit_code == 0, result.output
    for figure in ("recall_at_1", "recall_at_3", "action_accuracy", "groundedness", "fact_recall"):
        assert f"{figure}: {manifest.evaluation[figure]}  (wie beim Export)" in result.output
    index = KnowledgeIndex.open(tmp_path / "index")
    assert "personalausweis-beantragen" in index.document_ids
    assert {layers.layer_of(c) for c in index.chunks} == {"base"}  # an installed pack is the base layer


def test_sample_pack_builds_are_byte_identical(tmp_path: Path) -> None:
    """The Musterstadt pack is built, not committed: the same checkout must always give the same file."""
    first, second = tmp_path / "a" / "musterstadt.kbpack", tmp_path / "b" / "other-name.kbpack"
    for out in (first, second):
        result = runner.invoke(app, ["kb", "pack", "sample", "--out", str(out), "--no-evaluate"])
        assert result.exit_code == 0, result.output
        assert f"pack {SAMPLE_NAME} " in result.output
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip header without a build time
    assert data[3] & 0x08 == 0  # ... and without the output's file name
    manifest, contents = read_pack(first)
    assert (manifest.info.name, manifest.evaluation) == (SAMPLE_NAME, {})  # --no-evaluate records no figures
    pages = {name for name in contents if name.startswith("pages/")}
    assert pages == {f"pages/{p.relative_to(SAMPLE_KB_DIR).as_posix()}" for p in discover([SAMPLE_KB_DIR])}
    assert contents["eval/questions.yaml"] == DEFAULT_SET.read_bytes()
    with tarfile.open(first, "r:gz") as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}


def test_pack_with_changed_content_or_other_format_is_refused(tmp_path: Path) -> None:
    pack = tmp_path / "x.kbpack"
    _export(XZUFI, pack)
    manifest, contents = read_pack(pack)

    def rewrite(target: Path, files: dict[str, bytes]) -> None:
        with tarfile.open(target, "w:gz") as archive:
            for name, data in files.items():
                member = tarfile.TarInfo(name)
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))

    changed = dict(contents)
    changed["pages/musterstadt-buergeramt.xml"] = contents["pages/musterstadt-buergeramt.xml"].replace(
        b">37<", b">3<"
    )
    tampered = tmp_path / "tampered.kbpack"
    rewrite(tampered, {"pack.json": manifest.to_json(), **changed})
    with pytest.raises(PackError, match=r"hash mismatch for pages/musterstadt-buergeramt\.xml"):
        read_pack(tampered)

    data = json.loads(manifest.to_json())
    data["format_version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.kbpack"
    rewrite(newer, {"pack.json": json.dumps(data).encode(), **contents})
    with pytest.raises(PackError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        read_pack(newer)

    escape = tmp_path / "escape.kbpack"
    rewrite(escape, {"pack.json": manifest.to_json(), "pages/../../evil.md": b"x"})
    with pytest.raises(PackError, match="unsafe or unexpected file name"):
        read_pack(escape)

    linked = tmp_path / "link.kbpack"
    with tarfile.open(linked, "w:gz") as archive:
        member = tarfile.TarInfo("pages/passwd.md")
        member.type = tarfile.SYMTYPE
        member.linkname = "/etc/passwd"
        archive.addfile(member)
    with pytest.raises(PackError, match="not a plain file"):
        read_pack(linked)

    result = runner.invoke(app, ["kb", "pack", "import", str(tampered), "--into", str(tmp_path / "t")])
    assert result.exit_code == 1 and "hash mismatch" in result.output
    assert not (tmp_path / "t").exists()


def test_pack_never_overwrites_the_towns_own_pages(tmp_path: Path) -> None:
    town = tmp_path / "town"
    town.mkdir()
    (town / "eigene.md").write_text(
        "---\nid: xzufi-l100002\ntitle: Unsere Meldebescheinigung\n---\n\nKostet bei uns 8 Euro.\n",
        encoding="utf-8",
    )
    index_dir = tmp_path / "index"
    KnowledgeIndex.open(index_dir).ingest([town])
    pack = tmp_path / "x.kbpack"
    _export(XZUFI, pack)
    target = tmp_path / "packs" / "x"
    result = runner.invoke(
        app, ["kb", "pack", "import", str(pack), "--into", str(target), "--index-dir", str(index_dir)]
    )
    assert result.exit_code == 1
    assert "pack would overwrite the town's own pages (xzufi-l100002)" in result.output
    assert not target.exists()

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notiz.md").write_text("meins", encoding="utf-8")
    result = runner.invoke(
        app,
        ["kb", "pack", "import", str(pack), "--into", str(occupied), "--index-dir", str(tmp_path / "i2")],
    )
    assert result.exit_code == 1 and "is not empty and holds no pack" in result.output
    assert (occupied / "notiz.md").read_text(encoding="utf-8") == "meins"
