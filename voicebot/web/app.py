"""The HTTP side of the hotline: health check (``/healthz``; ``/readyz`` and ``/metrics`` in
:mod:`voicebot.web.operating`), the browser click-to-call page and the staff console
(:mod:`voicebot.web.console`: sign-in, availability; every route has an access rule there).

A browser call is a WebRTC peer connection (aiortc, through pipecat's SmallWebRTC transport) that drives the SAME
call pipeline as a phone call; only the transport differs. Signalling is one POST of a complete SDP offer to
``/api/offer`` (the page waits for ICE gathering, so no trickle ICE is needed on loopback or a LAN); ``PATCH
/api/offer`` accepts trickled candidates from clients that send them anyway.

Hostile input is refused early: request bodies are bounded in size and time (:mod:`voicebot.web.limits`), the
offer is checked before a peer connection exists (:mod:`voicebot.web.offer_sdp`), and an offer holds a phone line
only once its browser is connected (:mod:`voicebot.web.browser_calls`).
"""

from __future__ import annotations

import contextlib
import html
import json
import string
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from loguru import logger
from pydantic import BaseModel, Field, ValidationError

from voicebot.calls import CallHandle, CallLease, CallRegistry, CallRunner
from voicebot.settings import Settings
from voicebot.web.browser_calls import BrowserCallDesk, OfferRefused
from voicebot.web.console import install_console, unchecked_routes
from voicebot.web.limits import RequestBodyLimits
from voicebot.web.offer_sdp import OfferSdpError, check_offer_sdp
from voicebot.web.operating import install_operating_routes

if TYPE_CHECKING:
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

    from voicebot.pipeline.resources import CallResources
    from voicebot.telephony.sip_calls import SipCallService

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
WEBRTC_SAMPLE_RATE = 48000  # Opus in the browser runs at 48 kHz; the pipeline resamples where it needs to
MAX_SDP_BYTES = 64 * 1024


class OfferRequest(BaseModel):
    """The browser's SDP offer (the shape pipecat's clients send, camelCase accepted)."""

    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
    type: str
    pc_id: str | None = None
    restart_pc: bool | None = None


class IceCandidateModel(BaseModel):
    candidate: str
    sdp_mid: str
    sdp_mline_index: int


class IcePatchRequest(BaseModel):
    pc_id: str
    candidates: list[IceCandidateModel]


def _records_unsaved(resources: CallResources | None) -> int:
    """Calls whose newest record changes are not written yet (the writer thread's backlog: it grows while the
    database is slow or locked). 0 also means: everything the calls did until now can be read back."""
    from voicebot.db.store import SqlCallRecordStore

    records = resources.records if resources is not None else None
    return records.unsaved() if isinstance(records, SqlCallRecordStore) else 0


