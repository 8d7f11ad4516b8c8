"""`voicebot serve`: one process, one asyncio loop, SIP (UDP+TCP) and HTTP side by side, models loaded once.

The composition root: only the CLI imports it. Both entry doors (a phone call over SIP,
:mod:`voicebot.telephony`; a browser call over WebRTC, :mod:`voicebot.web`) share one
:class:`~voicebot.calls.CallRegistry`, so the configured ``sip.max_calls`` bounds the CPU work of the whole
process, and both run the same call pipeline through one :data:`~voicebot.calls.CallRunner`. Heavy imports
(pipecat, models) stay inside functions so the CLI starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from loguru import logger

from voicebot.calls import CallRegistry
from voicebot.metrics import METRICS
from voicebot.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from uvicorn import Config, Server

    from voicebot.pipeline.resources import CallResources
    from voicebot.telephony.pbx_handoff import PbxHandoffs

HTTP_KEEP_ALIVE_S = 5  # an idle keep-alive HTTP connection is closed after this
HTTP_MAX_HEAD_BYTES = 16 * 1024  # request line + headers larger than this are refused by h11


class ListenError(OSError):
    """A port could not be bound (its message names which); other OSErrors at start are files and folders."""


def _naming_port(error: OSError, what: str, host: str, port: int) -> ListenError:
    """The same error, saying which port could not be bound ("Address already in use" alone does not)."""
    reason = error.strerror or str(error)
    return ListenError(error.errno, f"{what} port {port} on {host}: {reason}")


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


def http_server_config(app: FastAPI, settings: Settings, **overrides: Any) -> Config:
    """uvicorn's configuration for the hotline's HTTP side.

    No ``Server`` header (it named the server software to anyone); h11 with a deadline for the request head
    (:func:`voicebot.web.limits.h11_with_head_timeout`) and a bounded head size; a short keep-alive. Request
    bodies are bounded in the app (:mod:`voicebot.web.limits`). uvicorn's ``limit_concurrency`` stays off: its
    503 carries no Retry-After. ``X-Forwarded-For`` names the client only when the connection comes from one of
    ``http.trusted_proxies`` (the TLS reverse proxy): the per-source offer cap must see the citizen, not the
    proxy, and nobody else may choose the address it sees (uvicorn alone would trust loopback, or whatever
    ``FORWARDED_ALLOW_IPS`` says).
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
        "proxy_headers": bool(settings.http.trusted_proxies),
        "forwarded_allow_ips": list(settings.http.trusted_proxies),
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def _uvicorn_without_signal_handlers(config: Config) -> Server:
    """uvicorn replaces SIGINT/SIGTERM handlers while serving; here one handler stops SIP and HTTP together."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


def _upgrade_schema(settings: Settings) -> None:
    """The database schema to the newest revision (:class:`~voicebot.db.migrate.DatabaseUnavailable` if the
    database cannot be used)."""
    from voicebot.db.migrate import upgrade_configured

    before, where = upgrade_configured(settings)
    if not before.up_to_date:
        logger.info(f"database {where}: schema upgraded from {before.current or 'empty'} to {before.head}")


def _pbx_handoffs(settings: Settings, resources: CallResources) -> PbxHandoffs | None:
    """Queue entries for hand-offs to the PBX's queue, in the database the call records go to (none without)."""
    from sqlalchemy import Engine

    from voicebot.db.repository import Repository
    from voicebot.telephony.pbx_handoff import PbxHandoffs

    engine = getattr(resources.records, "engine", None)
    if not isinstance(engine, Engine):
        return None
    return PbxHandoffs(settings, Repository(engine), resources.records)


def load_shared_resources(settings: Settings) -> CallResources:
    """Every model a call needs, loaded once for the whole process (raises with a fix-it line if missing)."""
    from voicebot.pipeline.resources import CallResources

    return CallResources.load(settings)


