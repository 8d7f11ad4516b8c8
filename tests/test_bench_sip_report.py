"""`voicebot bench sip`'s report: what it reads from the bot's call records, and the A/B table."""

from __future__ import annotations

from voicebot.benchmarks.sip import CallResult, _read_transcript, fail_if_unheard, summarize
from voicebot.benchmarks.sip_ab import table


def record(*, heard: bool) -> dict[str, object]:
    turns: list[dict[str, object]] = [
        {"role": "bot", "kind": "greeting", "text": "Hier ist der KI-Assistent."}
    ]
    if heard:
        turns += [
            {"role": "caller", "kind": "question", "text": "Wohngeld.", "timings_ms": {"asr": 200.0}},
            {
                "role": "bot",
                "kind": "answer",
                "text": "Wohngeld beantragen Sie ...",
                "timings_ms": {"rest": 50.0},
            },
        ]
    return {"sip_call_id": "c1", "turns": turns}


def test_stage_timings_of_the_call_record_reach_the_report() -> None:
    results = [
        CallResult(index=i, question="Wohngeld.", setup_ms=10.0, voice_to_voice_ms=900.0) for i in range(2)
    ]
    for result in results:
        result.call_id = "c1"
        _read_transcript(result, {"c1": record(heard=True)})
    report = summarize(results, calls=2, concurrency=2, startup_s=1.0)
    assert results[0].heard == "Wohngeld." and results[0].answer == "Wohngeld beantragen Sie ..."
    assert report["stages_ms"] == {"asr": {"p50": 200.0, "p95": 200.0}, "rest": {"p50": 50.0, "p95": 50.0}}
    assert report["failed_calls"] == 0


def test_a_question_the_bot_never_heard_is_a_failed_call_not_a_fast_one() -> None:
    records = {"c1": record(heard=False)}
    result = CallResult(index=0, question="Wohngeld.", setup_ms=10.0, voice_to_voice_ms=40.0, call_id="c1")
    _read_transcript(result, records)
    fail_if_unheard(result, records)
    report = summarize([result], calls=1, concurrency=1, startup_s=1.0)
    assert report["failed_calls"] == 1 and "never heard" in report["failures"][0]["error"]
    assert report["voice_to_voice_ms"]["samples"] == 0
    heard = CallResult(index=1, question="Wohngeld.", setup_ms=10.0, voice_to_voice_ms=900.0, call_id="c1")
    _read_transcript(heard, {"c1": record(heard=True)})
    fail_if_unheard(heard, {"c1": record(heard=True)})
    assert heard.error is None and heard.voice_to_voice_ms == 900.0


def test_the_ab_table_has_one_row_per_level_and_code_with_each_run() -> None:
    def row(code: str, p95: float | None, failed: int) -> dict[str, object]:
        return {
            "code": code,
            "concurrency": 6,
            "calls": 12,
            "call_setup_ms": {"p50": 100.0, "p95": 200.0},
            "voice_to_voice_ms": {"p50": 1000.0, "p95": p95},
            "failed_calls": failed,
            "server_cpu_s": {"total": 24.0, "event_loop": 12.0},
            "load_before": "4.00 3.00 2.00",
        }

    lines = table([row("after", 2000.0, 0), row("before", None, 3), row("after", 2100.0, 0)]).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| 6 | 12 | before |") and "| 3 |" in lines[2]
    assert "1000.0 / 2000.0 · 1000.0 / 2100.0 ms" in lines[3] and "2.00 s (1.00 s)" in lines[3]
