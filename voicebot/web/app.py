"""The HTTP side of the hotline: health check and the browser click-to-call page.

A browser call is a WebRTC peer connection (aiortc, through pipecat's SmallWebRTC transport) that drives the SAME
call pipeline as a phone call; only the transport differs. Signalling is one POST of a complete SDP offer to
``/api/offer`` (the page waits for ICE gathering, so no trickle ICE is needed on loopback or a LAN); ``PATCH
/api/offer`` accepts trickled candidates from clients that send them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from loguru import logger
from pydantic import BaseModel, Field

from voicebot.server import CallRegistry, CallRunner
from voicebot.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
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


def create_app(
    settings: Settings,
    resources: Any,
    *,
    registry: CallRegistry | None = None,
    call_runner: CallRunner | None = None,
) -> FastAPI:
    """Build the FastAPI app.

    ``resources`` are the process-wide loaded models (loaded once, shared by every call). ``registry`` counts
    active calls across SIP and WebRTC so both share one capacity limit; ``call_runner`` runs one call's pipeline
    over a transport (defaults to the voice pipeline; tests may pass an echo runner only for page plumbing).
    """
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
    from pipecat.transports.smallwebrtc.request_handler import (
        IceCandidate,
        SmallWebRTCPatchRequest,
        SmallWebRTCRequest,
        SmallWebRTCRequestHandler,
    )

    calls = registry or CallRegistry(max_calls=settings.sip.max_calls)
    runner = call_runner or _default_call_runner(settings, resources)
    webrtc = SmallWebRTCRequestHandler()
    call_tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # Shutdown: end browser calls (their transcripts are closed by _run_web_call) and the peer connections.
        for task in list(call_tasks):
            task.cancel()
        if call_tasks:
            await asyncio.wait(call_tasks, timeout=5)
        await webrtc.close()

    app = FastAPI(title=f"Bürgertelefon {settings.town}", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.resources = resources
    app.state.calls = calls
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "town": settings.town,
            "models_loaded": resources is not None,
            "active_calls": calls.active,
            "max_calls": calls.max_calls,
            "sip_listening": calls.sip_listening,
        }

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/call")

    @app.get("/call", include_in_schema=False)
    async def call_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "call.html", media_type="text/html")

    @app.post("/api/offer")
    async def offer(request: Request) -> dict[str, str]:
        body = await _json_body(request)
        body.pop("requestData", None)  # extra data pipecat's client may send along; not used here
        body.pop("request_data", None)
        try:
            parsed = OfferRequest.model_validate(body)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=f"Ungültige Anfrage: {_first_error(error)}") from None
        if parsed.type != "offer":
            raise HTTPException(status_code=400, detail="Erwartet wird ein SDP-Angebot (type 'offer').")
        if not parsed.sdp.lstrip().startswith("v=0") or "m=audio" not in parsed.sdp:
            raise HTTPException(status_code=400, detail="Das SDP-Angebot enthält keine Audiospur.")
        if parsed.pc_id is None and calls.full:
            raise HTTPException(
                status_code=503,
                detail="Alle Leitungen sind belegt. Bitte versuchen Sie es in einigen Minuten erneut.",
                headers={"Retry-After": str(settings.sip.retry_after_s)},
            )

        async def on_connection(connection: SmallWebRTCConnection) -> None:
            lease = calls.try_acquire("webrtc")
            if lease is None:
                await connection.disconnect()
                return
            call_id = f"web-{uuid.uuid4().hex[:12]}"
            task = asyncio.create_task(_run_web_call(connection, call_id, runner, lease), name=call_id)
            call_tasks.add(task)
            task.add_done_callback(call_tasks.discard)

        try:
            answer = await webrtc.handle_web_request(
                SmallWebRTCRequest(
                    sdp=parsed.sdp, type=parsed.type, pc_id=parsed.pc_id, restart_pc=parsed.restart_pc
                ),
                on_connection,
            )
        except HTTPException:
            raise
        except Exception as error:  # aiortc raises ValueError & co. on SDP it cannot use
            logger.warning(f"WebRTC offer rejected: {error}")
            raise HTTPException(
                status_code=400, detail=f"Das SDP-Angebot ist nicht verwendbar: {error}"
            ) from None
        if answer is None:
            raise HTTPException(status_code=500, detail="Keine SDP-Antwort erzeugt.")
        return answer

    @app.patch("/api/offer")
    async def ice_candidates(request: Request) -> dict[str, str]:
        body = await _json_body(request)
        try:
            parsed = IcePatchRequest.model_validate(body)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=f"Ungültige Anfrage: {_first_error(error)}") from None
        try:
            await webrtc.handle_patch_request(
                SmallWebRTCPatchRequest(
                    pc_id=parsed.pc_id,
                    candidates=[
                        IceCandidate(c.candidate, c.sdp_mid, c.sdp_mline_index) for c in parsed.candidates
                    ],
                )
            )
        except HTTPException:
            raise  # 404: no such peer connection
        except Exception as error:  # a candidate line aiortc cannot parse
            raise HTTPException(status_code=400, detail=f"Ungültiger ICE-Kandidat: {error}") from None
        return {"status": "ok"}

    return app


async def _run_web_call(connection: Any, call_id: str, runner: CallRunner, lease: Any) -> None:
    """One browser call: transport over the peer connection, the pipeline, and clean-up whichever side ends."""
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
        await call.run()
    finally:
        transcript = getattr(call, "transcript", None)
        if transcript is not None:
            transcript.end(ended_by)  # keeps the pipeline's own reason (goodbye, silence) if it set one
        lease.release()
        await connection.disconnect()  # tells the page ("peerLeft") when the bot ended the call
        logger.info(f"{call_id}: browser call ended ({ended_by})")


def _default_call_runner(settings: Settings, resources: Any) -> CallRunner:
    from voicebot.server import pipeline_call_runner

    return pipeline_call_runner(settings, resources, channel="webrtc")


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="Der Anfragetext ist kein gültiges JSON.") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="Der Anfragetext muss ein JSON-Objekt sein.")
    return body


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'ungültig')}"
    return str(error)
