"""Readiness waits for peers the tests start (sipp, baresip): poll what the kernel says, never sleep a fixed time.

A fixed sleep is either too short on a loaded 2-core machine (flaky) or wasted time everywhere else (issue 7).
"""

from __future__ import annotations

import time
from pathlib import Path

_LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp*


def _bound_ports(protocol: str) -> set[int]:
    """Local ports with a socket of ``protocol`` ("udp": any bound socket; "tcp": listening sockets)."""
    ports: set[int] = set()
    for table in (Path(f"/proc/net/{protocol}"), Path(f"/proc/net/{protocol}6")):
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            if protocol == "tcp" and fields[3] != _LISTEN_STATE:
                continue
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_until_bound(port: int, protocol: str = "udp", timeout_s: float = 10.0) -> None:
    """Return once some process has bound ``port`` (reads /proc: probing by binding would race the peer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port in _bound_ports(protocol):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing bound {protocol} port {port} within {timeout_s} s")
