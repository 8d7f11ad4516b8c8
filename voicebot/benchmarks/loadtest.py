"""`voicebot loadtest`: real SIP calls at rising concurrency, and the knee of the curve (decision 0991).

The calls are `voicebot bench sip`'s (:func:`~voicebot.benchmarks.sip.place_call`: our SIP stack as caller, a
German espeak-ng question as 8 kHz µ-law, every RTP packet time-stamped where the caller sees it), placed
against our own `voicebot serve` subprocess on free loopback ports or ``--through`` a SIP proxy (Kamailio in
front of several voicebots). Concurrency is swept 1, 2, 4, … up to the asked maximum; every level places
``calls`` calls (at least as many as its concurrency) on that many parallel lines, each line calling again
as soon as its call ended. Per level:

- call set-up (INVITE → 200 OK) and voice-to-voice latency (the caller's last speech packet → the bot's first
  speech packet after it) p50/p95/p99;
- audio gaps: late or missing bot packets while the bot speaks (:func:`~voicebot.benchmarks.caller_media.
  speech_gaps_s`), in ms per minute of answered call;
- hand-offs (calls whose record has a ``handoff_requested`` event; our own server's records only);
- attempts refused with 503 (the server is full, ``sip.max_calls``) apart from failed calls (another refusal,
  never answered, no greeting, no spoken answer). A refused caller calls again after :data:`REDIAL_PAUSE_S`, so
  every level still has its ``calls`` answered or failed calls; one refused for :data:`REDIAL_LIMIT_S` fails.

The knee is the highest level at which p95 ≤ 2.5 s with no failed and no refused call, and every lower level
as well (a level past the first one that misses is noise, not capacity).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from voicebot.benchmarks.serve_process import ServeProcess
from voicebot.benchmarks.sip import (
    QUESTIONS,
    CallResult,
    _percentile,
    _round,
    german_question_ulaw,
    place_call,
)
from voicebot.settings import Settings

P95_LIMIT_MS = 2500.0
BUSY_STATUS = 503
REDIAL_PAUSE_S = 2.0  # a caller who got 503 calls again after this long
REDIAL_LIMIT_S = 60.0  # … until this long after the first try; then the call counts as failed
LISTEN_S = 6.0  # each call hears at most this much of the answer (its gaps count too), then hangs up
SETTLE_TIMEOUT_S = 30.0  # between levels: until the server has no call left


def concurrency_levels(top: int) -> list[int]:
    """1, 2, 4, … below ``top``, then ``top`` itself."""
    levels, level = [], 1
    while level < top:
        levels.append(level)
        level *= 2
    return [*levels, top]


def parse_through(value: str) -> tuple[str, int]:
    """``HOST:PORT`` of a SIP proxy on this machine; ValueError with the reason otherwise.

    Loopback only: the caller's SIP and RTP sockets bind 127.0.0.1, so nothing else could answer them."""
    import ipaddress

    host, colon, port_text = value.rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"--through must be HOST:PORT with a port 1-65535, not {value!r}")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"--through must be a loopback address (the caller binds 127.0.0.1), not {host!r}")
    return ("127.0.0.1" if host == "localhost" else host), int(port_text)


def summarize_level(
    concurrency: int, results: list[CallResult], refused: int, handoff_call_ids: set[str] | None
) -> dict[str, Any]:
    """One level's figures: ``results`` are its calls (answered or failed), ``refused`` the attempts turned away
    with 503 before them; ``handoff_call_ids``: SIP Call-IDs with a hand-off (None: no records to read)."""
    answered = [r for r in results if r.setup_ms is not None]
    failed = [r for r in results if r.error is not None]
    latencies = [r.voice_to_voice_ms for r in answered if r.voice_to_voice_ms is not None]
    setups = [r.setup_ms for r in answered if r.setup_ms is not None]
    minutes = sum(r.answered_s or 0.0 for r in answered) / 60
    gaps_ms = sum(r.gaps_s for r in answered) * 1000
    skipped_ms = sum(r.skipped_s for r in answered) * 1000
    return {
        "concurrency": concurrency,
        "calls": len(results),
        "answered": len(answered),
        "refused_503": refused,
        "failed": len(failed),
        "call_setup_ms": {"p50": _round(_percentile(setups, 50)), "p95": _round(_percentile(setups, 95))},
        "voice_to_voice_ms": {
            "p50": _round(_percentile(latencies, 50)),
            "p95": _round(_percentile(latencies, 95)),
            "p99": _round(_percentile(latencies, 99)),
            "samples": len(latencies),
        },
        "gaps_ms_per_minute": round(gaps_ms / minutes, 1) if minutes > 0 else None,
        "never_sent_ms_per_minute": round(skipped_ms / minutes, 1) if minutes > 0 else None,
        "answered_minutes": round(minutes, 2),
        "handoffs": None
        if handoff_call_ids is None
        else sum(1 for r in answered if r.call_id in handoff_call_ids),
        "failures": [{"call": r.index, "error": r.error} for r in failed],
    }


def level_passes(level: dict[str, Any]) -> bool:
    p95 = level["voice_to_voice_ms"]["p95"]
    return p95 is not None and p95 <= P95_LIMIT_MS and not level["failed"] and not level["refused_503"]


