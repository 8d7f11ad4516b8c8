"""Run the real sipp (Debian sip-tester) against our endpoint on loopback, bounded in calls and time."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).parent / "scenarios"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SippResult:
    returncode: int
    output: str


async def run_sipp(
    target_port: int | None,
    *,
    scenario: str,
    workdir: Path,
    extra: list[str] | None = None,
    transport: str = "u1",
    timeout_s: float = 20.0,
    sipp_port: int | None = None,
) -> SippResult:
    """``scenario``: a built-in name (``uac``) or an XML file in tests/sip/scenarios. Returns code and output."""
    args = ["sipp"]
    if target_port is not None:
        args.append(f"127.0.0.1:{target_port}")
    if scenario.endswith(".xml"):
        args += ["-sf", str(SCENARIOS / scenario)]
    else:
        args += ["-sn", scenario]
    args += [
        "-i",
        "127.0.0.1",
        "-p",
        str(sipp_port or free_udp_port()),
        "-mp",
        str(free_udp_port()),
        "-t",
        transport,
        "-m",
        "1",
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
        *(extra or []),
    ]
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout_s + 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    return SippResult(process.returncode or 0, stdout.decode(errors="replace")[-3000:] + errors[-3000:])
