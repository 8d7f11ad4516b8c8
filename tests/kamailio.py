"""The shipped Kamailio load balancer (deploy/kamailio/kamailio.cfg) with loopback values for its defines: the
tests run that very file, only its ``#!trydef`` values are given on the command line (``-A NAME=VALUE``)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from voicebot.benchmarks.serve_process import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
KAMAILIO_CFG = REPO_ROOT / "deploy" / "kamailio" / "kamailio.cfg"
EXAMPLE_DISPATCHER_LIST = REPO_ROOT / "deploy" / "kamailio" / "dispatcher.list"


def kamailio_defines(
    port: int, dispatcher_list: Path, control_socket: Path, ping_interval_s: int
) -> list[str]:
    return [
        "-A",
        f"SIP_LISTEN=udp:127.0.0.1:{port}",
        "-A",
        f"SIP_LISTEN_TCP=tcp:127.0.0.1:{port}",
        "-A",
        f'DISPATCHER_LIST="{dispatcher_list}"',
        "-A",
        f'CTL_SOCKET="unix:{control_socket}"',
        "-A",
        f"DS_PING_INTERVAL={ping_interval_s}",
        "-A",
        "CHILDREN=2",
        "-A",
        "LOG_LEVEL=2",  # 2: the config's own notices (which voicebot a call went to, failovers) are in the log
    ]


@dataclass
class Kamailio:
    """Kamailio in the foreground (``-DD -E``: no fork into the background, log to stderr) with its own folder."""

    workdir: Path
    voicebots: list[str]  # SIP URIs of the voicebots, dispatcher set 1
    ping_interval_s: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dispatcher_list = self.workdir / "dispatcher.list"
        # Flags 8: probe from the start; a voicebot joins the rotation when it answers OPTIONS with 200.
        self.dispatcher_list.write_text("".join(f"1 {uri};transport=udp 8 0\n" for uri in self.voicebots))
        self.control_socket = self.workdir / "kamailio_ctl"
        self.log_path = self.workdir / "kamailio.log"

    def defines(self) -> list[str]:
        return kamailio_defines(self.port, self.dispatcher_list, self.control_socket, self.ping_interval_s)

    def command(self) -> list[str]:
        return ["kamailio", "-f", str(KAMAILIO_CFG), *self.defines(), "-DD", "-E", "-m", "64", "-M", "8",
                "-Y", str(self.workdir), "-P", str(self.workdir / "kamailio.pid")]  # fmt: skip

    def start(self) -> None:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"kamailio exited with {self.process.returncode}:\n{self.log_text()[-3000:]}"
                )
            if self.control_socket.exists():
                return
            time.sleep(0.1)
        raise RuntimeError(f"kamailio did not start:\n{self.log_text()[-3000:]}")

    def rpc(self, *command: str) -> str:
        """``kamcmd`` on the control socket, e.g. ``dispatcher.list``."""
        result = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.control_socket}", *command],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return result.stdout

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if hasattr(self, "log"):
            self.log.close()
