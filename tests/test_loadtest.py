"""`voicebot loadtest` without a server: the knee on a table of levels, the levels swept, the audio-gap measure on
packet times, and bad input (exit 1 with one line). The real calls are in tests/interop/test_loadtest.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voicebot.benchmarks.caller_media import ReceivedPacket, skipped_s, speech_gaps_s
from voicebot.benchmarks.loadtest import concurrency_levels, find_knee, parse_through

SPEECH, QUIET = -10.0, -90.0


def level(concurrency: int, p95: float | None, *, failed: int = 0, refused: int = 0) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "voice_to_voice_ms": {"p50": None, "p95": p95, "p99": None, "samples": 4},
        "failed": failed,
        "refused_503": refused,
    }


def test_the_knee_is_the_highest_level_under_the_limit_before_the_first_miss() -> None:
    table = [level(1, 700), level(2, 900), level(4, 1800), level(8, 2600)]
    assert find_knee(table) == 4
    assert find_knee(list(reversed(table))) == 4  # order of the rows does not matter
    assert find_knee([level(1, 700), level(2, 2500.0)]) == 2  # the limit itself is still inside


def test_a_failed_or_refused_call_puts_a_level_beyond_the_knee() -> None:
    assert find_knee([level(1, 700), level(2, 900, failed=1), level(4, 1000)]) == 1
    assert find_knee([level(1, 700), level(2, 900, refused=1)]) == 1
    assert find_knee([level(1, 2600), level(2, 900)]) is None  # a lucky level after a miss is noise
    assert find_knee([level(1, None, failed=1)]) is None


def test_levels_double_up_to_the_asked_concurrency() -> None:
    assert concurrency_levels(1) == [1]
    assert concurrency_levels(8) == [1, 2, 4, 8]
    assert concurrency_levels(6) == [1, 2, 4, 6]


def test_through_takes_a_loopback_host_and_port_only() -> None:
    assert parse_through("127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert parse_through("localhost:5070") == ("127.0.0.1", 5070)
    for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":5060", "127.0.0.1:x", "10.0.0.5:5060"):
        with pytest.raises(ValueError):
            parse_through(bad)


def stream(times_ms: list[float], speech: set[int]) -> list[ReceivedPacket]:
    return [ReceivedPacket(t / 1000, SPEECH if i in speech else QUIET) for i, t in enumerate(times_ms)]


def test_gaps_count_late_packets_while_the_bot_speaks_only() -> None:
    on_time = [20.0 * i for i in range(50)]
    assert speech_gaps_s(stream(on_time, set(range(50)))) == 0.0
    # Packet 25 comes 100 ms late (then the rest on their schedule): 100 ms missing while speaking.
    late = [t + (100.0 if i >= 25 else 0.0) for i, t in enumerate(on_time)]
    assert speech_gaps_s(stream(late, set(range(50)))) == pytest.approx(0.100)
    # The same stall between two utterances, with 1 s of silence packets on each side, is no audible gap.
    quiet_stall = [20.0 * i + (100.0 if i >= 100 else 0.0) for i in range(200)]
    spoken = set(range(40)) | set(range(160, 200))
    assert speech_gaps_s(stream(quiet_stall, spoken)) == 0.0
    # A small jitter (25 ms instead of 20) is absorbed; a lost packet (40 ms) counts 20 ms.
    jitter = [0.0, 25.0, 40.0, 80.0, 100.0]
    assert speech_gaps_s(stream(jitter, set(range(5)))) == pytest.approx(0.020)


def test_never_sent_counts_rtp_timestamp_jumps_while_the_bot_speaks() -> None:
    """The bot's pacing skips the ticks it was too late for and moves its RTP timestamp on: audio never sent. A
    packet late on the way keeps its timestamp step of 160 samples (20 ms at 8 kHz)."""
    times = [20.0 * i + (100.0 if i >= 25 else 0.0) for i in range(50)]
    late = [ReceivedPacket(t / 1000, SPEECH, 160 * i) for i, t in enumerate(times)]
    assert speech_gaps_s(late) == pytest.approx(0.100) and skipped_s(late) == 0.0
    skipped = [
        ReceivedPacket(t / 1000, SPEECH, 160 * i + (800 if i >= 25 else 0)) for i, t in enumerate(times)
    ]
    assert skipped_s(skipped) == pytest.approx(0.100)
    wrapped = [ReceivedPacket(i * 0.02, SPEECH, (2**32 - 320 + 160 * i) % 2**32) for i in range(10)]
    assert skipped_s(wrapped) == 0.0  # the timestamp wraps at 2**32


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--calls", "0"], "error: --calls must be at least 1, not 0"),
        (["--concurrency", "0"], "error: --concurrency must be at least 1, not 0"),
        (["--through", "kamailio"], "error: --through must be HOST:PORT"),
        (["--through", "127.0.0.1:99999"], "error: --through must be HOST:PORT"),
        (["--through", "192.0.2.7:5060"], "error: --through must be a loopback address"),
        (["--plot", "latency.svg"], "error: --plot must name a .png file"),
        (["--plot", "no/such/folder/latency.png"], "error: --plot: the folder"),
    ],
)
def test_bad_input_exits_1_with_one_line(arguments: list[str], message: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voicebot.cli import app

    result = CliRunner().invoke(app, ["loadtest", *arguments])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(message), lines[0]


def test_a_level_counts_503_attempts_apart_from_failed_calls_and_gaps_per_answered_minute() -> None:
    from voicebot.benchmarks.loadtest import level_passes, summarize_level
    from voicebot.benchmarks.sip import CallResult

    def answered(index: int, v2v: float, call_id: str) -> CallResult:
        return CallResult(
            index,
            "Wohngeld.",
            setup_ms=20.0,
            voice_to_voice_ms=v2v,
            call_id=call_id,
            answered_s=30.0,
            gaps_s=0.05,
        )

    calls = [
        answered(0, 1000.0, "a"),
        answered(1, 2000.0, "b"),
        CallResult(2, "Ummeldung.", error="no greeting heard"),
    ]
    level = summarize_level(2, calls, 3, {"b"})
    assert (level["calls"], level["answered"], level["failed"], level["refused_503"]) == (3, 2, 1, 3)
    assert level["voice_to_voice_ms"]["p50"] == 1500.0 and level["voice_to_voice_ms"]["samples"] == 2
    assert level["gaps_ms_per_minute"] == 100.0  # 2 × 50 ms over 2 × 30 s
    assert level["handoffs"] == 1
    assert level["failures"] == [{"call": 2, "error": "no greeting heard"}]
    assert not level_passes(level)
    assert summarize_level(2, calls[:2], 0, None)["handoffs"] is None
    assert level_passes(summarize_level(2, calls[:2], 0, None))
