"""Admission policy for inbound traffic: source allow-list, trusted trunk networks, per-source INVITE rate, and a
log that speaks once per source and kind per interval (so a flood of garbage cannot flood the log)."""

from __future__ import annotations

import ipaddress
import logging
from collections import deque


class NetworkSet:
    """A list of networks (CIDR); ``host in networks`` for IPv4/IPv6 text addresses (IPv4-mapped IPv6 included)."""

    def __init__(self, networks: list[str]) -> None:
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

    def __init__(self, networks: list[str]) -> None:
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
