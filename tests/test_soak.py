"""What a long-running server must not accumulate per call (issue 15), and the soak benchmark's arithmetic.

The soak itself (`voicebot bench soak --calls N`) prints numbers; these tests pin the causes it found: every SIP
call's codec ran libav filter graphs with a thread pool each, freed only when the garbage collector got round to
the call's reference cycles (threads went from 11 to 39 over 20 calls).
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sip_bridge.media import NegotiatedMedia, RtpEndpoint
from sip_bridge.media.rtp import MediaPeerPolicy
from sip_bridge.media.sdp import CodecSpec
from voicebot.benchmarks.soak import process_sample, slope

HOST = "127.0.0.1"


def _thread_ids() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def _wait_until_gone(threads: set[int], timeout_s: float = 2.0) -> set[int]:
    """Which of ``threads`` still run after bounded polling (a joined thread may leave /proc a moment later)."""
    deadline = time.monotonic() + timeout_s
    while (left := threads & _thread_ids()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


@pytest.fixture
def no_garbage_collection() -> Iterator[None]:
    """What is asserted must be freed by closing, not by a collection that happens to run meanwhile."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


# G.711 (PCMU/PCMA) is a table lookup without libav at call time (decision 0990), so it starts no codec threads:
# the codecs that still run libav's encoders are the ones whose threads must go with the call.
@pytest.mark.parametrize("codec", [CodecSpec("G722", 9, 8000), CodecSpec("opus", 111, 48000, 2)])
async def test_a_closed_rtp_endpoint_leaves_no_codec_threads(
    codec: CodecSpec, no_garbage_collection: None
) -> None:
    before = _thread_ids()
    speaks_first = MediaPeerPolicy(packets_before_receive=None)  # our own leg to staff may talk first
    bot, phone = RtpEndpoint(host=HOST, port=0, policy=speaks_first), RtpEndpoint(host=HOST, port=0)
    bot_port, phone_port = await bot.open(), await phone.open()
    try:
        bot.configure(NegotiatedMedia(codec, None, 20, "sendrecv", HOST, phone_port))
        phone.configure(NegotiatedMedia(codec, None, 20, "sendrecv", HOST, bot_port))
        tone = (np.sin(np.arange(3200) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16).tobytes()
        await bot.send_audio(tone)
        for _ in range(50):  # until the tone came through: the codecs have encoded and decoded
            frame = await asyncio.wait_for(phone.read_audio(), 2.0)
            if np.abs(np.frombuffer(frame, dtype=np.int16)).max() > 1000:
                break
        else:
            pytest.fail("the tone never arrived")
        call_threads = _thread_ids() - before  # libav names its threads like ours: tell them by their ids
        assert call_threads  # the encoders' libav filter graphs run threads while the call lasts
    finally:
        await bot.close()
        await phone.close()
    assert (
        _wait_until_gone(call_threads) == set()
    )  # only the threads the call started count, not the process's


def test_slope_is_least_squares_per_call() -> None:
    assert slope([5.0, 5.0, 5.0]) == 0.0
    assert slope([10.0, 12.0, 14.0, 16.0]) == pytest.approx(2.0)
    assert slope([0.0, 3.0, 1.0, 4.0]) == pytest.approx(1.0)
    assert slope([7.0]) is None


def test_process_sample_reads_memory_and_threads_of_a_process() -> None:
    sample = process_sample(os.getpid())
    status = Path("/proc/self/status").read_text()
    assert sample.threads == int(status.split("Threads:")[1].split()[0]) == sum(sample.thread_names.values())
    assert sample.rss_kb > 10_000


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's arena cap is glibc's")
def test_malloc_arenas_can_be_limited_on_glibc() -> None:
    """`voicebot serve` caps glibc's arenas at start; on glibc the call must take effect. In a child process of
    its own, so that the test run's malloc keeps its settings."""
    code = "from voicebot.process_limits import limit_malloc_arenas; raise SystemExit(0 if limit_malloc_arenas(2) else 3)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0
