"""`voicebot serve` as a subprocess on free loopback ports, the way an operator runs it.

Shared by `voicebot bench sip` and the interop tests, so that both talk to the same server start-up, readiness
check (``/healthz`` says SIP listens) and clean shutdown (SIGINT, as Ctrl-C).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


class ServeProcess:
    """`voicebot serve` with its database ``workdir/voicebot.db`` (SQLite, unless ``VOICEBOT_DATABASE_URL`` is
    set), the JSON fallback under ``workdir/calls`` and its log in ``workdir``.

    ``env`` adds settings as ``VOICEBOT_*`` variables; ``cwd`` is where the server runs (default: here).
    """

    def __init__(
        self, workdir: Path, env: Mapping[str, str] | None = None, *, cwd: Path | None = None
    ) -> None:
        self.sip_port = free_port()
        self.http_port = free_port()
        self.calls_dir = workdir / "calls"
        self.log_path = workdir / "voicebot-serve.log"
        self.cwd = cwd
        self.env = dict(os.environ)
        self.env.setdefault("HF_HUB_OFFLINE", "1")
        self.database_file = workdir / "voicebot.db"
        self.env["VOICEBOT_PATHS__CALLS_DIR"] = str(self.calls_dir)
        self.env["VOICEBOT_PATHS__DATABASE_FILE"] = str(self.database_file)
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._records: Any = None  # a SqlCallRecordStore reading what the server writes

    @property
    def sip_uri(self) -> str:
        return f"sip:hotline@127.0.0.1:{self.sip_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 180.0) -> None:
        """Start the server and return once it listens for SIP; RuntimeError with its log's tail otherwise."""
        command = [sys.executable, "-m", "voicebot.cli", "serve"]
        command += ["--sip-port", str(self.sip_port), "--http-port", str(self.http_port)]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"voicebot serve exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            health = self.health()
            if health and health.get("sip_listening"):
                return
            time.sleep(0.25)
        raise RuntimeError(f"voicebot serve did not come up within {timeout_s:.0f} s:\n{self.log_tail()}")

    async def start_in_thread(self, timeout_s: float = 180.0) -> None:
        """:meth:`start` off the event loop; on failure the process is stopped and RuntimeError raised."""
        try:
            await asyncio.to_thread(self.start, timeout_s)
        except RuntimeError:
            self.stop()
            raise

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=2) as response:
                return dict(json.loads(response.read()))
        except (OSError, ValueError):
            return None

    def wait_idle(self, timeout_s: float = 15.0) -> bool:
        """True once no call is active any more (every pipeline and RTP port released)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            health = self.health()
            if health is not None and health.get("active_calls") == 0:
                return True
            time.sleep(0.2)
        return False

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def transcripts(self) -> list[dict[str, Any]]:
        """The call transcripts written so far, oldest first (read from the server's database)."""
        if self._records is None:
            url = self.env.get("VOICEBOT_DATABASE_URL")
            if url is None and not self.database_file.exists():
                return []  # the server has not created it yet (connecting would)
            from voicebot.db.engine import make_engine
            from voicebot.db.store import SqlCallRecordStore

            engine = make_engine(url or f"sqlite:///{self.database_file}")
            self._records = SqlCallRecordStore(engine, fallback_dir=self.calls_dir)
        return list(reversed(self._records.recent(limit=100_000)))

    def stop(self) -> int | None:
        """SIGINT, then kill after 20 s; the exit status (None if it never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
        if self._records is not None:
            self._records.close()
            self._records = None
        return self.process.returncode
