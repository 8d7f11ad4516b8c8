"""``voicebot kb ingest|stats|search``: build the knowledge index and look inside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voicebot.commands.errors import fail, settings_or_exit

if TYPE_CHECKING:
    from knowledge.index import IngestReport, KnowledgeIndex
    from knowledge.packs import PackInfo

IndexDirOption = Annotated[
    Path | None,
    typer.Option("--index-dir", help="Index directory (default: settings.paths.index_dir, i.e. var/index)."),
]


def _index_dir(option: Path | None) -> Path:
    return option if option is not None else Path(settings_or_exit().paths.index_dir)


def _open_index(index_dir: Path) -> KnowledgeIndex:
    from knowledge.index import KnowledgeIndex

    try:
        return KnowledgeIndex.open(index_dir)
    except (ValueError, OSError, KeyError) as exc:
        raise fail(f"cannot open index {index_dir}: {exc}") from None


def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or directories (.md, .html, .pdf, .csv, .yaml, XZuFi 2.2 .xml); default: settings.paths.kb_sources."
        ),
    ] = None,
    index_dir: IndexDirOption = None,
    prune: Annotated[bool, typer.Option("--prune", help="Drop indexed files that no longer exist.")] = False,
) -> None:
    """Index new and changed knowledge files (unchanged files are skipped, broken ones reported)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    if not paths:
        configured = settings_or_exit().paths
        paths = [Path(p) for p in configured.kb_sources]
        if configured.corrections_dir.is_dir() and configured.corrections_dir not in paths:
            paths.append(configured.corrections_dir)  # approved corrections (voicebot.staff.corrections)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise fail(f"path not found: {', '.join(missing)}")
    target = _index_dir(index_dir)
    index = _open_index(target)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # A progress bar only on a terminal: in a pipe or log it would leave an empty line behind.
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                label = "Dateien lesen" if phase == "read" else "Einbetten"
                tasks[phase] = progress.add_task(label, total=total)
            progress.update(tasks[phase], completed=done, total=total)

        try:
            report = index.ingest(paths, progress=on_progress, prune=prune)
        except OSError as exc:
            raise fail(f"cannot write index {target}: {exc}") from None
    _print_report(report, target)
    if report.files_indexed == 0 and not index.chunks:
        raise fail("nothing could be indexed: no readable knowledge file in the given paths")
    if report.files_indexed == 0 and report.skipped:
        raise fail("none of the given files could be read (see the reasons above); the index is unchanged")


