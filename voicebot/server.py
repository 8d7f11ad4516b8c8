"""`voicebot serve`: one process, one asyncio loop, SIP (UDP+TCP) and HTTP side by side, models loaded once.

Both entry doors (a phone call over SIP, a browser call over WebRTC) share one :class:`CallRegistry`, so the
configured ``sip.max_calls`` bounds the CPU work of the whole process, and both run the same call pipeline through a
:data:`CallRunner`. Heavy imports (pipecat, models) stay inside functions so the CLI starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from voicebot.settings import Settings

HTTP_KEEP_ALIVE_S = 5  # an idle keep-alive HTTP connection is closed after this
HTTP_MAX_HEAD_BYTES = 16 * 1024  # request line + headers larger than this are refused by h11


class CallHandle(Protocol):
    """A running call pipeline, as the transports see it."""

    async def run(self) -> None:
        """Run the call until the pipeline ends (goodbye, silence, hand-off) or it is cancelled."""

    async def cancel(self) -> None:
        """Stop the call now (the far end hung up)."""


# Gets HandoffRequestFrame / CallEndingFrame once the caller heard the words that go with them.
CallEventHandler = Callable[[Any], Awaitable[None]]
# (transport, call id, the transport's output sample rate, event handler) → a call ready to run
CallRunner = Callable[[Any, str, int, CallEventHandler | None], Awaitable[CallHandle]]


@dataclass
class PipelineCall:
    """The voice pipeline of one call (voicebot.pipeline) as a :class:`CallHandle`."""

    worker: Any  # pipecat PipelineWorker
    transcript: Any  # voicebot.pipeline.transcript.CallTranscript

    async def run(self) -> None:
        from pipecat.workers.runner import WorkerRunner

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        await runner.run()

    async def cancel(self) -> None:
        await self.worker.cancel(reason="hang-up")

    async def say(self, kind: str, text: str, *, then: Any = None, language: str = "de") -> None:
        """Speak ``text`` as a bot turn from outside the pipeline; ``then`` (a frame) follows its audio."""
        from voicebot.pipeline.speech import bot_turn_frames

        frames = bot_turn_frames(self.transcript, kind, text, language=language, interruptible=False)
        if then is not None:
            frames.append(then)
        await self.worker.queue_frames(frames)


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
    sip_probe: Callable[[], bool] | None = None  # the SIP listeners' real state (closed transport: False)
    _active: dict[str, int] = field(default_factory=dict)

    @property
    def sip_serving(self) -> bool:
        """SIP was started and its listeners still serve: what /healthz reports as ``sip_listening``."""
        return self.sip_listening and (self.sip_probe is None or self.sip_probe())

    @property
    def active(self) -> int:
        return sum(self._active.values())

    @property
    def full(self) -> bool:
        return self.active >= self.max_calls

    def try_acquire(self, kind: str) -> CallLease | None:
        if self.full:
            return None
        self._active[kind] = self._active.get(kind, 0) + 1
        return CallLease(self, kind)

    def _release(self, lease: CallLease) -> None:
        self._active[lease.kind] = max(0, self._active.get(lease.kind, 0) - 1)


def pipeline_call_runner(settings: Settings, resources: Any) -> CallRunner:
    """The production :data:`CallRunner`: the voice pipeline (voicebot.pipeline) over any transport."""
    from voicebot.pipeline.pipeline import build_call_pipeline

    async def run_call(
        transport: Any, call_id: str, sample_rate: int, on_event: CallEventHandler | None
    ) -> CallHandle:
        worker, transcript = build_call_pipeline(
            settings, transport, resources, call_id, on_event, audio_out_sample_rate=sample_rate
        )
        return PipelineCall(worker, transcript)

    return run_call


def _bind_http(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound before anything else starts so that a taken port is a clean error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def http_server_config(app: Any, settings: Settings, **overrides: Any) -> Any:
    """uvicorn's configuration for the hotline's HTTP side.

    No ``Server`` header (it named the server software to anyone); h11 with a deadline for the request head
    (:func:`voicebot.web.limits.h11_with_head_timeout`) and a bounded head size; a short keep-alive. Request
    bodies are bounded in the app (:mod:`voicebot.web.limits`). uvicorn's ``limit_concurrency`` stays off: its
    503 carries no Retry-After.
    """
    import uvicorn

    from voicebot.web.limits import h11_with_head_timeout

    options: dict[str, Any] = {
        "log_level": "warning",
        "lifespan": "on",
        "http": h11_with_head_timeout(settings.http.head_timeout_s),
        "server_header": False,
        "timeout_keep_alive": HTTP_KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": HTTP_MAX_HEAD_BYTES,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def _uvicorn_without_signal_handlers(config: Any) -> Any:
    """uvicorn replaces SIGINT/SIGTERM handlers while serving; here one handler stops SIP and HTTP together."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


def load_shared_resources(settings: Settings) -> Any:
    """Every model a call needs, loaded once for the whole process (raises with a fix-it line if missing)."""
    from voicebot.pipeline.resources import CallResources

    return CallResources.load(settings)


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
    from voicebot.telephony.sip_calls import SipCallService
    from sip_bridge.sip.transport import raise_open_file_limit
    from voicebot.web.app import create_app

    raise_open_file_limit()  # idle TCP connections must not use up the descriptors calls and /healthz need

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

    # OSError here means the port is taken, and nothing has started yet.
    http_socket = _bind_http(settings.http.host, settings.http.port)
    sip = SipCallService(settings, registry, runner)
    try:
        await sip.start()
    except BaseException:
        http_socket.close()
        raise
    registry.sip_listening = True
    registry.sip_probe = lambda: sip.listening

    app = create_app(settings, resources, registry=registry, call_runner=runner)
    http = _uvicorn_without_signal_handlers(http_server_config(app, settings))
    http_task = asyncio.create_task(http.serve(sockets=[http_socket]), name="http")
    while not http.started and not http_task.done():
        await asyncio.sleep(0.02)
    if http_task.done():
        await sip.stop()
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
