"""Real SIP peers for the interop tests: baresip (headless, aufile/sndfile, ctrl_tcp) and sipp.

Every process started here is bounded in time (baresip ``-t``, sipp ``-timeout``, plus ``timeout`` in ``wait``) and
killed by its own pid when a test ends.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.benchmarks.serve_process import ServeProcess, free_port

BARESIP_CODECS = {
    "PCMU": "PCMU/8000/1",
    "PCMA": "PCMA/8000/1",
    "G722": "G722/16000/1",
    "opus": "opus/48000/2",
}


def espeak_wav(
    text: str,
    path: Path,
    *,
    rate: int = 8000,
    lead_s: float = 0.5,
    tail_s: float = 4.0,
    words_per_minute: int = 160,
) -> Path:
    """German speech from espeak-ng as mono s16 WAV at ``rate``, padded with silence (baresip ends at EOF)."""
    raw = path.with_suffix(".raw.wav")
    speed = str(words_per_minute)
    subprocess.run(["espeak-ng", "-v", "de", "-s", speed, "-w", str(raw), text], check=True, timeout=30)
    subprocess.run(
        ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path), "pad", str(lead_s), str(tail_s)],
        check=True,
        timeout=30,
    )
    raw.unlink()
    return path


def spoken_turns_wav(
    phrases: list[str],
    path: Path,
    *,
    rate: int = 8000,
    lead_s: float,
    gap_s: float,
    tail_s: float,
    words_per_minute: int = 160,
) -> tuple[Path, list[float]]:
    """Several caller turns in one WAV, ``gap_s`` of silence between them; returns the end time of each."""
    parts: list[np.ndarray] = [np.zeros(int(lead_s * rate), dtype=np.int16)]
    ends: list[float] = []
    position = lead_s
    for index, phrase in enumerate(phrases):
        speech, _ = read_wav(
            espeak_wav(
                phrase,
                path.with_name(f"turn{index}.wav"),
                rate=rate,
                lead_s=0,
                tail_s=0,
                words_per_minute=words_per_minute,
            )
        )
        parts.append((speech * 32767).astype(np.int16))
        position += len(speech) / rate
        ends.append(position)
        pause = gap_s if index < len(phrases) - 1 else tail_s
        parts.append(np.zeros(int(pause * rate), dtype=np.int16))
        position += pause
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.concatenate(parts).tobytes())
    return path, ends


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        samples = np.frombuffer(frames, dtype=np.int16).reshape(-1, wav.getnchannels())[:, 0]
        return samples.astype(np.float32) / 32768.0, wav.getframerate()


def speech_seconds(samples: np.ndarray, rate: int, *, threshold_dbfs: float = -40.0) -> float:
    """Seconds of 20 ms windows whose RMS is above ``threshold_dbfs`` (silence and comfort noise stay below)."""
    window = max(1, rate // 50)
    count = len(samples) // window
    if count == 0:
        return 0.0
    frames = samples[: count * window].reshape(count, window)
    rms = np.sqrt(np.mean(frames**2, axis=1) + 1e-12)
    loud = 20 * np.log10(rms) > threshold_dbfs
    return float(loud.sum()) * 0.02


def free_sip_port_for_baresip(attempts: int = 50) -> int:
    """A port P with P (UDP and TCP) and P + 1 (TCP) free: baresip 1.0 always opens SIP over TLS on the port after
    its SIP port and gives up when that one is taken (seen with two test workers side by side)."""
    for _ in range(attempts):
        port = free_port()
        sockets = []
        try:
            for kind, offset in ((socket.SOCK_DGRAM, 0), (socket.SOCK_STREAM, 0), (socket.SOCK_STREAM, 1)):
                sock = socket.socket(socket.AF_INET, kind)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port
    raise RuntimeError("no free pair of ports for baresip on 127.0.0.1")


@dataclass
class Baresip:
    """One headless baresip instance with its own config directory."""

    workdir: Path
    name: str
    audio_in: Path
    codecs: list[str]
    answer_automatically: bool = False
    source_rate: int = 8000  # ``audio_in``'s sample rate (16000 for a wideband G.722 caller)
    sip_port: int = field(default_factory=free_sip_port_for_baresip)
    ctrl_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.confdir = self.workdir / f"baresip-{self.name}"
        self.confdir.mkdir(parents=True, exist_ok=True)
        # baresip's sndfile module builds the dump file's path in a small fixed buffer: under a deep pytest
        # temporary folder (pytest-xdist adds popen-gwN/) the path no longer fits and nothing is recorded. So the
        # recordings go to a short folder of their own under the system's temporary directory.
        self.recordings = Path(tempfile.mkdtemp(prefix=f"bs-{self.name[:8]}-"))
        self.log_path = self.confdir / "log.txt"
        (self.confdir / "config").write_text(
            "\n".join(
                [
                    f"sip_listen 127.0.0.1:{self.sip_port}",
                    "net_interface 127.0.0.1",
                    f"audio_source aufile,{self.audio_in}",
                    "audio_player none",
                    f"ausrc_srate {self.source_rate}",
                    "ausrc_channels 1",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module g722.so",
                    "module opus.so",
                    "module aufile.so",
                    "module sndfile.so",
                    f"snd_path {self.recordings}",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                    "",
                ]
            )
        )
        codecs = ",".join(BARESIP_CODECS[codec] for codec in self.codecs)
        answer = ";answermode=auto" if self.answer_automatically else ""
        (self.confdir / "accounts").write_text(
            f"<sip:{self.name}@127.0.0.1:{self.sip_port}>;regint=0{answer};audio_codecs={codecs}\n"
        )

    @property
    def uri(self) -> str:
        return f"sip:{self.name}@127.0.0.1:{self.sip_port}"

    def start(self, *, dial: str | None = None, run_s: int = 30) -> None:
        """Start baresip; with ``dial`` it calls that URI at once. It quits by itself after ``run_s``."""
        command = ["baresip", "-f", str(self.confdir), "-t", str(run_s)]
        if dial:
            command[1:1] = ["-e", f"/dial {dial}"]
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "baresip is ready" in self.log_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"baresip {self.name} exited: {self.log_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"baresip {self.name} did not start: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def command(self, command: str, params: str = "") -> dict[str, Any]:
        """One ctrl_tcp command (netstring-framed JSON), e.g. ``hangup`` or ``sndcode`` with digits."""
        request = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5) as conn:
            conn.sendall(f"{len(request)}:".encode() + request + b",")
            data = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                length, _, rest = data.partition(b":")
                if length.isdigit() and len(rest) >= int(length) + 1:
                    message = json.loads(rest[: int(length)])
                    if message.get("response"):
                        return dict(message)
                    data = rest[int(length) + 1 :]
        raise RuntimeError(f"no answer from baresip ctrl_tcp to {command}")

    def wait_for_log(self, needle: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return True
            if self.process is not None and self.process.poll() is not None:
                return needle in self.log_text()
            time.sleep(0.1)
        return False

    def heard(self) -> Path:
        """The WAV of what this peer received (sndfile's ``dump-*-dec.wav``)."""
        found = sorted(self.recordings.glob("dump-*-dec.wav"))
        if not found:
            raise AssertionError(f"baresip {self.name} recorded nothing; log:\n{self.log_text()[-3000:]}")
        return found[-1]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if hasattr(self, "log"):
            self.log.close()


def sipp(args: list[str], *, cwd: Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run sipp to completion (bounded: ``-timeout`` inside, ``timeout_s`` outside); stdout+stderr captured."""
    command = ["sipp", *args, "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-nostdin"]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s + 15, check=False
    )


REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_index_dir() -> Path:
    """The repository's ``var/index`` (built once, reused across runs); an index of an older format is dropped so
    the server rebuilds it instead of refusing to start."""
    import shutil

    from knowledge.index import KnowledgeIndex

    index_dir = REPO_ROOT / "var" / "index"
    try:
        KnowledgeIndex.open(index_dir)
    except (ValueError, OSError, KeyError):
        shutil.rmtree(index_dir, ignore_errors=True)
    return index_dir


class VoicebotServer(ServeProcess):
    """`voicebot serve` on free ports with the tests' models and index; ``settings`` as ``VOICEBOT_*`` values."""

    def __init__(self, workdir: Path, *, models_dir: Path, index_dir: Path, **settings: str) -> None:
        env = {"VOICEBOT_PATHS__MODELS_DIR": str(models_dir), "VOICEBOT_PATHS__INDEX_DIR": str(index_dir)}
        env.update({f"VOICEBOT_{key.upper()}": value for key, value in settings.items()})
        super().__init__(workdir, env, cwd=REPO_ROOT)

    def wait_for_greeting_played(self, started: float, timeout_s: float = 30.0) -> None:
        """Return once the call placed after ``started`` has played its greeting in full (records are saved after
        every turn), so that what the test does next is heard as the caller's turn."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in self.transcripts():
                if float(str(record.get("started_at", 0))) < started - 1:
                    continue
                turns = record.get("turns") or []
                if any(t.get("kind") == "greeting" and t.get("played") for t in turns):
                    return
            time.sleep(0.1)
        raise AssertionError(
            f"the greeting was not played within {timeout_s} s; server log:\n{self.log_tail()}"
        )

    def wait_for_record(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The first call record for which ``predicate`` holds (records are written at every turn and event)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in self.transcripts():
                if predicate(record):
                    return record
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout_s} s; server log:\n{self.log_tail()}")

    def closed_transcript_since(self, started: float, timeout_s: float = 20.0) -> dict[str, Any]:
        """The transcript of the last call placed after ``started`` (``time.time()``), once it is closed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # Records are written by a thread of the server: once it has nothing unsaved, what the call did
            # before this moment (an event noted after the end, say) is in the database.
            health = self.health()
            settled = health is not None and health.get("records_unsaved") == 0
            found = [t for t in self.transcripts() if float(str(t.get("started_at", 0))) >= started - 1]
            if settled and found and found[-1].get("ended_reason"):
                return found[-1]
            time.sleep(0.2)
        raise AssertionError(f"no closed transcript; server log:\n{self.log_tail()}")
