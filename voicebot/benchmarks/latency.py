"""Voice-to-voice latency of simulated calls, with a per-stage breakdown.

Latency of a turn = from the last sample of caller speech in the fed audio to the first non-silent sample of bot
audio after it, both read from the simulated call's audio timelines (so it is what a caller would hear, measured
at ``speed`` 1 = real time). Each call feeds German questions of the evaluation set (espeak-ng, 8 kHz by default)
with pauses; the greeting is switched off so that every turn is a question. The stage breakdown comes from the
call transcript: endpointing wait (VAD stop window + smart-turn beyond the ASR), ASR, retrieval, answer first
sentence, TTS first chunk; ``rest`` = measured latency minus those stages = our own overhead (frame pacing,
queues, resampling, playout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voicebot.benchmarks.asr import german_phrases
from voicebot.benchmarks.caller_audio import compose_call
from voicebot.pipeline.resources import CallResources, resident_memory_mb
from voicebot.pipeline.transcript import STAGES
from voicebot.simulate import simulate_call, speech_segments


@dataclass
class TurnLatency:
    call: int
    question: str
    heard: str
    latency_ms: float | None
    stages_ms: dict[str, float] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _turn_latencies(
    utterances: list[tuple[str, float, float]], bot: list[tuple[float, float]]
) -> list[float | None]:
    """For each caller utterance: first bot audio that starts after its end and before the next one ends."""
    latencies: list[float | None] = []
    for index, (_text, _start, end) in enumerate(utterances):
        limit = utterances[index + 1][2] if index + 1 < len(utterances) else float("inf")
        start = next((s for s, _e in bot if end <= s < limit), None)
        latencies.append(None if start is None else (start - end) * 1000)
    return latencies


def _stages_for(transcript: dict[str, Any], start_s: float, end_s: float) -> tuple[str, dict[str, float]]:
    """(heard text, stage timings) of the one caller question heard in this utterance, merged with the bot turn
    that answered it. Empty when the ASR heard nothing, or when turn detection split the utterance into several
    questions (then the bot's first audio answers an earlier part, and a stage breakdown would not add up)."""
    turns = transcript["turns"]
    inside = [
        (index, turn)
        for index, turn in enumerate(turns)
        if turn["role"] == "caller"
        and turn["kind"] == "question"
        and turn.get("end_s") is not None
        and start_s - 0.5 <= turn["end_s"] <= end_s + 1.0
    ]
    if len(inside) != 1:
        return " / ".join(turn["text"] for _index, turn in inside), {}
    index, question = inside[0]
    stages = {k: v for k, v in question["timings_ms"].items() if k in STAGES}
    reply = next((t for t in turns[index + 1 :] if t["role"] == "bot"), None)
    if reply is not None:
        stages.update({k: v for k, v in reply["timings_ms"].items() if k in STAGES})
    return question["text"], stages


async def run_latency_bench(
    resources: CallResources,
    *,
    calls: int = 5,
    turns_per_call: int = 4,
    pause_s: float = 5.0,
    rate: int = 8000,
    speed: float = 1.0,
) -> dict[str, Any]:
    settings = resources.settings.model_copy(deep=True)
    settings.call.greeting = ""
    phrases = german_phrases(calls * turns_per_call) or ["Was kostet ein Personalausweis?"]
    turns: list[TurnLatency] = []
    rss_before_calls = resident_memory_mb()
    rss_per_call: list[float] = []
    for call_index in range(calls):
        questions = [phrases[(call_index * turns_per_call + i) % len(phrases)] for i in range(turns_per_call)]
        parts: list[str | float] = [1.0]
        for question in questions:
            parts += [question, pause_s]
        composed = compose_call(parts, rate)
        rss_start = resident_memory_mb()
        result = await simulate_call(settings, resources, composed.audio, rate, speed=speed)
        rss_per_call.append(max(result.rss_mb - rss_start, 0.0))
        latencies = _turn_latencies(composed.utterances, speech_segments(result.reply, result.reply_rate))
        for index, (question, start, end) in enumerate(composed.utterances):
            heard, stages = _stages_for(result.transcript, start, end)
            latency = latencies[index]
            if latency is not None and set(STAGES) <= set(stages):
                stages = {**stages, "rest": round(latency - sum(stages.get(k, 0.0) for k in STAGES), 1)}
            turns.append(TurnLatency(call_index, question, heard, latency, stages))
    measured = [t.latency_ms for t in turns if t.latency_ms is not None]
    breakdown: dict[str, dict[str, float | None]] = {}
    for stage in (*STAGES, "rest"):
        values = [t.stages_ms[stage] for t in turns if stage in t.stages_ms]
        breakdown[stage] = {"p50": _percentile(values, 50), "p95": _percentile(values, 95)}
    return {
        "turns": len(turns),
        "answered": len(measured),
        "speed": speed,
        "sample_rate": rate,
        "latency_ms": {"p50": _percentile(measured, 50), "p95": _percentile(measured, 95)},
        "turns_with_breakdown": sum(1 for t in turns if "rest" in t.stages_ms),
        "stages_ms": breakdown,
        "memory_mb": {
            "shared_models": resources.memory_mb.get("shared_models"),
            "process_after_models": resources.memory_mb.get("after_models"),
            "per_call_growth_p50": _percentile(rss_per_call, 50),
            "process_after_calls": round(resident_memory_mb(), 1),
            "process_before_calls": round(rss_before_calls, 1),
        },
        "rows": [t.__dict__ for t in turns],
    }
