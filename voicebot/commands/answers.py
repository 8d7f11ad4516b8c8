"""``voicebot ask``, ``voicebot eval`` and ``voicebot bench answer``: the answer engine from the command line.

Heavy imports (retriever, embeddings, openai) stay inside the commands so that ``voicebot --help`` is fast.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from voicebot.commands.errors import fail, settings_or_exit

if TYPE_CHECKING:
    from knowledge.extractive import Retriever
    from knowledge.types import AnswerEngine
    from voicebot.settings import Settings

ModeOption = Annotated[
    str | None,
    typer.Option(
        "--mode", help="llm | extractive (default: settings.answer.mode, auto = llm when llm.base_url)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
LlmUrlOption = Annotated[
    str | None,
    typer.Option(
        "--llm-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (sets llm.base_url)."
    ),
]


# Usage errors (a wrong option value, an empty question) exit with 2, like typer's own option errors; a
# configuration error or a missing index exits with 1, as from every other command.
USAGE_ERROR = 2


def _settings(llm_url: str | None = None) -> Settings:
    settings = settings_or_exit()
    if llm_url:
        settings = settings.model_copy(deep=True)
        settings.llm.base_url = llm_url
    return settings


def _mode(value: str | None) -> Literal["llm", "extractive"] | None:
    if value is None:
        return None
    if value not in ("llm", "extractive"):
        raise fail(f"--mode must be 'llm' or 'extractive', not {value!r}", USAGE_ERROR)
    return "llm" if value == "llm" else "extractive"


def _build(settings: Settings, mode: str | None) -> tuple[AnswerEngine, Retriever]:
    """Retriever (from the on-disk index, ingesting the sample KB on first use) and engine, or exit 1."""
    from knowledge.engine import EngineConfigurationError, build_answer_engine

    chosen = _mode(mode) or settings.resolved_answer_mode()
    if chosen == "llm" and not settings.llm.base_url:
        raise fail("mode 'llm' needs an OpenAI-compatible endpoint: set VOICEBOT_LLM__BASE_URL or --llm-url")
    try:
        from knowledge.index import load_retriever

        config = settings.knowledge()
        retriever = load_retriever(config)
        engine = build_answer_engine(config, retriever, mode=chosen)
    except EngineConfigurationError as exc:
        raise fail(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc).splitlines()[0]) from None
    return engine, retriever


def _source_info(retriever: Retriever, chunk_id: str) -> dict[str, str]:
    chunk = getattr(retriever, "get", lambda _id: None)(chunk_id)
    if chunk is None:
        return {"id": chunk_id, "title": "", "source_url": ""}
    return {"id": chunk_id, "title": chunk.title, "source_url": chunk.source_url}


def ask(
    question: Annotated[str, typer.Argument(help='The caller\'s question, e.g. "Was kostet ein Perso?"')],
    json_output: JsonOption = False,
    mode: ModeOption = None,
    language: Annotated[str, typer.Option("--language", help="Caller language (ISO 639-1).")] = "de",
    llm_url: LlmUrlOption = None,
) -> None:
    """Answer one question from the knowledge base: answer, action, confidence and sources."""
    from knowledge.types import AnswerRequest

    if not question.strip():
        raise fail("the question is empty", USAGE_ERROR)
    settings = _settings(llm_url)
    engine, retriever = _build(settings, mode)
    answer = asyncio.run(engine.answer(AnswerRequest(question, language=language)))
    sources = [_source_info(retriever, s) for s in answer.sources]
    if answer.language != language:  # no page and no phrase in that language: say so instead of switching
        typer.echo(
            f"note: no answer in language {language!r} in the knowledge base; answered in {answer.language!r}",
            err=True,
        )
    if json_output:
        payload = {
            "question": question,
            "answer": answer.text,
            "action": answer.action.value,
            "confidence": answer.confidence,
            "sources": sources,
            "mode": answer.mode,
            "language": answer.language,
            "requested_language": language,
            "reason": answer.reason,
            "timings_ms": answer.timings_ms,
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    typer.echo(answer.text)
    typer.echo(
        f"action: {answer.action.value}   confidence: {answer.confidence:.2f}   "
        f"mode: {answer.mode}   reason: {answer.reason}"
    )
    for source in sources:
        typer.echo(f"source: [{source['id']}] {source['title']} {source['source_url']}".rstrip())


def eval_command(
    question_set: Annotated[
        Path | None, typer.Option("--set", help="Question set YAML (default: knowledge/eval/questions.yaml).")
    ] = None,
    json_output: JsonOption = False,
    mode: ModeOption = None,
    llm_url: LlmUrlOption = None,
    show_failures: Annotated[int, typer.Option("--failures", help="List up to N failed items.")] = 15,
) -> None:
    """Run a question set: retrieval recall@1/@3, action accuracy, groundedness, fact recall, refusal rate, and
    for fact items fact accuracy, wrong-fact rate and unknown rate."""
    from rich.console import Console

    from knowledge.evaluation import DEFAULT_SET, EvalSetError, evaluate, load_eval_set

    path = question_set or DEFAULT_SET
    try:
        items = load_eval_set(path)
    except EvalSetError as exc:
        raise fail(str(exc), USAGE_ERROR) from None
    settings = _settings(llm_url)
    engine, retriever = _build(settings, mode)
    chunks = list(getattr(retriever, "chunks", []))
    console = Console(stderr=True)

    def progress(done: int, total: int) -> None:
        if not json_output and (done % 20 == 0 or done == total):
            console.print(f"  {done}/{total} questions", highlight=False)

    report = asyncio.run(evaluate(items, engine, retriever, chunks, progress))
    if json_output:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    rows = [
        ("questions", f"{report.items}"),
        ("retrieval recall@1", f"{report.recall_at_1:.3f}"),
        ("retrieval recall@3", f"{report.recall_at_3:.3f}"),
        ("action accuracy", f"{report.action_accuracy:.3f}"),
        ("answer accuracy (action + page)", f"{report.answer_accuracy:.3f}"),
        ("groundedness", f"{report.groundedness:.3f}"),
        ("answers with facts absent from sources", f"{report.ungrounded}"),
        ("fact recall", f"{report.fact_recall:.3f}"),
        ("refusal rate (out of scope)", f"{report.refusal_rate:.3f}"),
        ("emergency recall", f"{report.emergency_recall:.3f}"),
        ("mean time per question", f"{report.mean_ms:.1f} ms"),
    ]
    if report.fact_items:
        rows += [
            ("fact items", f"{report.fact_items}"),
            ("fact accuracy (asked fact + its page)", f"{report.fact_accuracy:.3f}"),
            ("wrong-fact rate", f"{report.wrong_fact_rate:.3f}"),
            ("unknown rate (not known, hand-off offered)", f"{report.unknown_rate:.3f}"),
        ]
    for label, value in rows:
        typer.echo(f"{label:<42}{value}")
    for action, group in report.by_action.items():
        typer.echo(f"  {action:<40}{group['action_accuracy']:.3f} of {int(group['items'])}")
    for fact_type, group in report.fact_by_type.items():
        typer.echo(
            f"  facts: {fact_type:<33}{group['fact_accuracy']:.3f} of {int(group['items'])}"
            f"  (wrong {int(group['wrong'])}, unknown {int(group['unknown'])})"
        )
    fact_failures = report.fact_failures()[:show_failures]
    if fact_failures:
        typer.echo(f"\nfact items without the fact (first {len(fact_failures)}, wrong facts first):")
    for r in fact_failures:
        typer.echo(
            f"- {r.question!r} [{r.fact_type}{', WRONG' if r.fact_wrong else ''}"
            f"{', unknown' if r.fact_unknown else ''}] expected {r.expected}, got {r.action} {r.sources}: "
            f"{r.answer!r}"
        )
    failures = report.failures()[:show_failures]
    if failures:
        typer.echo(f"\nfailed items (first {len(failures)}):")
    for r in failures:
        typer.echo(
            f"- {r.question!r}: expected {r.expected_action} {r.expected}, got {r.action} "
            f"{r.sources} ({r.reason}, conf {r.confidence:.2f}; top3 {r.retrieved})"
            + (f" unsupported {r.unsupported}" if r.unsupported else "")
        )


BENCH_QUESTIONS = (
    "Was kostet ein neuer Personalausweis?",
    "Wann hat das Bürgerbüro geöffnet?",
    "Ich muss meinen Hund anmelden",
    "Wie melde ich Sperrmüll an?",
    "Wo beantrage ich Wohngeld?",
    "Ich bin umgezogen, was muss ich tun?",
    "Ich brauche ein Führungszeugnis",
    "Wo kann ich mein Auto zulassen?",
)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "n": 0}

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)

    return {
        "p50": pick(0.5),
        "p95": pick(0.95),
        "mean": round(statistics.fmean(ordered), 2),
        "n": len(ordered),
    }


async def _time_to_first_sentence(engine: AnswerEngine, runs: int) -> dict[str, Any]:
    from knowledge.types import AnswerRequest, FinalEvent, SentenceEvent

    first: list[float] = []
    total: list[float] = []
    reasons: dict[str, int] = {}
    for run in range(runs):
        question = BENCH_QUESTIONS[run % len(BENCH_QUESTIONS)]
        started = time.perf_counter()
        seen_first = False
        async for event in engine.stream(AnswerRequest(question)):
            if isinstance(event, SentenceEvent) and not seen_first:
                first.append((time.perf_counter() - started) * 1000)
                seen_first = True
            elif isinstance(event, FinalEvent):
                total.append((time.perf_counter() - started) * 1000)
                reasons[event.answer.reason] = reasons.get(event.answer.reason, 0) + 1
    return {"first_sentence_ms": _percentiles(first), "total_ms": _percentiles(total), "reasons": reasons}


def bench_answer(
    json_output: JsonOption = False,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Questions per measurement.")] = 50,
    chunks: Annotated[
        int, typer.Option("--chunks", min=10, help="Size of the synthetic retrieval index.")
    ] = 2000,
    llm_url: LlmUrlOption = None,
) -> None:
    """p50/p95 of retrieval on a 2,000-chunk index, of retrieval + fact selection on the knowledge base, and of
    time-to-first-sentence per answer mode."""
    settings = _settings(llm_url)
    results: dict[str, Any] = {"runs": runs}
    results["retrieval"] = _bench_retrieval(settings, chunks, runs)
    engine, _ = _build(settings, "extractive")
    asyncio.run(engine.answer(_warm_request()))
    modes = {"extractive": asyncio.run(_time_to_first_sentence(engine, runs))}
    if settings.llm.base_url:
        llm_engine, _ = _build(settings, "llm")
        llm_runs = max(1, min(runs, 10))
        modes["llm"] = asyncio.run(_time_to_first_sentence(llm_engine, llm_runs))
        modes["llm"]["runs"] = llm_runs
    results["modes"] = modes
    results["fact_selection"] = _bench_fact_selection(engine, runs)
    if json_output:
        typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
        return
    retrieval = results["retrieval"]
    typer.echo(
        f"retrieval ({retrieval.get('chunks', chunks)} chunks): p50 {retrieval['p50']:.1f} ms  "
        f"p95 {retrieval['p95']:.1f} ms"
    )
    facts = results["fact_selection"]
    typer.echo(
        f"sample KB, {facts['retrieval_ms']['n']} fact questions: retrieval p50 {facts['retrieval_ms']['p50']:.1f} ms  "
        f"p95 {facts['retrieval_ms']['p95']:.1f} ms; retrieval + fact selection p50 "
        f"{facts['retrieval_and_selection_ms']['p50']:.1f} ms  p95 {facts['retrieval_and_selection_ms']['p95']:.1f} ms "
        f"(selection alone p95 {facts['selection_ms']['p95']:.2f} ms)"
    )
    for name, numbers in modes.items():
        fs = numbers["first_sentence_ms"]
        typer.echo(
            f"{name:<11} first sentence: p50 {fs['p50']:.1f} ms  p95 {fs['p95']:.1f} ms  "
            f"(n={fs['n']}, outcomes {numbers['reasons']})"
        )


# Questions for a detail (fee, duration, hours, documents, yes/no), so that fact selection does its full work.
FACT_BENCH_QUESTIONS = (
    "Was kostet die Kita bei mehr als 100.000 Euro Jahreseinkommen?",
    "Wie lange dauert ein Reisepass?",
    "Wann haben die Friedhöfe im Sommer geöffnet?",
    "Welche Unterlagen brauche ich für die Anmeldung der Eheschließung?",
    "Bis wann kann ich bei plötzlicher Krankheit noch Briefwahl beantragen?",
    "Brauche ich für eine Beglaubigung einen Termin?",
    "Was kostet ein Urnengrab?",
    "Wie ist die Telefonnummer vom Wahlamt?",
)


def _bench_fact_selection(engine: Any, runs: int) -> dict[str, Any]:
    """Retrieval alone and retrieval + fact selection (the extractive decision) in the same loop, on the
    on-disk index, so that the cost of choosing the sentence is measured next to the search it follows."""
    from knowledge.types import AnswerRequest

    retrieval: list[float] = []
    selection: list[float] = []
    total: list[float] = []
    for question in FACT_BENCH_QUESTIONS:  # warm-up
        engine.decide(AnswerRequest(question), engine.retrieve_sync(AnswerRequest(question)))
    for run in range(runs):
        request = AnswerRequest(FACT_BENCH_QUESTIONS[run % len(FACT_BENCH_QUESTIONS)])
        started = time.perf_counter()
        found = engine.retrieve_sync(request)
        searched = time.perf_counter()
        engine.decide(request, found)
        decided = time.perf_counter()
        retrieval.append((searched - started) * 1000)
        selection.append((decided - searched) * 1000)
        total.append((decided - started) * 1000)
    return {
        "retrieval_ms": _percentiles(retrieval),
        "selection_ms": _percentiles(selection),
        "retrieval_and_selection_ms": _percentiles(total),
    }


def _warm_request() -> Any:
    from knowledge.types import AnswerRequest

    return AnswerRequest("Was kostet ein Personalausweis?")


def _bench_retrieval(settings: Settings, chunks: int, runs: int) -> dict[str, Any]:
    """Retrieval latency on a synthetic index of ``chunks`` chunks built from the knowledge base."""
    from knowledge.bench_retrieval import measure_retrieval

    index_dir = Path(settings.paths.index_dir)
    measured = measure_retrieval(
        n_chunks=chunks,
        repeats=max(1, runs // 10),
        sources=tuple(settings.paths.kb_sources),
        config=settings.retrieval,
        base_index_dir=index_dir if (index_dir / "manifest.json").exists() else None,
    )
    return {"chunks": measured["n_chunks"], "p50": measured["p50_ms"], "p95": measured["p95_ms"], **measured}


def bench_llm(
    json_output: JsonOption = False,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Child processes to take the median of.")] = 3,
    threads: Annotated[int, typer.Option("--threads", min=1, help="llama.cpp threads.")] = 2,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=8, help="Tokens to generate per run.")] = 64,
) -> None:
    """Tokens/s of the local llama.cpp build on the embedded GGUF model, and the instruction sets it uses."""
    from voicebot.benchmarks.llm_throughput import run_llm_bench, system_info
    from voicebot.models import ModelError, require_model

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise fail(
            "llama-cpp-python is not installed; install the extra: pip install -e '.[local-llm]'"
        ) from None
    try:
        model = require_model(settings_or_exit(), "gemma-3-270m")
    except ModelError as error:
        raise fail(str(error)) from None
    results = run_llm_bench(model, runs=runs, threads=threads, max_tokens=max_tokens)
    results["system_info"] = system_info()
    if json_output:
        typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        typer.echo(f"llama.cpp build: {results['system_info']}")
        if "prompt_tokens_per_s" in results:
            typer.echo(
                f"{results['model']}, {threads} threads, median of {results['runs']} runs: "
                f"prompt {results['prompt_tokens_per_s']} tok/s ({results['prompt_tokens']} tokens), "
                f"generation {results['generated_tokens_per_s']} tok/s ({results['generated_tokens']} tokens)"
            )
    if "error" in results:
        raise fail(str(results["error"]))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``ask``, ``eval``, ``bench answer`` and ``bench llm``."""
    app.command("ask")(ask)
    app.command("eval")(eval_command)
    bench_app.command("answer")(bench_answer)
    bench_app.command("llm")(bench_llm)
