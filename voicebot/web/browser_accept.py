"""The console's "Im Browser annehmen" (issue 10, way 2; decision 0850): the routes between the console page's
WebRTC connection and :class:`voicebot.telephony.browser_leg.BrowserLeg`.

- ``POST /konsole/im-browser`` (JSON: ``csrf``, ``eintrag``, ``sdp``, ``type``): the SDP answer for a caller this
  process holds; 409 when it is held by another server (:data:`ELSEWHERE`), is no longer waiting, or the member of
  staff already has a call in the browser;
- ``POST /konsole/im-browser/auflegen`` (JSON: ``csrf``): staff hangs up;
- ``GET /konsole/im-browser/status``: the state of this member's leg (``connecting``/``connected``/``ended``) and the
  German sentence the page shows; the page asks every second while a call is open.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from loguru import logger

from voicebot.db.models import QueueEntry, QueueStatus
from voicebot.telephony.browser_leg import CONNECTED, CONNECTING, BrowserLeg, BrowserLegs
from voicebot.web.offer_sdp import OfferSdpError, check_offer_sdp

if TYPE_CHECKING:
    from voicebot.telephony.sip_calls import SipCall, SipCallService
    from voicebot.web.console import Console

ELSEWHERE = "Anruf liegt auf einem anderen Server – bitte am Telefon annehmen."
TAKEN = "Dieser Anruf wartet nicht mehr (eine andere Person war schneller, oder die anrufende Person hat aufgelegt)."
ALREADY = "Sie haben bereits ein Gespräch im Browser. Bitte legen Sie zuerst auf."
STATE_TEXTS = {
    CONNECTING: "Verbindung wird aufgebaut …",
    CONNECTED: "Verbunden – Sie sprechen mit der anrufenden Person.",
}
MAX_SDP_CHARS = 64 * 1024
NO_STORE = {"Cache-Control": "no-store"}


def leg_state(leg: BrowserLeg) -> dict[str, Any]:
    """What the page shows: the state, its German sentence, and whether the call was put through (then the
    wrap-up link follows the end)."""
    return {
        "state": leg.state,
        "text": STATE_TEXTS.get(leg.state, leg.ended_text),
        "eintrag": leg.entry_id,
        "verbunden": leg.keeps_call,
    }


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=NO_STORE)


class BrowserAccept:
    """This process's browser legs and the calls they may take (the callers its SIP service holds in the queue)."""

    def __init__(self, console: Console, phone_calls: SipCallService | None) -> None:
        self.console = console
        self.phone_calls = phone_calls
        self.legs = BrowserLegs()

    @property
    def enabled(self) -> bool:
        calls = self.phone_calls
        return calls is not None and calls.queue is not None and self.console.settings.queue.browser_accept

    def holds(self, entry: QueueEntry) -> bool:
        """Whether this process holds the entry's caller (only then can its audio reach this browser)."""
        calls = self.phone_calls
        if not self.enabled or calls is None or calls.queue is None:
            return False
        return (entry.process or {}).get("id") == calls.queue.process_id

    def waiting_call(self, entry_id: int) -> SipCall | None:
        """The call of this process waiting in the queue as ``entry_id`` (not being put through, not ended)."""
        if self.phone_calls is None:
            return None
        for call in self.phone_calls.calls.values():
            wait = call.queue
            if (
                wait is not None
                and wait.entry_id == entry_id
                and wait.task is not None
                and not wait.task.done()
                and not call.finished
                and call.transfer is None
                and call.browser is None
            ):
                return call
        return None


