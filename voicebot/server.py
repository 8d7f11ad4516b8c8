"""`voicebot serve`: one process, one asyncio loop, SIP (UDP+TCP) and HTTP side by side, models loaded once.

Both entry doors (a phone call over SIP, a browser call over WebRTC) share one :class:`CallRegistry`, so the
configured ``sip.max_calls`` bounds the CPU work of the whole process, and both run the same call pipeline through a
:data:`CallRunner`. Heavy imports (pipecat, models) stay inside functions so the CLI starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from voicebot.settings import Settings


class CallHandle(Protocol):
    """A running call pipeline, as the transports see it."""

    async def run(self) -> None:
        """Run the call until the pipeline ends (goodbye, silence, hand-off) or it is cancelled."""

    async def cancel(self) -> None:
        """Stop the call now (the far end hung up)."""


# transport, call id, transport sample rate → a call ready to run
CallRunner = Callable[[Any, str, int], Awaitable[CallHandle]]


@dataclass
class CallLease:
    """One slot of the process's call capacity; release exactly once when the call is over."""

    registry: CallRegistry
    kind: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.registry._release(self)


@dataclass
class CallRegistry:
    """Counts active calls across SIP and WebRTC against one limit (health check and 503/Retry-After)."""

    max_calls: int
    sip_listening: bool = False
    _active: dict[str, int] = field(default_factory=dict)

    @property
    def active(self) -> int:
        return sum(self._active.values())

    @property
    def full(self) -> bool:
        return self.active >= self.max_calls

    def active_by_kind(self) -> dict[str, int]:
        return dict(self._active)

    def try_acquire(self, kind: str) -> CallLease | None:
        if self.full:
            return None
        self._active[kind] = self._active.get(kind, 0) + 1
        return CallLease(self, kind)

    def _release(self, lease: CallLease) -> None:
        self._active[lease.kind] = max(0, self._active.get(lease.kind, 0) - 1)


def pipeline_call_runner(settings: Settings, resources: Any) -> CallRunner:
    """The production :data:`CallRunner`: the voice pipeline (voicebot.pipeline) over any transport."""
    from voicebot.call_pipeline import build_call_handle

    async def run_call(transport: Any, call_id: str, sample_rate: int) -> CallHandle:
        return await build_call_handle(settings, resources, transport, call_id, sample_rate)

    return run_call


async def serve(
    settings: Settings,
    *,
    host: str | None = None,
    sip_port: int | None = None,
    http_port: int | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run SIP and HTTP until SIGINT/SIGTERM (or ``stop`` is set), then shut down cleanly."""
    import uvicorn

    from sip_bridge.calls import SipCallService
    from voicebot.call_pipeline import load_shared_resources
    from voicebot.web.app import create_app

    if host:
        settings = settings.model_copy(
            update={
                "sip": settings.sip.model_copy(update={"bind_host": host}),
                "http": settings.http.model_copy(update={"host": host}),
            }
        )
    if sip_port is not None:
        settings = settings.model_copy(update={"sip": settings.sip.model_copy(update={"port": sip_port})})
    if http_port is not None:
        settings = settings.model_copy(update={"http": settings.http.model_copy(update={"port": http_port})})

    resources = await asyncio.to_thread(load_shared_resources, settings)
    registry = CallRegistry(max_calls=settings.sip.max_calls)
    runner = pipeline_call_runner(settings, resources)

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not possible outside the main thread (tests) or without signal support: then only ``stop`` ends it.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    sip = SipCallService(settings, registry, runner)
    await sip.start()
    registry.sip_listening = True

    app = create_app(settings, resources, registry=registry, call_runner=runner)
    config = uvicorn.Config(
        app, host=settings.http.host, port=settings.http.port, log_level="warning", lifespan="on"
    )
    http = uvicorn.Server(config)
    http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    http_task = asyncio.create_task(http.serve(), name="http")
    while not http.started and not http_task.done():
        await asyncio.sleep(0.02)
    if http_task.done():
        await sip.stop()
        http_task.result()
        raise RuntimeError(f"HTTP server could not start on {settings.http.host}:{settings.http.port}")
    logger.info(
        f"voicebot serving: SIP {settings.sip.bind_host}:{sip.port} ({', '.join(settings.sip.transports)}), "
        f"HTTP http://{settings.http.host}:{settings.http.port}/call"
    )
    if ready:
        ready()
    try:
        await stop.wait()
    finally:
        logger.info("voicebot shutting down")
        registry.sip_listening = False
        await sip.stop()
        http.should_exit = True
        await http_task
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
