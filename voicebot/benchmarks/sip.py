"""`voicebot bench sip`: real SIP calls over loopback against a `voicebot serve` subprocess.

Each call is placed by our own SIP stack acting as the caller (the sans-I/O user agent over its asyncio endpoint,
a second instance in this process) with a plain PCMU socket for media, so every RTP packet is time-stamped where
the caller sees it:

- call set-up time: INVITE sent → 200 OK received;
- voice-to-voice latency: the caller's last speech packet of a German question (espeak-ng) → the first bot packet
  with speech energy after it, p50/p95 over all calls;
- failures: calls that were refused, never answered, or got no spoken answer within the time limit.

The server runs in a subprocess so that the measured bot does not share this process's event loop or GIL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.benchmarks.caller_media import CallerMedia, skipped_s, speech_gaps_s, ulaw_encode
from voicebot.benchmarks.serve_process import ServeProcess
from voicebot.settings import Settings

# Single municipal keywords: the words whisper-base reliably recognises in espeak-ng German (whole espeak
# sentences mostly come out garbled, and then the bot only asks to repeat, which is not the latency to measure).
QUESTIONS = (
    "Wohngeld.",
    "Anwohnerparken.",
    "Ummeldung.",
    "Standesamt.",
)
GREETING_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 20.0


@dataclass
class CallResult:
    index: int
    question: str
    setup_ms: float | None = None
    voice_to_voice_ms: float | None = None
    error: str | None = None
    call_id: str | None = None
    heard: str | None = None  # what the bot's ASR made of the question (from the call transcript)
    answer: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    refused_status: int | None = None  # the SIP status of a refused INVITE (503 when the server is full)
    answered_s: float | None = None  # 200 OK → hang-up
    gaps_s: float = 0.0  # late or missing bot packets while the bot spoke (caller_media.speech_gaps_s)
    skipped_s: float = 0.0  # of which the bot never sent (caller_media.skipped_s)


def german_question_ulaw(text: str, workdir: Path) -> bytes:
    """espeak-ng German speech as 8 kHz µ-law, with 0.3 s of silence before it."""
    import soxr

    wav = workdir / f"q{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-s", "150", "-w", str(wav), text], check=True, timeout=30)
    import wave

    with wave.open(str(wav), "rb") as reader:
        rate = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    audio = soxr.resample(pcm, rate, 8000)
    audio = np.concatenate([np.zeros(2400, dtype=np.float32), audio, np.zeros(800, dtype=np.float32)])
    return ulaw_encode(audio)


async def place_call(
    caller: Any, uri: str, question: str, ulaw: bytes, index: int, *, listen_s: float = 0.0
) -> CallResult:
    """One benchmark call: INVITE, wait for the greeting to end, ask, time the answer, hang up.

    ``listen_s``: how long to go on hearing the answer after its first sound (until the bot is quiet for 1 s), so
    that its audio gaps are measured too; 0 hangs up at once."""
    from sip_bridge.media import LocalSdpSession, SessionDescription, accept_answer, build_offer

    result = CallResult(index=index, question=question)
    media = await CallerMedia.open()
    call_id: str | None = None
    try:
        offer = build_offer(
            local_host="127.0.0.1",
            local_port=media.port,
            codecs=["PCMU"],
            session=LocalSdpSession("127.0.0.1"),
            dtmf=False,
        )
        sent = time.monotonic()
        call_id, answered = await caller.invite(uri, offer.serialize().encode())
        result.call_id = call_id
        if isinstance(answered, str):
            result.error = answered
            result.refused_status = caller.refusal_status(call_id)
            return result
        answered_at = time.monotonic()
        result.setup_ms = (answered_at - sent) * 1000
        negotiated = accept_answer(offer, SessionDescription.parse(answered))
        media.remote = (negotiated.remote_host, negotiated.remote_port)
        media.start_sending()
        if not await media.wait_for_quiet(quiet_s=1.2, timeout_s=GREETING_TIMEOUT_S):
            result.error = "no greeting heard"
            return result
        asked = time.monotonic()
        last_speech = await media.play(ulaw)
        if last_speech is None:
            result.error = "question had no speech"
            return result
        overlap = media.first_speech_after(asked)
        if overlap is not None and overlap < last_speech:
            # The greeting paused > 1.2 s and went on over the question (an overloaded bot): what follows
            # would be the rest of the greeting, not an answer.
            result.error = "the bot spoke over the question (its greeting stalled)"
            return result
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline:
            first = media.first_speech_after(last_speech)
            if first is not None:
                result.voice_to_voice_ms = (first - last_speech) * 1000
                if listen_s > 0:
                    await media.wait_for_quiet(quiet_s=1.0, timeout_s=listen_s)
                break
            if caller.ended(call_id):
                result.error = "bot hung up before answering"
                return result
            await asyncio.sleep(0.02)
        else:
            result.error = f"no spoken answer within {ANSWER_TIMEOUT_S:.0f} s"
        return result
    except Exception as error:  # one broken call is a failure to count, not the end of the bench
        result.error = f"{type(error).__name__}: {error}"
        return result
    finally:
        if call_id is not None:
            caller.hangup(call_id)
        if result.setup_ms is not None:
            result.answered_s = time.monotonic() - answered_at
            result.gaps_s = speech_gaps_s(media.received)
            result.skipped_s = skipped_s(media.received)
        media.close()


async def run_sip_benchmark(
    settings: Settings, *, calls: int, concurrency: int, server_dir: Path | None = None
) -> dict[str, Any]:
    """``server_dir``: run the server from that source tree (an A/B run against another commit's checkout)."""
    from voicebot.benchmarks.sip_caller import SipCaller

    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is needed for the German test questions: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        workdir = Path(tmp)
        audio = {question: german_question_ulaw(question, workdir) for question in QUESTIONS}
        server = ServeProcess(
            workdir,
            {
                "VOICEBOT_SIP__MAX_CALLS": str(max(calls, settings.sip.max_calls)),
                "VOICEBOT_SIP__INVITES_PER_SOURCE_PER_MINUTE": str(max(60, calls * 2)),
                **({"PYTHONPATH": str(server_dir)} if server_dir is not None else {}),
            },
            cwd=server_dir,
        )
        started = time.monotonic()
        await server.start_in_thread(120.0)
        startup_s = time.monotonic() - started
        caller = await SipCaller.start()
        uri = server.sip_uri
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> CallResult:
            async with gate:
                question = QUESTIONS[index % len(QUESTIONS)]
                return await place_call(caller, uri, question, audio[question], index)

        cpu_before = server_cpu_seconds(server)
        try:
            results = await asyncio.gather(*(one(i) for i in range(calls)))
            cpu = {k: round(v - cpu_before.get(k, 0.0), 2) for k, v in server_cpu_seconds(server).items()}
        finally:
            await caller.stop()
            server.stop()
        records = {record.get("sip_call_id"): record for record in server.transcripts()}
        for result in results:
            _read_transcript(result, records)
            fail_if_unheard(result, records)
    report = summarize(results, calls=calls, concurrency=concurrency, startup_s=startup_s)
    report["server_cpu_s"] = cpu
    return report


def server_cpu_seconds(server: ServeProcess) -> dict[str, float]:
    """CPU seconds the server used so far (Linux /proc): all threads, and its main thread (the event loop)."""
    if server.process is None:
        return {}
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(stat: Path) -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    pid = server.process.pid
    try:
        return {
            "total": cpu(Path(f"/proc/{pid}/stat")),
            "event_loop": cpu(Path(f"/proc/{pid}/task/{pid}/stat")),
        }
    except (OSError, IndexError, ValueError):
        return {}


def _read_transcript(result: CallResult, records: dict[Any, dict[str, Any]]) -> None:
    """Attach what the bot heard and answered, so a latency figure can be checked against a real answer.

    ``records`` are the server's call records by the SIP Call-ID the caller sent (``sip_call_id``)."""
    record = records.get(result.call_id) if result.call_id is not None else None
    turns = record.get("turns", []) if record is not None else []
    questions = [t for t in turns if t.get("role") == "caller" and t.get("kind") == "question"]
    answers = [t for t in turns if t.get("role") == "bot" and t.get("kind") not in ("greeting",)]
    if questions:
        result.heard = questions[0].get("text")
        result.timings.update(questions[0].get("timings_ms") or {})
    if answers:
        result.answer = answers[0].get("text")
        result.timings.update(answers[0].get("timings_ms") or {})


def fail_if_unheard(result: CallResult, records: dict[Any, dict[str, Any]]) -> None:
    """A timed call whose question is not in the bot's transcript failed: the "answer" timed was other bot speech
    (the greeting went on after a gap in its audio), and a server too slow to keep its own audio flowing must not
    look fast."""
    if result.error is None and result.heard is None and records:
        result.voice_to_voice_ms = None
        result.error = "the bot never heard the question (no caller turn in its transcript)"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.array(values), q))


