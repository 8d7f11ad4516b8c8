"""``voicebot call``, ``voicebot bench latency``, ``voicebot bench asr``: spoken calls simulated from WAV files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from voicebot.commands.errors import fail, settings_or_exit


def _quiet_logs(verbose: bool) -> None:
    from voicebot.logs import configure_logging

    configure_logging("DEBUG" if verbose else "WARNING", stdlib=False)


def _resources(settings: Any) -> Any:
    from voicebot.db.engine import DatabaseConfigError
    from voicebot.models import ModelError
    from voicebot.pipeline.resources import CallResources

    try:
        return CallResources.load(settings)
    except (ModelError, DatabaseConfigError) as error:
        raise fail(str(error)) from None
    except FileNotFoundError as error:
        raise fail(str(error)) from None


def _simulation_settings(settings: Any) -> Any:
    """A simulated call's record goes to ``paths.simulated_calls_dir`` as a JSON file, never among the real calls'
    records (their folder or the database), so test calls do not count as citizens' calls."""
    paths = settings.paths.model_copy(update={"calls_dir": settings.paths.simulated_calls_dir})
    return settings.model_copy(update={"paths": paths, "database_url": None})


def call(
    wav: Annotated[Path, typer.Argument(help="Caller audio: a mono or stereo WAV at any sample rate.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the bot's audio (aligned to the input) here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the transcript as JSON.")] = False,
    speed: Annotated[
        float, typer.Option("--speed", help="Feed faster than real time (1.0 = real time).")
    ] = 1.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the pipeline's debug log.")] = False,
) -> None:
    """Simulate a phone call: stream WAV through the real pipeline, write the reply audio and transcript."""
    _quiet_logs(verbose)
    from voicebot.simulate import AudioFileError, read_wav, simulate_call, write_wav

    if not wav.is_file():
        raise fail(f"{wav} does not exist; give a WAV file with the caller's audio")
    if not 0.1 <= speed <= 20:
        raise fail("--speed must be between 0.1 and 20")
    try:
        audio, rate = read_wav(wav)
    except AudioFileError as error:
        raise fail(str(error)) from None
    settings = settings_or_exit()
    resources = _resources(settings)
    settings = _simulation_settings(settings)
    result = asyncio.run(simulate_call(settings, resources, audio, rate, speed=speed))
    out_path = out or Path(settings.paths.calls_dir) / f"{result.call_id}.wav"
    write_wav(out_path, result.reply, result.reply_rate)
    data = result.to_json()
    data["simulation"]["reply_wav"] = str(out_path)
    data["simulation"]["transcript_json"] = str(Path(settings.paths.calls_dir) / f"{result.call_id}.json")
    data["simulation"]["shared_models"] = resources.describe()
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    _print_call(data)