async def _until_stopped(
    stop: asyncio.Event, drain: asyncio.Event, draining: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Return once ``stop`` is set, or once a drain (``drain`` set) has ended its calls (or ``stop`` cut it)."""
    stopped = asyncio.create_task(stop.wait(), name="stop")
    drain_asked = asyncio.create_task(drain.wait(), name="drain")
    try:
        await asyncio.wait({stopped, drain_asked}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return
        logger.info("SIGTERM: draining (no new calls; the running ones may finish)")
        drained = asyncio.create_task(draining(), name="drain-calls")
        await asyncio.wait({stopped, drained}, return_when=asyncio.FIRST_COMPLETED)
        if not drained.done():
            logger.info("stopped during the drain: ending the calls now")
            drained.cancel()
        try:
            await drained
        except asyncio.CancelledError:
            pass
        except Exception:  # the shutdown goes on: the calls still up get their BYE from sip.stop()
            logger.exception("the drain failed")
    finally:
        for task in (stopped, drain_asked):
            task.cancel()


def _freeze_startup_objects() -> None:
    """Move what start-up created (models, index, modules: over 100,000 objects that live as long as the process)
    out of the garbage collector's view.

    Each call leaves some reference cycles behind (its pipeline graph, with the audio frames still queued at
    hang-up). Python collects them in a full collection, which it runs only once the objects that survived
    grew by a quarter of all long-lived ones: with the start-up objects counted, every ~20 calls, so memory
    climbed ≈ 1 MB per call in between, and each of those collections stopped the event loop (every call's
    audio) for ≈ 130 ms on a 2-core machine. Frozen, they neither delay nor slow down the full collections.
    """
    gc.collect()
    gc.freeze()


async def serve(
    settings: Settings,
    *,
    host: str | None = None,
    sip_port: int | None = None,
    http_port: int | None = None,
    stop: asyncio.Event | None = None,
    drain: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run SIP and HTTP until SIGINT (or ``stop`` is set), then shut down cleanly: calls still up get a BYE.

    SIGTERM (or ``drain`` set) drains first (decision 0900): no new calls, the running ones go on for up to
    ``sip.drain_timeout_s``, then hear ``call.drain_message`` and get a BYE; a second SIGTERM or a SIGINT meanwhile
    stops at once."""
    from knowledge.engine import ReloadableAnswerEngine
    from knowledge.index import index_generation
    from sip_bridge.sip.transport import raise_open_file_limit
    from voicebot.db.engine import engine_from_settings
    from voicebot.db.repository import Repository
    from voicebot.knowledge_reload import KnowledgeReloader
    from voicebot.pipeline.handle import pipeline_call_runner
    from voicebot.privacy.job import run_retention_job
    from voicebot.records import close_interrupted_calls
    from voicebot.telephony.queue import QueueDesk, process_id
    from voicebot.telephony.sip_calls import SipCallService
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

    # Bound before the models load: a taken port is a clean error at once, naming the port, and nothing has
    # started yet.
    try:
        http_socket = _bind_http(settings.http.host, settings.http.port)
    except OSError as error:
        raise _naming_port(error, "HTTP", settings.http.host, settings.http.port) from error
    # Taken before the engine is built: an ingest that finishes meanwhile is reloaded, never missed.
    index_generation_at_start = index_generation(settings.paths.index_dir)
    try:
        await asyncio.to_thread(
            _upgrade_schema, settings
        )  # before the models load: a wrong URL fails at once
        resources = await asyncio.to_thread(load_shared_resources, settings)
    except BaseException:
        http_socket.close()
        raise
    answer_engine = ReloadableAnswerEngine(resources.answer_engine, index_generation_at_start)
    resources.answer_engine = answer_engine  # every call asks it; `kb ingest` swaps what is behind it
    reloader = KnowledgeReloader(settings.knowledge(), answer_engine)
    _freeze_startup_objects()
    registry = CallRegistry(max_calls=settings.sip.max_calls)
    if resources.records is not None:  # here only: another voicebot command must not judge the server's calls
        await asyncio.to_thread(close_interrupted_calls, resources.records)
    runner = pipeline_call_runner(settings, resources, channel="sip")

    stop = stop or asyncio.Event()
    drain = drain or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_sigterm() -> None:  # the first one drains, a second one stops at once
        (stop if drain.is_set() else drain).set()

    for signum, handler in ((signal.SIGINT, stop.set), (signal.SIGTERM, on_sigterm)):
        # Not possible outside the main thread (tests) or without signal support: then only ``stop`` ends it.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, handler)

    sip = SipCallService(settings, registry, runner, pbx_handoffs=_pbx_handoffs(settings, resources))
    queue_engine = engine_from_settings(settings)
    try:
        await sip.start()
    except OSError as error:
        http_socket.close()
        transports = "/".join(settings.sip.transports).upper()
        raise _naming_port(error, f"SIP ({transports})", settings.sip.bind_host, settings.sip.port) from error
    except BaseException:
        http_socket.close()
        raise
    registry.sip_listening = True
    registry.sip_probe = lambda: sip.listening
    # The bot's own queue: this server's id is known once the SIP port is; the entries its previous run held
    # are abandoned before it takes calls (decision 0800).
    sip.queue = queue_desk = QueueDesk(
        settings.queue,
        Repository(queue_engine),
        process=process_id(settings, sip.port),
        records=resources.records,
        listen=any(group.mode == "queue" for group in settings.handoff.groups),
    )
    try:
        await queue_desk.start()
    except BaseException:
        await sip.stop()
        http_socket.close()
        raise

    web_runner = pipeline_call_runner(settings, resources, channel="webrtc")
    app = create_app(settings, resources, registry=registry, call_runner=web_runner, phone_calls=sip)
    http = _uvicorn_without_signal_handlers(http_server_config(app, settings))
    http_task = asyncio.create_task(http.serve(sockets=[http_socket]), name="http")
    while not http.started and not http_task.done():
        await asyncio.sleep(0.02)
    if http_task.done():
        await sip.stop()
        await queue_desk.stop()
        raise RuntimeError(f"HTTP server could not start on {settings.http.host}:{settings.http.port}")
    logger.info(
        f"voicebot serving: SIP {settings.sip.bind_host}:{sip.port} ({', '.join(settings.sip.transports)}), "
        f"HTTP http://{settings.http.host}:{settings.http.port}/call"
    )
    reload_task = asyncio.create_task(reloader.run(), name="knowledge-reload")
    retention_task = asyncio.create_task(run_retention_job(queue_engine, settings), name="retention")
    METRICS.watch(
        active=registry.active_by_kind,
        max=lambda: registry.max_calls,
        draining=lambda: int(registry.draining),
        queue_waiting=lambda: sum(
            1 for c in sip.calls.values() if c.queue is not None and c.queue.queued_at is not None
        ),
    )
    METRICS.count_errors()
    if ready:
        ready()
    try:
        await _until_stopped(
            stop, drain, lambda: sip.drain(settings.sip.drain_timeout_s, settings.call.drain_message)
        )
    finally:
        logger.info("voicebot shutting down")
        reload_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reload_task
        retention_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention_task
        registry.sip_listening = False
        await sip.stop()
        await queue_desk.stop()
        queue_engine.dispose()
        http.should_exit = True
        await http_task
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