def _print_report(report: IngestReport, index_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Wissensindex {index_dir}", show_header=False)
    table.add_row("Dokumente", str(report.documents))
    table.add_row("Abschnitte (Chunks)", str(report.chunks))
    table.add_row(
        "Dateien neu / geändert / unverändert", f"{report.added} / {report.updated} / {report.unchanged}"
    )
    if report.removed:
        table.add_row("Dateien entfernt (--prune)", str(report.removed))
    table.add_row("neu eingebettet", str(report.embedded))
    table.add_row("übersprungen", str(len(report.skipped)))
    console.print(table)
    for path, reason in report.skipped:  # plain lines: paths stay whole and copyable
        kept = " (alte Fassung bleibt im Index)" if path in report.kept_stale else ""
        console.print(
            f"übersprungen: {_short(path)}: {reason}{kept}", soft_wrap=True, markup=False, highlight=False
        )


def _short(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def stats(
    index_dir: IndexDirOption = None,
    pages: Annotated[
        bool, typer.Option("--pages", help="List every page with its layer and source file.")
    ] = False,
    today: Annotated[
        str | None,
        typer.Option("--today", help="Day to judge validity against, YYYY-MM-DD (default: today)."),
    ] = None,
) -> None:
    """Documents, chunks and source files in the index; pages expiring within 30 days."""
    import datetime as dt
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from knowledge import areas, freshness, layers

    try:
        day = dt.date.fromisoformat(today) if today else dt.date.today()
    except ValueError:
        raise fail(f"--today must be a date like 2026-12-01, not {today!r}") from None
    target = _index_dir(index_dir)
    index = _open_index(target)
    if not index.chunks:
        raise fail(f"index {target} is empty; run 'voicebot kb ingest PATH'")
    table = Table(title=f"Wissensindex {target}", show_header=False)
    table.add_row("Dokumente", str(len(index.document_ids)))
    table.add_row("Abschnitte (Chunks)", str(len(index.chunks)))
    table.add_row("Quelldateien", str(len(index.files)))
    broken = [path for path, entry in index.files.items() if entry.error]
    table.add_row("fehlerhaft (alte Fassung im Index)", str(len(broken)))
    own_area = areas.for_town(index.chunks, settings_or_exit().answer.area_ids)  # other areas: redirects
    redirects = len({c.doc_id for c in own_area if not c.responsible})
    table.add_row("Verweise auf andere Behörden", str(redirects))
    departments = Counter(c.department or "–" for c in index.chunks if c.id == c.doc_id)
    table.add_row("Fachbereiche", ", ".join(f"{d} ({n})" for d, n in departments.most_common()))
    leads = [c for c in index.chunks if c.id == c.doc_id]
    per_layer = Counter(layers.layer_of(c) for c in leads)
    table.add_row("Seiten je Ebene", ", ".join(f"{name} ({n})" for name, n in sorted(per_layer.items())))
    _, layered = layers.resolve(index.chunks)
    table.add_row(
        "Überschreibungen / Konflikte",
        f"{sum(map(len, layered.overrides.values()))} / {len(layered.conflicts)}",
    )
    expiring = freshness.expiring(index.chunks, day)
    table.add_row(f"laufen binnen {freshness.EXPIRING_DAYS} Tagen ab / abgelaufen", str(len(expiring)))
    console = Console()
    console.print(table)
    by_id = {c.doc_id: c for c in leads}

    def line(text: str) -> None:  # plain lines: ids and paths stay whole and copyable
        console.print(text, soft_wrap=True, markup=False, highlight=False)

    for base_id, town_ids in sorted(layered.overrides.items()):
        for town_id in town_ids:
            line(f"überschreibt: {town_id} (town, {_short(by_id[town_id].source_path)}) → {base_id} (base)")
    for conflict in layered.conflicts:
        line(
            f"Konflikt: {conflict.page} „{conflict.heading}“ in base ({_short(conflict.base_source)}) und town "
            f"({_short(conflict.town_source)}): town gilt"
        )
    for page_id, why in layered.problems:
        line(f"nicht angewandt: {page_id}: {why}")
    if pages:
        for lead in sorted(leads, key=lambda c: c.doc_id):
            line(f"Seite: {lead.doc_id} [{layers.layer_of(lead)}] {_short(lead.source_path)}")
    for entry in expiring:
        when = "abgelaufen seit" if entry.days_left < 0 else "gültig bis"
        console.print(
            f"{when} {entry.valid_until.isoformat()}: {entry.doc_id} ({entry.title})",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


def search(
    query: Annotated[str, typer.Argument(help="A question as a caller would ask it.")],
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 5,
    index_dir: IndexDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Debug retrieval: the best pages with their BM25/embedding ranks and cosine, and the confidence (and first
    page) the answer engines would give this question as the first of a call."""
    settings = settings_or_exit()
    target = index_dir if index_dir is not None else Path(settings.paths.index_dir)
    index = _open_index(target)
    if not index.chunks:
        raise fail(f"index {target} is empty; run 'voicebot kb ingest PATH'")
    from knowledge.extractive import ExtractiveAnswerEngine
    from knowledge.types import AnswerRequest

    retriever = index.retriever(settings.retrieval, settings.answer.area_ids)
    result = retriever.search_detailed(query, k)
    judged = ExtractiveAnswerEngine(settings.knowledge(), retriever).retrieve_sync(AnswerRequest(query))
    judged_page = judged.top.doc_id if judged.top is not None else None
    if as_json:
        payload = {
            "query": query,
            "tokens": list(result.query_tokens),
            "confidence": judged.confidence,  # the answer engines' (knowledge.confidence.judge)
            "confident_page": judged_page,  # the page that confidence is about (the engines' first page)
            "close_call": judged.close_call,
            "top_cosine": round(result.top_cosine, 4),
            "cosine_margin": round(result.cosine_margin, 4),
            "timings_ms": {name: round(value, 2) for name, value in result.timings_ms.items()},
            "hits": [
                {
                    "id": hit.chunk.id,
                    "title": hit.chunk.title,
                    "section": hit.chunk.section,
                    "score": round(hit.score, 5),
                    "bm25_rank": hit.bm25_rank,
                    "embedding_rank": hit.embedding_rank,
                    "cosine": round(cosine, 4),
                    "bm25": round(bm25, 3),
                    "responsible": hit.chunk.responsible,
                }
                for hit, cosine, bm25 in zip(result.hits, result.cosines, result.bm25_scores, strict=True)
            ],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{query!r}  Konfidenz {judged.confidence:.2f} für {judged_page or '–'}"
        f"{'  (Rückfrage: knapp)' if judged.close_call else ''}  Tokens: {' '.join(result.query_tokens)}"
    )
    for column in ("#", "id", "Titel", "RRF", "BM25-Rang", "E5-Rang", "Kosinus"):
        table.add_column(column)
    for n, (hit, cosine) in enumerate(zip(result.hits, result.cosines, strict=True), start=1):
        table.add_row(
            str(n),
            hit.chunk.id,
            hit.chunk.title,
            f"{hit.score:.4f}",
            str(hit.bm25_rank or "–"),
            str(hit.embedding_rank or "–"),
            f"{cosine:.3f}",
        )
    Console().print(table)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot kb ...``."""
    kb_app = typer.Typer(
        help="Knowledge base: ingest sources, inspect the index, try searches.",
        no_args_is_help=True,
        rich_markup_mode=None,  # plain help, like voicebot.cli: flags without "<bool>"
    )
    kb_app.command("ingest")(ingest)
    kb_app.command("stats")(stats)
    kb_app.command("search")(search)
    kb_app.command("review-spoken")(review_spoken)
    kb_app.command("corrections")(corrections_list)
    pack_app = typer.Typer(
        help="Knowledge packs: export a folder of pages, import a pack as the base layer.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    pack_app.command("export")(pack_export)
    pack_app.command("import")(pack_import)
    pack_app.command("sample")(pack_sample)
    kb_app.add_typer(pack_app, name="pack")
    app.add_typer(kb_app, name="kb")


def review_spoken(
    index_dir: IndexDirOption = None,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write", help="Write one town page per listed answer into this folder, to edit and ingest."
        ),
    ] = None,
) -> None:
    """List the spoken answers the importer built (not yet approved by a town page), for an editor to review."""
    from knowledge import layers

    target = _index_dir(index_dir)
    index = _open_index(target)
    resolved, report = layers.resolve(index.chunks)
    pending = layers.generated(resolved, report)
    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
    for chunk in pending:
        typer.echo(f"{chunk.doc_id}\t{chunk.title}\t{chunk.spoken_answer}")
        if write is None:
            continue
        page = write / f"{chunk.doc_id}-telefon.md"
        if page.exists():  # an editor's draft is never overwritten
            continue
        front = {
            "id": f"{chunk.doc_id}-telefon",
            "title": f"{chunk.title} (Telefonantwort)",
            "overrides": chunk.doc_id,
            "spoken_answer": chunk.spoken_answer,
        }
        body = "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in front.items())
        page.write_text(f"---\n{body}---\n", encoding="utf-8")
    typer.echo(f"{len(pending)} generated spoken answers to review", err=True)


def pack_export(
    source: Annotated[Path, typer.Argument(help="Folder with the pages to pack.")],
    out: Annotated[Path, typer.Option("--out", help="The pack file to write (e.g. musterstadt-1.0.kbpack).")],
    name: Annotated[str, typer.Option("--name", help="Pack name, e.g. musterstadt-basis.")],
    version: Annotated[str, typer.Option("--version", help="Pack version, e.g. 1.0.")],
    licence: Annotated[str, typer.Option("--licence", help="Licence of the content.")] = "EUPL-1.2",
    author: Annotated[str, typer.Option("--author", help="The town that made the pack.")] = "",
    source_name: Annotated[str, typer.Option("--source", help="Where the content comes from.")] = "",
    language: Annotated[str, typer.Option("--language", help="Language of the pages.")] = "de",
    questions: Annotated[
        Path | None, typer.Option("--questions", help="Evaluation question set (YAML) shipped with the pack.")
    ] = None,
) -> None:
    """Write a knowledge pack: pages, manifest with hashes, and the figures of its evaluation questions."""
    from knowledge.packs import PackInfo

    if not source.is_dir():
        raise fail(f"not a folder: {source}")
    if questions is not None and not questions.is_file():
        raise fail(f"question set not found: {questions}")
    info = PackInfo(name, version, licence, author or settings_or_exit().town, source_name, language)
    _write_pack(source, out, info, questions, evaluate=questions is not None)


def pack_sample(
    out: Annotated[
        Path, typer.Option("--out", help="The pack file to write (e.g. musterstadt-basis.kbpack).")
    ],
    questions: Annotated[
        Path | None,
        typer.Option("--questions", help="Evaluation question set (default: the project's Musterstadt set)."),
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="Record the figures of the questions (minutes).")
    ] = True,
) -> None:
    """Build the pack of the shipped Musterstadt base; two builds from the same checkout are byte-identical."""
    from knowledge.config import SAMPLE_KB_DIR
    from knowledge.evaluation import DEFAULT_SET
    from knowledge.packs import sample_info

    question_set = questions if questions is not None else DEFAULT_SET
    if not question_set.is_file():
        raise fail(f"question set not found: {question_set}")
    _write_pack(SAMPLE_KB_DIR, out, sample_info(), question_set, evaluate=evaluate)


def _write_pack(source: Path, out: Path, info: PackInfo, questions: Path | None, *, evaluate: bool) -> None:
    """Evaluate (optionally) and write one pack, then say what it holds; errors as one line, exit 1."""
    from knowledge.evaluation import EvalSetError
    from knowledge.packs import PackError, evaluate_pages, export_pack

    try:
        figures = evaluate_pages(source, questions, info.author) if evaluate and questions is not None else {}
        manifest = export_pack(source, out, info, questions, figures)
    except (PackError, EvalSetError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write pack {out}: {exc}") from None
    pages = sum(1 for path in manifest.files if path.startswith("pages/"))
    typer.echo(f"pack {info.name} {info.version}: {pages} page files → {out}")
    for figure, value in figures.items():
        typer.echo(f"  {figure}: {value}")


def pack_import(
    pack: Annotated[Path, typer.Argument(help="The pack file.")],
    into: Annotated[
        Path | None, typer.Option("--into", help="Install folder (default: packs/<name> next to the index).")
    ] = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Check and install a knowledge pack as the base layer, index it, and run its evaluation questions."""
    import contextlib
    import tempfile

    from knowledge import layers
    from knowledge.chunking import LoadError
    from knowledge.evaluation import EvalSetError
    from knowledge.loaders import load_file
    from knowledge.packs import QUESTIONS, PackError, evaluate_pages, in_pack, install_pack, read_pack

    if not pack.is_file():
        raise fail(f"pack not found: {pack}")
    target_index = _index_dir(index_dir)
    try:
        manifest, contents = read_pack(pack)
    except PackError as exc:
        raise fail(str(exc)) from None
    target = into if into is not None else target_index.parent / "packs" / manifest.info.name
    # Refuse before writing anything: a pack page id that is one of the town's own pages would replace it.
    index = _open_index(target_index)
    own = {
        c.doc_id
        for c in index.chunks
        if layers.layer_of(c) == layers.TOWN and not in_pack(Path(c.source_path))
    }
    with tempfile.TemporaryDirectory(prefix="pack-check-") as scratch:
        ids: set[str] = set()
        for number, (name, data) in enumerate(contents.items()):
            if name.startswith("pages/"):
                path = Path(scratch) / f"{number}-{Path(name).name}"
                path.write_bytes(data)
                with contextlib.suppress(LoadError):  # a broken page is reported by the ingest below
                    ids.update(d.meta.doc_id for d in load_file(path).documents)
    clash = sorted(ids & own)
    if clash:
        raise fail(f"pack would overwrite the town's own pages ({', '.join(clash[:5])}); not imported")
    try:
        install_pack(manifest, contents, target)
    except PackError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot install pack into {target}: {exc}") from None
    typer.echo(
        f"pack {manifest.info.name} {manifest.info.version} ({manifest.info.licence}) installed in {target}"
    )
    if QUESTIONS in contents:
        try:
            figures = evaluate_pages(target / "pages", target / QUESTIONS, manifest.info.author)
        except EvalSetError as exc:
            raise fail(f"the pack's question set is unusable: {exc}") from None
        for figure, value in figures.items():
            recorded = manifest.evaluation.get(figure)
            same = (
                ""
                if recorded is None
                else ("  (wie beim Export)" if recorded == value else f"  (Export: {recorded})")
            )
            typer.echo(f"  {figure}: {value}{same}")
    report = index.ingest([target / "pages"])
    _print_report(report, target_index)
    typer.echo(f"add {target / 'pages'} to paths.kb_sources so that the server keeps it up to date")


def corrections_list(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of the corrections.")] = False,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only these: draft, approved, rejected or reverted (default: all)."),
    ] = None,
) -> None:
    """List the corrections from the supervisors' review: drafts, applied (approved), rejected, reverted."""
    from voicebot.commands.privacy import USAGE_ERROR, _engine
    from voicebot.staff import corrections

    if status is not None and status not in corrections.STATUSES:
        raise fail(f"unknown --status {status!r}: use one of {', '.join(corrections.STATUSES)}", USAGE_ERROR)
    engine, _settings = _engine()
    try:
        rows = corrections.list_corrections(engine, status)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([row.as_dict() for row in rows], ensure_ascii=False, indent=1))
        return
    if not rows:
        typer.echo("no corrections")
        return
    for row in rows:
        decided = f", {row.status} by {row.decided_by}" if row.decided_by else ""
        typer.echo(
            f"{row.id}\t{row.status}\t{row.kind}\t{row.page_id}\tby {row.created_by}{decided}\t"
            f"call {row.call_id}\t{row.text}"
        )
