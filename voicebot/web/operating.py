"""Operating endpoints (issue 13, decision 0900): ``/readyz`` for a load balancer and ``/metrics`` for Prometheus.

``/healthz`` (in :mod:`voicebot.web.app`) says the process is alive. ``/readyz`` says whether it should get calls:
200 when the models are loaded, the database answers, SIP listens and, with an ``[llm]`` endpoint configured, the
endpoint answers ``GET {base_url}/models``; else 503 with a JSON body naming what is not ready (``draining`` during
a graceful shutdown). The checks run at most once per :data:`READY_CACHE_S` whoever asks, so a flood of requests
cannot turn into a flood of database queries or LLM requests.

``/metrics`` answers only to ``http.metrics_networks`` (loopback by default; 403 for others): what it shows is
no secret, but the hotline's load is nobody else's business. Its labels are bounded by our code
(:mod:`voicebot.metrics`), nothing a peer sends becomes a label.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from voicebot.calls import CallRegistry
from voicebot.metrics import CONTENT_TYPE, METRICS
from voicebot.settings import Settings

if TYPE_CHECKING:
    from voicebot.pipeline.resources import CallResources

READY_CACHE_S = 2.0
CHECK_TIMEOUT_S = 2.0  # the database and the LLM endpoint must answer within this to count as ready


@dataclass
class _Readiness:
    checked_at: float
    checks: dict[str, str]  # name → "ok" or what is wrong (no addresses, no secrets)


class ReadinessProbe:
    """The ``/readyz`` checks, cached for :data:`READY_CACHE_S` and never run twice at once."""

    def __init__(self, settings: Settings, resources: CallResources | None, calls: CallRegistry) -> None:
        self.settings = settings
        self.resources = resources
        self.calls = calls
        self._last: _Readiness | None = None
        self._lock = asyncio.Lock()

    async def checks(self) -> dict[str, str]:
        async with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last.checked_at >= READY_CACHE_S:
                self._last = _Readiness(now, await self._run())
            checks = dict(self._last.checks)
        # Cheap and must be current: read on every request.
        checks["sip"] = "ok" if self.calls.sip_serving else "not listening"
        if self.calls.draining:
            checks["draining"] = "draining"
        return checks

    async def _run(self) -> dict[str, str]:
        checks = {"models": "ok" if self.resources is not None else "not loaded"}
        database, llm = await asyncio.gather(self._database(), self._llm())
        checks["database"] = database
        if llm is not None:
            checks["llm"] = llm
        return checks

    async def _database(self) -> str:
        from sqlalchemy import Engine, text

        engine = getattr(self.resources.records, "engine", None) if self.resources is not None else None
        if not isinstance(engine, Engine):
            return "not configured"

        def ping() -> None:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(asyncio.to_thread(ping), CHECK_TIMEOUT_S)
        except TimeoutError:
            return "no answer"
        except Exception:
            return "unreachable"
        return "ok"

    async def _llm(self) -> str | None:
        base_url = self.settings.llm.base_url
        if not base_url:
            return None  # extractive answers: no endpoint to wait for
        import httpx

        api_key = self.settings.llm.api_key.get_secret_value()
        try:
            async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
                response = await client.get(
                    f"{base_url.rstrip('/')}/models", headers={"Authorization": f"Bearer {api_key}"}
                )
        except httpx.HTTPError:
            return "unreachable"
        return "ok" if response.is_success else f"HTTP {response.status_code}"


def _networks(settings: Settings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(network, strict=False) for network in settings.http.metrics_networks]


def _allowed(host: str | None, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def install_operating_routes(
    app: FastAPI, settings: Settings, resources: CallResources | None, calls: CallRegistry
) -> None:
    """``/readyz`` and ``/metrics`` (both declared PUBLIC in the console's ACCESS table: no staff sign-in; the
    metrics are limited by network instead)."""
    probe = ReadinessProbe(settings, resources, calls)
    metrics_networks = _networks(settings)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await probe.checks()
        not_ready = sorted(name for name, state in checks.items() if state != "ok")
        if not not_ready:
            return JSONResponse({"status": "ready", "checks": checks})
        status = "draining" if "draining" in not_ready else "not ready"
        body: dict[str, Any] = {"status": status, "not_ready": not_ready, "checks": checks}
        return JSONResponse(body, status_code=503, headers={"Cache-Control": "no-store"})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not _allowed(request.client.host if request.client else None, metrics_networks):
            return PlainTextResponse(
                "Kein Zugriff: /metrics antwortet nur den Netzen in http.metrics_networks.\n", status_code=403
            )
        return Response(METRICS.exposition(), media_type=CONTENT_TYPE)