def find_knee(levels: list[dict[str, Any]]) -> int | None:
    """The highest concurrency that passes (:func:`level_passes`) with every lower level passing too."""
    knee = None
    for level in sorted(levels, key=lambda level: level["concurrency"]):
        if not level_passes(level):
            break
        knee = level["concurrency"]
    return knee


async def _run_level(
    caller: Any, uri: str, audio: dict[str, bytes], concurrency: int, calls: int, first_index: int
) -> tuple[list[CallResult], list[CallResult]]:
    """``calls`` calls on ``concurrency`` lines, each line calling again when its call ended: (the calls, the
    attempts refused with 503 before them)."""
    results: list[CallResult] = []
    refused: list[CallResult] = []
    indices: Iterator[int] = iter(range(first_index, first_index + calls))

    async def line() -> None:
        for index in indices:  # shared by all lines: each index is taken once
            question = QUESTIONS[index % len(QUESTIONS)]
            first_try = time.monotonic()
            while True:
                result = await place_call(caller, uri, question, audio[question], index, listen_s=LISTEN_S)
                if result.refused_status != BUSY_STATUS:
                    break
                refused.append(result)
                if time.monotonic() - first_try > REDIAL_LIMIT_S:
                    result.error = f"refused with 503 for {REDIAL_LIMIT_S:.0f} s"
                    break
                await asyncio.sleep(REDIAL_PAUSE_S)
            results.append(result)

    await asyncio.gather(*(line() for _ in range(concurrency)))
    return sorted(results, key=lambda result: result.index), refused


def _handoff_call_ids(records: list[dict[str, Any]]) -> set[str]:
    return {
        str(record.get("sip_call_id"))
        for record in records
        if any(event.get("kind") == "handoff_requested" for event in record.get("events") or [])
    }


async def run_loadtest(
    settings: Settings,
    *,
    calls: int,
    concurrency: int,
    through: tuple[str, int] | None = None,
    max_calls: int | None = None,
    warmup: int = 1,
    levels: list[int] | None = None,
    on_level: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Sweep ``levels`` (default :func:`concurrency_levels` up to ``concurrency``); ``on_level`` hears each level.

    Without ``through`` a `voicebot serve` subprocess takes the calls with ``sip.max_calls`` = ``max_calls``
    (default: the settings'); ``warmup`` calls before the first level are not counted (lazily loaded state)."""
    from voicebot.benchmarks.sip_caller import SipCaller

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is needed for the German test questions: apt-get install espeak-ng")
    levels = levels or concurrency_levels(concurrency)
    per_level = [max(calls, level) for level in levels]
    line_limit = max_calls if max_calls is not None else settings.sip.max_calls
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        workdir = Path(tmp)
        audio = {question: german_question_ulaw(question, workdir) for question in QUESTIONS}
        server: ServeProcess | None = None
        if through is None:
            server = ServeProcess(
                workdir,
                {
                    "VOICEBOT_SIP__MAX_CALLS": str(line_limit),
                    "VOICEBOT_SIP__INVITES_PER_SOURCE_PER_MINUTE": str(
                        max(60, 2 * (sum(per_level) + warmup))
                    ),
                },
            )
            await server.start_in_thread(180.0)
            uri = server.sip_uri
        else:
            uri = f"sip:hotline@{through[0]}:{through[1]}"
        caller = await SipCaller.start()
        results: list[tuple[list[CallResult], list[CallResult]]] = []
        try:
            await _run_level(caller, uri, audio, 1, warmup, first_index=-warmup)
            first_index = 0
            for level, level_calls in zip(levels, per_level, strict=True):
                await _settle(server)
                started = time.monotonic()
                results.append(await _run_level(caller, uri, audio, level, level_calls, first_index))
                first_index += level_calls
                if on_level is not None:
                    on_level(
                        {"concurrency": level, "calls": level_calls, "wall_s": time.monotonic() - started}
                    )
        finally:
            await caller.stop()
            if server is not None:
                server.stop()
        handoffs = None
        if server is not None:  # the records are complete once the server has stopped
            handoffs = _handoff_call_ids(server.transcripts())
            server.stop()  # again: closes the record store that reading opened
    summaries = [
        summarize_level(level, served, len(refused), handoffs)
        for level, (served, refused) in zip(levels, results, strict=True)
    ]
    statuses = Counter(r.refused_status for served, _ in results for r in served if r.refused_status)
    statuses.update(BUSY_STATUS for _, refused in results for _ in refused)
    return {
        "calls_per_level": calls,
        "max_concurrency": concurrency,
        "target": f"{through[0]}:{through[1]}" if through else "own voicebot serve on loopback",
        "server_max_calls": line_limit if through is None else None,
        "p95_limit_ms": P95_LIMIT_MS,
        "knee": find_knee(summaries),
        "levels": summaries,
        "refusals": dict(statuses),  # SIP status → attempts refused with it
    }


async def _settle(server: ServeProcess | None) -> None:
    """Start a level only once the last one's calls are gone (our server: no active call; a proxy: 2 s)."""
    if server is None:
        await asyncio.sleep(2.0)
    else:
        await asyncio.to_thread(server.wait_idle, SETTLE_TIMEOUT_S)
