"""`voicebot bench soak`: does a long-running server grow? N sequential real SIP calls against `voicebot serve`.

The server runs as a subprocess (as in `voicebot bench sip`); each call is placed by our own SIP stack over
loopback: greeting, one German question, the start of the spoken answer, hang-up. After each call, once the server
reports no active call, the server process's resident memory and thread count are read from ``/proc``. The first
``warmup`` calls load lazily created state (voices, caches, allocator arenas); the growth per call is the
least-squares slope over the calls after them — flat means no per-call leak. Thread names (``/proc``'s ``comm``)
are listed for the last sample, so a growing pool can be told apart.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voicebot.benchmarks.serve_process import ServeProcess
from voicebot.benchmarks.sip import QUESTIONS, german_question_ulaw, place_call
from voicebot.settings import Settings

# A short greeting keeps a call at a few seconds, so a 30-call soak fits in minutes (the default greeting adds ≈ 8 s).
SOAK_GREETING = "Guten Tag, Rathaus Musterstadt."
IDLE_TIMEOUT_S = 30.0


@dataclass
class ProcessSample:
    rss_kb: int
    threads: int
    thread_names: dict[str, int] = field(default_factory=dict)


@dataclass
class SoakCall:
    index: int
    ok: bool
    error: str | None
    voice_to_voice_ms: float | None
    wall_s: float
    rss_kb: int
    threads: int


def process_sample(pid: int) -> ProcessSample:
    """Resident memory (kB) and threads of process ``pid``, with a count of its threads by name (Linux)."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    names: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names[(task / "comm").read_text().strip()] += 1
        except OSError:  # the thread ended meanwhile
            continue
    return ProcessSample(
        rss_kb=int(status["VmRSS"].split()[0]), threads=int(status["Threads"]), thread_names=dict(names)
    )


def slope(values: list[float]) -> float | None:
    """Least-squares slope of ``values`` against their index (per call); None for fewer than two values."""
    count = len(values)
    if count < 2:
        return None
    mean_x, mean_y = (count - 1) / 2, sum(values) / count
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    variance = sum((x - mean_x) ** 2 for x in range(count))
    return covariance / variance


async def run_soak(
    settings: Settings,
    *,
    calls: int,
    warmup: int = 10,
    on_call: Callable[[SoakCall], None] | None = None,
) -> dict[str, Any]:
    """Place ``calls`` sequential calls; ``on_call(SoakCall)`` is told after each (for live printing)."""
    from voicebot.benchmarks.sip_caller import SipCaller

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is needed for the German test questions: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        workdir = Path(tmp)
        audio = {question: german_question_ulaw(question, workdir) for question in QUESTIONS}
        server = ServeProcess(
            workdir,
            {
                "VOICEBOT_CALL__GREETING": SOAK_GREETING,
                "VOICEBOT_SIP__INVITES_PER_SOURCE_PER_MINUTE": str(max(60, calls * 2)),
            },
        )
        await server.start_in_thread(180.0)
        assert server.process is not None
        pid = server.process.pid
        caller = await SipCaller.start()
        results: list[SoakCall] = []
        try:
            start = process_sample(pid)
            for index in range(calls):
                question = QUESTIONS[index % len(QUESTIONS)]
                began = time.monotonic()
                result = await place_call(caller, server.sip_uri, question, audio[question], index)
                idle = await asyncio.to_thread(server.wait_idle, IDLE_TIMEOUT_S)
                sample = process_sample(pid)
                call = SoakCall(
                    index=index + 1,
                    ok=result.error is None and idle,
                    error=result.error or (None if idle else "server still busy after the hang-up"),
                    voice_to_voice_ms=result.voice_to_voice_ms,
                    wall_s=round(time.monotonic() - began, 2),
                    rss_kb=sample.rss_kb,
                    threads=sample.threads,
                )
                results.append(call)
                if on_call is not None:
                    on_call(call)
        finally:
            await caller.stop()
            server.stop()
    return summarize(results, start=start, last=sample, warmup=warmup)


def summarize(
    results: list[SoakCall], *, start: ProcessSample, last: ProcessSample, warmup: int
) -> dict[str, Any]:
    after = results[warmup:]
    rss_slope = slope([float(call.rss_kb) for call in after])
    thread_slope = slope([float(call.threads) for call in after])
    return {
        "calls": len(results),
        "warmup_calls": warmup,
        "failed_calls": sum(not call.ok for call in results),
        "rss_mb": {"before": round(start.rss_kb / 1024, 1), "after": round(last.rss_kb / 1024, 1)},
        "threads": {"before": start.threads, "after": last.threads},
        "rss_kb_per_call_after_warmup": None if rss_slope is None else round(rss_slope, 1),
        "threads_per_call_after_warmup": None if thread_slope is None else round(thread_slope, 3),
        "thread_names_after": dict(sorted(last.thread_names.items(), key=lambda item: -item[1])),
        "per_call": [asdict(call) for call in results],
    }


def format_call(call: SoakCall) -> str:
    v2v = f"{call.voice_to_voice_ms:.0f} ms" if call.voice_to_voice_ms is not None else "-"
    status = "ok" if call.ok else f"FAILED ({call.error})"
    return (
        f"call {call.index:3d}: RSS {call.rss_kb / 1024:7.1f} MB  threads {call.threads:3d}  "
        f"answer after {v2v:>8}  {call.wall_s:5.1f} s  {status}"
    )


def format_report(report: dict[str, Any]) -> str:
    rss, threads = report["rss_mb"], report["threads"]
    per_call_rss = report["rss_kb_per_call_after_warmup"]
    per_call_threads = report["threads_per_call_after_warmup"]
    warmup = report["warmup_calls"]
    lines = [
        f"Soak: {report['calls']} sequential SIP calls, {report['failed_calls']} failed",
        f"  RSS:     {rss['before']} MB before the first call → {rss['after']} MB after the last",
        f"  threads: {threads['before']} → {threads['after']}",
        f"  after the first {warmup} calls (least squares): "
        f"{per_call_rss if per_call_rss is not None else '-'} kB/call RSS, "
        f"{per_call_threads if per_call_threads is not None else '-'} threads/call",
        "  threads by name after the last call: "
        + ", ".join(f"{name} × {count}" for name, count in report["thread_names_after"].items()),
    ]
    return "\n".join(lines)