def summarize(results: list[CallResult], *, calls: int, concurrency: int, startup_s: float) -> dict[str, Any]:
    setups = [r.setup_ms for r in results if r.setup_ms is not None]
    latencies = [r.voice_to_voice_ms for r in results if r.voice_to_voice_ms is not None]
    failures = [r for r in results if r.error is not None]
    return {
        "calls": calls,
        "concurrency": concurrency,
        "server_startup_s": round(startup_s, 2),
        "call_setup_ms": {
            "p50": _round(_percentile(setups, 50)),
            "p95": _round(_percentile(setups, 95)),
            "mean": _round(statistics.fmean(setups) if setups else None),
        },
        "voice_to_voice_ms": {
            "p50": _round(_percentile(latencies, 50)),
            "p95": _round(_percentile(latencies, 95)),
            "max": _round(max(latencies) if latencies else None),
            "samples": len(latencies),
        },
        "answers": [
            {"call": r.index, "asked": r.question, "heard": r.heard, "answer": r.answer} for r in results
        ],
        "stages_ms": _stage_percentiles(results),
        "failed_calls": len(failures),
        "failures": [{"call": r.index, "question": r.question, "error": r.error} for r in failures],
    }


def _stage_percentiles(results: list[CallResult]) -> dict[str, dict[str, float | None]]:
    """p50/p95 of each stage the server timed (asr, endpointing, retrieval, tts_first_chunk, rest, ...)."""
    names = sorted({name for result in results for name in result.timings})
    return {
        name: {
            "p50": _round(_percentile([r.timings[name] for r in results if name in r.timings], 50)),
            "p95": _round(_percentile([r.timings[name] for r in results if name in r.timings], 95)),
        }
        for name in names
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def format_report(report: dict[str, Any]) -> str:
    setup, v2v = report["call_setup_ms"], report["voice_to_voice_ms"]
    lines = [
        f"SIP benchmark: {report['calls']} calls, concurrency {report['concurrency']} "
        f"(server start-up {report['server_startup_s']} s)",
        f"  call set-up (INVITE → 200):  p50 {setup['p50']} ms   p95 {setup['p95']} ms",
        f"  voice-to-voice on RTP:       p50 {v2v['p50']} ms   p95 {v2v['p95']} ms   "
        f"max {v2v['max']} ms   ({v2v['samples']} answers)",
        f"  failed calls: {report['failed_calls']}",
    ]
    lines += [f"    call {f['call']}: {f['error']}" for f in report["failures"]]
    stages = report.get("stages_ms") or {}
    if stages:
        lines.append(
            "  server stages p50/p95 (ms): "
            + ", ".join(f"{name} {value['p50']}/{value['p95']}" for name, value in stages.items())
        )
    cpu = report.get("server_cpu_s") or {}
    if cpu:
        lines.append(
            f"  server CPU during the calls: {cpu.get('total')} s, event loop {cpu.get('event_loop')} s"
        )
    return "\n".join(lines)