def _print_call(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Call {data['call_id']} ({data['ended_reason']})")
    for column in ("t [s]", "who", "kind", "text", "details"):
        table.add_column(column)
    for turn in data["turns"]:
        details = []
        if turn.get("asr_confidence") is not None:
            details.append(f"asr {turn['asr_confidence']:.2f}")
        if turn.get("action"):
            details.append(str(turn["action"]))
        if turn.get("sources"):
            details.append(", ".join(turn["sources"]))
        if turn.get("interrupted"):
            details.append("INTERRUPTED")
        if "voice_to_voice" in turn.get("timings_ms", {}):
            details.append(f"{turn['timings_ms']['voice_to_voice']:.0f} ms")
        table.add_row(f"{turn['start_s']:.1f}", turn["role"], turn["kind"], turn["text"], " · ".join(details))
    console = Console(width=140)
    console.print(table)
    sim = data["simulation"]
    console.print(f"reply audio: {sim['reply_wav']}  transcript: {sim['transcript_json']}")


def bench_latency(
    calls: Annotated[int, typer.Option("--calls", help="Simulated calls (4 questions each).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    speed: Annotated[
        float, typer.Option("--speed", help="1.0 = real time (the only speed for real numbers).")
    ] = 1.0,
    rate: Annotated[int, typer.Option("--rate", help="Caller audio sample rate (8000 = phone).")] = 8000,
) -> None:
    """Voice-to-voice latency p50/p95 over simulated calls, with a per-stage breakdown and memory."""
    _quiet_logs(False)
    from voicebot.benchmarks.latency import run_latency_bench

    if calls < 1:
        raise fail("--calls must be at least 1")
    resources = _resources(settings_or_exit())
    result = asyncio.run(run_latency_bench(resources, calls=calls, speed=speed, rate=rate))
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"Voice-to-voice latency, {result['answered']}/{result['turns']} turns, speed {speed}"
    )
    table.add_column("stage")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    table.add_row("voice-to-voice", str(result["latency_ms"]["p50"]), str(result["latency_ms"]["p95"]))
    for stage, values in result["stages_ms"].items():
        table.add_row(f"  {stage}", str(values["p50"]), str(values["p95"]))
    console.print(table)
    console.print(
        f"stage breakdown over {result['turns_with_breakdown']} turns heard as one question "
        "(rest = own overhead); memory (MB RSS): " + json.dumps(result["memory_mb"])
    )


def bench_asr(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Clips per language.")] = 20,
    spoken: Annotated[
        int, typer.Option("--spoken", help="Spoken questions answered end to end (0: skip).")
    ] = 48,
    questions: Annotated[
        list[Path] | None,
        typer.Option("--questions", help="Question sets for --spoken (default: the held-out sets)."),
    ] = None,
    compare_prompt: Annotated[
        bool,
        typer.Option(
            "--compare-prompt",
            help="Also run with no asr.initial_prompt, the service words, and town + service words (before 0404).",
        ),
    ] = False,
    short: Annotated[
        bool, typer.Option("--short", help="Spoken keyword requests (≤ 3 words, all eval sets) instead.")
    ] = False,
    details: Annotated[
        Path | None, typer.Option("--details", help="Write every spoken question's outcome here (JSON).")
    ] = None,
) -> None:
    """Word error rate and real-time factor per language on 8 kHz telephone audio; spoken questions answered
    right / confirmed / asked to repeat / answered wrong without confirmation."""
    _quiet_logs(False)
    from voicebot.benchmarks.asr import run_asr_bench
    from voicebot.models import ModelError
    from voicebot.pipeline.resources import load_whisper
    from voicebot.settings import SERVICE_WORDS_PROMPT, TOWN_AND_SERVICE_WORDS_PROMPT

    if limit < 1 or spoken < 0:
        raise fail("--limit must be at least 1 and --spoken at least 0")
    settings = settings_or_exit()
    try:
        model = load_whisper(settings)
    except ModelError as error:
        raise fail(str(error)) from None
    configurations = [(_prompt_label(settings.asr.initial_prompt), settings.asr)]
    if compare_prompt:  # the configured prompt against none and against the service words
        for other in ("", SERVICE_WORDS_PROMPT, TOWN_AND_SERVICE_WORDS_PROMPT):
            if other.strip() != settings.asr.initial_prompt.strip():
                asr = settings.asr.model_copy(update={"initial_prompt": other})
                configurations.append((_prompt_label(other), asr))
    rows: list[dict[str, Any]] = []
    spoken_rows: list[dict[str, Any]] = []
    for label, asr in configurations:
        for score in run_asr_bench(model, asr, limit):
            rows.append({"prompt": label, **score.to_dict()})
        if compare_prompt:
            from voicebot.benchmarks.misheard import run_prompt_invention_on_recordings

            invented, clips = run_prompt_invention_on_recordings(model, asr, "en", limit)
            rows.append(
                {
                    "prompt": label,
                    "language": "en→de",
                    "source": "asterisk en decoded as German",
                    "clips": clips,
                    "prompt_invented": invented,
                }
            )
        if spoken:
            spoken_rows.append(
                {
                    "prompt": label,
                    **_spoken_run(settings, model, asr, spoken, questions, short, label, details),
                }
            )
    if as_json:
        typer.echo(json.dumps({"asr": rows, "spoken": spoken_rows}, ensure_ascii=False, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ASR on 8 kHz phone audio ({settings.asr.model}, beam {settings.asr.beam_size})")
    for column in ("prompt", "language", "source", "clips", "words", "WER", "RTF", "prompt words invented"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["prompt"]),
            str(row["language"]),
            str(row["source"]),
            str(row["clips"]),
            str(row.get("words", "")),
            f"{row['wer']:.1%}" if "wer" in row else "",
            f"{row['rtf']:.2f}" if "rtf" in row else "",
            str(row.get("prompt_invented", "")),
        )
    console = Console(width=140)
    console.print(table)
    if spoken_rows:
        outcomes = Table(title="Spoken questions (espeak-ng German, µ-law 8 kHz), extractive answers")
        columns = (
            "prompt",
            "clips",
            "WER",
            "right",
            "confirmed (topic right)",
            "repeat",
            "wrong unconfirmed",
            "wrong if unchecked",
            "prompt words invented",
        )
        for column in columns:
            outcomes.add_column(column)
        for row in spoken_rows:
            shares = row["shares"]
            outcomes.add_row(
                str(row["prompt"]),
                str(row["clips"]),
                f"{row['wer']:.1%}",
                f"{shares['right']:.1%}",
                f"{shares['confirmed']:.1%} ({row['confirmations_right']}/{row['confirmations']})",
                f"{shares['repeat']:.1%}",
                f"{shares['wrong']:.1%}",
                f"{row['wrong_without_check']:.1%}",
                f"{row['prompt_invented']}/{row['clips']}",
            )
        console.print(outcomes)


def _prompt_label(prompt: str) -> str:
    from voicebot.settings import SERVICE_WORDS_PROMPT, TOWN_AND_SERVICE_WORDS_PROMPT

    labels = {
        "": "no prompt",
        SERVICE_WORDS_PROMPT: "service words",
        TOWN_AND_SERVICE_WORDS_PROMPT: "town + words",
    }
    return labels.get(prompt.strip(), "configured prompt")


def _spoken_run(
    settings: Any,
    model: Any,
    asr: Any,
    count: int,
    questions: list[Path] | None,
    short: bool,
    label: str,
    details: Path | None,
) -> dict[str, Any]:
    """Spoken questions through ASR and the extractive engine (see voicebot.benchmarks.misheard)."""
    from knowledge.evaluation import EvalSetError
    from knowledge.extractive import ExtractiveAnswerEngine
    from knowledge.index import load_retriever
    from voicebot.benchmarks.misheard import run_spoken, spoken_items

    eval_dir = Path(__file__).resolve().parents[2] / "knowledge" / "eval"
    held_out = [eval_dir / "heldout.yaml", eval_dir / "heldout2.yaml", eval_dir / "facts-heldout.yaml"]
    paths = questions or (sorted(eval_dir.glob("*.yaml")) if short else held_out)
    try:
        items = spoken_items(paths, count, short=short)
        config = settings.knowledge()
        engine = ExtractiveAnswerEngine(config, load_retriever(config))
    except (EvalSetError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc).splitlines()[0]) from None
    cache_dir = settings.paths.index_dir.parent / "spoken-questions"
    report = run_spoken(model, asr, engine, items, cache_dir, label)
    if details is not None:
        path = details.with_name(f"{details.stem}-{label.replace(' ', '-')}{details.suffix}")
        path.write_text(json.dumps(report.to_dict(with_items=True), ensure_ascii=False, indent=1), "utf-8")
    return report.to_dict()


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot call`` and ``voicebot bench latency|asr``."""
    app.command("call")(call)
    bench_app.command("latency")(bench_latency)
    bench_app.command("asr")(bench_asr)
