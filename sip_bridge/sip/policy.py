"""Admission policy for inbound traffic: source allow-list, trusted trunk networks, per-source INVITE rate, TCP
connection caps and timeouts, and a log that speaks once per source and kind per interval (so a flood of garbage
cannot flood the log). Pure: every decision takes an explicit ``now``."""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


class NetworkSet:
    """A list of networks (CIDR); ``host in networks`` for IPv4/IPv6 text addresses (IPv4-mapped IPv6 included)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(net, strict=False) for net in networks]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self._networks)


class SourceAllowList:
    """Networks allowed to talk to us; an empty list allows everyone."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = NetworkSet(networks)

    def allows(self, host: str) -> bool:
        return not self._networks or host in self._networks


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window_s`` per key (a deque of timestamps per key, pruned on use)."""

    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 10000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        if len(self._events) > self.max_keys:
            self._events = {k: v for k, v in self._events.items() if v and v[-1] > now - self.window_s}
        times = self._events.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


class RateLimitedLog:
    """Logs a warning at most once per (source, kind) per ``interval_s``; counts what it held back."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._logger = logger
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self.suppressed: dict[tuple[str, str], int] = {}

    def warning(self, source: str, kind: str, message: str, now: float) -> bool:
        key = (source, kind)
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        held_back = self.suppressed.pop(key, 0)
        suffix = f" ({held_back} similar suppressed)" if held_back else ""
        self._logger.warning("%s from %s: %s%s", kind, source, message, suffix)
        self._last[key] = now
        if len(self._last) > 10000:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval_s}
        return True


@dataclass(frozen=True)
class TcpLimits:
    """Bounds on inbound TCP connections: how many, and how long one may sit idle or mid-message."""

    max_connections: int = 256
    max_per_source: int = 16
    idle_timeout_s: float = 30.0  # no message or keep-alive for this long (and no call on it): closed
    read_timeout_s: float = 10.0  # a started message must be complete within this (slowloris)


class ConnectionCounter:
    """Counts open inbound connections in total and per source host; refuses beyond the limits."""

    def __init__(self, max_total: int, max_per_source: int) -> None:
        self.max_total = max_total
        self.max_per_source = max_per_source
        self.total = 0
        self._per_source: dict[str, int] = {}

    def acquire(self, host: str) -> str | None:
        """None when ``host`` may open one more connection (and it is counted), else the refusal kind."""
        if self.total >= self.max_total:
            return "tcp-connection-limit"
        if self._per_source.get(host, 0) >= self.max_per_source:
            return "tcp-source-connection-limit"
        self.total += 1
        self._per_source[host] = self._per_source.get(host, 0) + 1
        return None

    def release(self, host: str) -> None:
        count = self._per_source.get(host, 0)
        if count <= 0:
            return
        self.total -= 1
        if count == 1:
            del self._per_source[host]
        else:
            self._per_source[host] = count - 1


@dataclass
class StreamActivity:
    """Idle and read deadlines of one inbound TCP connection, fed after every chunk the framer has seen.

    Idle: no complete message or RFC 5626 keep-alive ping for ``idle_timeout_s`` closes the connection, unless a call runs over it (the peer
    must be able to send BYE/re-INVITE on the same connection however long the call lasts). Read: bytes of an
    unfinished message must be completed within ``read_timeout_s``, call or not (a slowloris holds a connection
    by trickling a header or announcing a body it never sends)."""

    last_message_at: float
    framed: int = 0
    partial_since: float | None = None

    def update(self, now: float, framed: int, pending_bytes: int) -> None:
        """``framed``: messages and pings the framer has cut so far; ``pending_bytes``: bytes of a message not yet
        complete."""
        if framed != self.framed:
            self.framed = framed
            self.last_message_at = now
            self.partial_since = now if pending_bytes else None
        elif not pending_bytes:
            self.partial_since = None
        elif self.partial_since is None:
            self.partial_since = now

    def deadline(self, limits: TcpLimits, in_call: bool) -> float | None:
        deadlines = []
        if self.partial_since is not None:
            deadlines.append(self.partial_since + limits.read_timeout_s)
        if not in_call:
            deadlines.append(self.last_message_at + limits.idle_timeout_s)
        return min(deadlines, default=None)

    def expired(self, now: float, limits: TcpLimits, in_call: bool) -> str | None:
        """Why the connection is to be closed now ("read-timeout" / "idle-timeout"), or None."""
        if self.partial_since is not None and now >= self.partial_since + limits.read_timeout_s:
            return "read-timeout"
        if not in_call and now >= self.last_message_at + limits.idle_timeout_s:
            return "idle-timeout"
        return None