def install_browser_accept(
    app: FastAPI, console: Console, phone_calls: SipCallService | None
) -> BrowserAccept:
    accept = BrowserAccept(console, phone_calls)
    console.browser_accept = accept

    async def json_body(request: Request) -> dict[str, Any] | None:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            return None
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            return None
        return body if isinstance(body, dict) else None

    async def checked(request: Request, path: str) -> tuple[Any, dict[str, Any]] | JSONResponse:
        user, session = console.require(request, path)
        body = await json_body(request)
        if body is None:
            return _refuse(400, "Erwartet wird ein JSON-Objekt.")
        token = body.get("csrf")
        if not isinstance(token, str) or not console.signer.csrf_ok(session, token):
            return _refuse(403, "Das Formular ist ungültig oder abgelaufen. Bitte laden Sie die Seite neu.")
        return user, body

    @app.post("/konsole/im-browser", include_in_schema=False)
    async def take(request: Request) -> Response:
        found = await checked(request, "/konsole/im-browser")
        if isinstance(found, JSONResponse):
            return found
        user, body = found
        raw_id, sdp = body.get("eintrag"), body.get("sdp")
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not raw_id.isascii() or not raw_id.isdigit() or len(raw_id) > 12:
            return _refuse(400, "Ungültige Eintragsnummer.")
        if body.get("type") != "offer" or not isinstance(sdp, str) or not 0 < len(sdp) <= MAX_SDP_CHARS:
            return _refuse(400, "Erwartet wird ein SDP-Angebot (type 'offer').")
        entry_id = int(raw_id)
        entry = console.repository.queue_entry(entry_id)
        if entry is None:
            return _refuse(404, "Diesen Eintrag gibt es nicht.")
        if user.groups is not None and entry.group_name not in user.groups:
            return _refuse(403, "Dieser Anruf gehört nicht zu Ihren Gruppen.")
        if entry.status != QueueStatus.WAITING.value:
            return _refuse(409, TAKEN)
        if not accept.holds(entry):
            return _refuse(409, ELSEWHERE)
        call = accept.waiting_call(entry_id)
        if call is None or call.queue is None or phone_calls is None:
            return _refuse(409, TAKEN)
        if accept.legs.busy(user.id):
            return _refuse(409, ALREADY)
        try:
            check_offer_sdp(sdp)
        except OfferSdpError as error:
            return _refuse(400, str(error))
        settings = console.settings
        leg = BrowserLeg(
            phone_calls,
            call,
            entry_id=entry_id,
            staff_user_id=user.id,
            staff_name=user.username,
            connect_timeout_s=settings.queue.browser_connect_timeout_s,
            media_timeout_s=settings.sip.rtp_inactivity_timeout_s,
        )
        accept.legs.add(leg)  # before the first await: a second offer of the same member is refused
        try:
            answer = await leg.answer(sdp)
        except Exception as error:  # aiortc's message may quote the offer: it is logged, not answered
            await leg.close("not-connected")
            logger.warning(
                f"browser accept of entry {entry_id}: offer refused by aiortc: {str(error)[:200]!r}"
            )
            return _refuse(400, "Das SDP-Angebot ist nicht verwendbar.")
        wait = call.queue
        # No await from here to the offer: the caller's wait sees the leg whenever it reads the entry as offered.
        if call.finished or call.browser is not None or call.transfer is not None:
            await leg.close("not-connected")
            return _refuse(409, TAKEN)
        wait.browser = call.browser = leg
        if not console.repository.offer(entry_id, user.id):
            wait.browser = call.browser = None
            await leg.close("not-connected")
            return _refuse(409, TAKEN)
        wait.wake()
        logger.info(f"queue entry {entry_id}: accepted in the browser by {user.username}")
        return JSONResponse(answer, headers=NO_STORE)

    @app.post("/konsole/im-browser/auflegen", include_in_schema=False)
    async def hang_up(request: Request) -> Response:
        found = await checked(request, "/konsole/im-browser/auflegen")
        if isinstance(found, JSONResponse):
            return found
        user, _body = found
        leg = accept.legs.of(user.id)
        if leg is None:
            return JSONResponse({"state": "none", "text": ""}, headers=NO_STORE)
        if leg.active:
            await leg.hang_up("staff")
        return JSONResponse(leg_state(leg), headers=NO_STORE)

    @app.get("/konsole/im-browser/status", include_in_schema=False)
    async def status(request: Request) -> Response:
        user, _session = console.require(request, "/konsole/im-browser/status")
        leg = accept.legs.of(user.id)
        if leg is None:
            return JSONResponse({"state": "none", "text": ""}, headers=NO_STORE)
        return JSONResponse(leg_state(leg), headers=NO_STORE)

    return accept