def create_app(
    settings: Settings,
    resources: CallResources | None,
    *,
    registry: CallRegistry | None = None,
    call_runner: CallRunner | None = None,
    phone_calls: SipCallService | None = None,
) -> FastAPI:
    """Build the FastAPI app.

    ``resources`` are the process-wide loaded models (loaded once, shared by every call; None only for tests
    that pass their own ``call_runner``). ``registry`` counts
    active calls across SIP and WebRTC so both share one capacity limit; ``call_runner`` runs one call's pipeline
    over a transport (defaults to the voice pipeline; tests may pass an echo runner only for page plumbing).
    ``phone_calls``: the SIP service of the same process; with it, staff may take the callers it holds in the
    queue in the console's browser (:mod:`voicebot.web.browser_accept`).
    """
    from aiortc.sdp import candidate_from_sdp

    calls = registry or CallRegistry(max_calls=settings.sip.max_calls)
    runner = call_runner or _default_call_runner(settings, resources)

    async def run_call(connection: SmallWebRTCConnection, lease: CallLease) -> None:
        await _run_web_call(connection, f"web-{uuid.uuid4().hex[:12]}", runner, lease)

    desk = BrowserCallDesk(
        calls,
        run_call,
        max_pending=settings.http.max_pending_offers,
        max_pending_per_source=settings.http.max_pending_offers_per_source,
        connect_timeout_s=settings.http.offer_connect_timeout_s,
        busy_retry_after_s=settings.sip.retry_after_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # Shutdown: end browser calls (their transcripts are closed by _run_web_call) and pending connections.
        await desk.close()

    docs = settings.http.api_docs  # the schema and its pages only where a developer switched them on
    app = FastAPI(
        title=f"Bürgertelefon {settings.town}",
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(
        RequestBodyLimits, max_bytes=settings.http.max_body_bytes, timeout_s=settings.http.body_timeout_s
    )
    app.state.settings = settings
    app.state.resources = resources
    app.state.calls = calls
    app.state.browser_calls = desk
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(OfferRefused)
    async def offer_refused(_request: Request, refused: OfferRefused) -> JSONResponse:
        headers = {"Retry-After": str(refused.retry_after_s)} if refused.retry_after_s is not None else None
        return JSONResponse({"detail": refused.detail}, status_code=refused.status, headers=headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "town": settings.town,
            "models_loaded": resources is not None,
            "active_calls": calls.active,
            "max_calls": calls.max_calls,
            "sip_listening": calls.sip_serving,
            "draining": calls.draining,
            # The knowledge index generation calls are answered from (changes after `voicebot kb ingest`).
            "knowledge_generation": getattr(resources.answer_engine, "generation", None)
            if resources
            else None,
            "records_unsaved": _records_unsaved(resources),
        }

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/call")

    page = render_call_page(settings)

    @app.get("/call", include_in_schema=False)
    async def call_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.post("/api/offer")
    async def offer(request: Request) -> dict[str, str]:
        body = await _json_body(request)
        body.pop("requestData", None)  # extra data pipecat's client may send along; not used here
        body.pop("request_data", None)
        try:
            parsed = OfferRequest.model_validate(body)
        except ValidationError as error:
            raise HTTPException(status_code=400, detail=f"Ungültige Anfrage: {_first_error(error)}") from None
        if parsed.type != "offer":
            raise HTTPException(status_code=400, detail="Erwartet wird ein SDP-Angebot (type 'offer').")
        try:
            check_offer_sdp(parsed.sdp)  # before anything is created for it
        except OfferSdpError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        source = request.client.host if request.client else "unknown"
        return await desk.offer(
            parsed.sdp, source=source, pc_id=parsed.pc_id, restart_pc=bool(parsed.restart_pc)
        )

    @app.patch("/api/offer")
    async def ice_candidates(request: Request) -> dict[str, str]:
        body = await _json_body(request)
        try:
            parsed = IcePatchRequest.model_validate(body)
        except ValidationError as error:
            raise HTTPException(status_code=400, detail=f"Ungültige Anfrage: {_first_error(error)}") from None
        desk.connection(parsed.pc_id)  # 404 for an unknown connection, before its candidates are parsed
        candidates = []
        for item in parsed.candidates:
            try:
                candidate = candidate_from_sdp(item.candidate)
            except Exception:  # a candidate line aiortc cannot parse (its message would echo the line)
                raise HTTPException(status_code=400, detail="Ungültiger ICE-Kandidat.") from None
            candidate.sdpMid = item.sdp_mid
            candidate.sdpMLineIndex = item.sdp_mline_index
            candidates.append(candidate)
        try:
            await desk.add_ice_candidates(parsed.pc_id, candidates)
        except OfferRefused:
            raise
        except Exception:  # aiortc refuses a candidate it cannot use
            raise HTTPException(status_code=400, detail="Ungültiger ICE-Kandidat.") from None
        return {"status": "ok"}

    install_operating_routes(app, settings, resources, calls)
    console = install_console(app, settings)
    from voicebot.web.browser_accept import install_browser_accept

    install_browser_accept(app, console, phone_calls)
    unchecked = unchecked_routes(app)
    if unchecked:  # every route needs a decision on who may use it (voicebot/web/console.py ACCESS)
        raise RuntimeError(f"routes without an access rule: {unchecked}")
    return app


class CallPageSettingsError(ValueError):
    """A setting the /call page shows cannot be used (one line saying which and why)."""


def render_call_page(settings: Settings) -> str:
    """The /call page with the town's name and its privacy notice link (settings ``town``, ``privacy_url``),
    both HTML-escaped; rendered once, when the app is built. A privacy URL that is not http(s) or a path on this
    site (``javascript:``, a typo) is a settings error, not a link."""
    privacy_url = settings.privacy_url.strip()
    if not privacy_url.startswith(("https://", "http://", "/")) or privacy_url.startswith("//"):
        raise CallPageSettingsError(
            f"privacy_url must be an http(s) address or a path on this site, not {privacy_url!r}"
        )
    template = string.Template((TEMPLATES_DIR / "call.html").read_text(encoding="utf-8"))
    return template.substitute(town=html.escape(settings.town), privacy_url=html.escape(privacy_url))


async def _run_web_call(
    connection: SmallWebRTCConnection, call_id: str, runner: CallRunner, lease: CallLease
) -> None:
    """:func:`_web_call` with every line it and its tasks log naming ``call_id`` (decision 0912)."""
    from voicebot.logs import call_context

    with call_context(call_id):
        await _web_call(connection, call_id, runner, lease)


async def _web_call(
    connection: SmallWebRTCConnection, call_id: str, runner: CallRunner, lease: CallLease
) -> None:
    """One browser call over a connected peer connection: transport, the pipeline, and clean-up whichever side
    ends (the :class:`BrowserCallDesk` releases the lease and closes the connection also if this fails)."""
    from pipecat.transports.base_transport import TransportParams
    from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

    transport = SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_in_sample_rate=WEBRTC_SAMPLE_RATE,
            audio_out_sample_rate=WEBRTC_SAMPLE_RATE,
        ),
    )
    # No hand-off target in a browser: the bot says the hand-off sentence and the call goes on.
    call = await runner(transport, call_id, WEBRTC_SAMPLE_RATE, None)

    ended_by = "pipeline-ended"  # goodbye or silence, unless the browser leaves first

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: Any, _client: Any) -> None:
        nonlocal ended_by
        logger.info(f"{call_id}: browser left")
        ended_by = "caller:left"
        await call.cancel()

    logger.info(f"{call_id}: browser call started")
    try:
        if connection.pc.connectionState in ("failed", "closed"):  # left while the pipeline was being built
            ended_by = "caller:left"
        else:
            await call.run()
    finally:
        call.transcript.end(ended_by)  # keeps the pipeline's own reason (goodbye, silence) if it set one
        lease.release()
        await connection.disconnect()  # tells the page ("peerLeft") when the bot ended the call
        logger.info(f"{call_id}: browser call ended ({ended_by})")


def _default_call_runner(settings: Settings, resources: CallResources | None) -> CallRunner:
    from voicebot.pipeline.handle import pipeline_call_runner

    if resources is not None:
        return pipeline_call_runner(settings, resources, channel="webrtc")

    async def without_models(*_call: object) -> CallHandle:
        raise RuntimeError("no models loaded: create_app got neither resources nor a call_runner")

    return without_models


async def _json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; size, time and content type were checked by :class:`RequestBodyLimits`."""
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack allows
        raise HTTPException(status_code=400, detail="Der Anfragetext ist kein gültiges JSON.") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="Der Anfragetext muss ein JSON-Objekt sein.")
    return body


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'ungültig')}"
