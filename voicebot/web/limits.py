"""Request body limits of the web app, enforced before anything parses a body.

Without them a 50 MB body was read into memory, a body trickling in byte by byte held its connection for minutes
and ``text/plain`` was parsed as JSON. :class:`RequestBodyLimits` is a plain ASGI middleware: it reads the body of
every request that may carry one, bounded in size and time, and hands it to the app in one piece. The app therefore
only ever sees complete bodies of at most ``max_bytes`` (a bounded buffer per request is the price).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_MEDIA_TYPE = "application/json"


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class RequestBodyLimits:
    """Size (413, from Content-Length before reading and again while streaming), time (408) and, under
    ``json_prefix``, content type (415) of request bodies; answers are JSON ``{"detail": ...}`` in German."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float, json_prefix: str = "/api/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.json_prefix = json_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["path"].startswith(self.json_prefix):
            media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
            if media_type != JSON_MEDIA_TYPE:
                await _refuse(415, "Der Anfragetext muss JSON sein (Content-Type: application/json).")(
                    scope, receive, send
                )
                return
        declared = headers.get("content-length")
        if declared is not None:
            if not (0 < len(declared) <= 12 and all("0" <= char <= "9" for char in declared)):
                await _refuse(400, "Die Längenangabe der Anfrage (Content-Length) ist ungültig.")(
                    scope, receive, send
                )
                return
            if int(declared) > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._read_body(receive)
        except TimeoutError:
            await _refuse(408, "Der Anfragetext kam nicht rechtzeitig vollständig an.")(scope, receive, send)
            return
        except _BodyTooLarge:
            await self._too_large()(scope, receive, send)
            return
        except _ClientGone:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> JSONResponse:
        return _refuse(413, f"Der Anfragetext ist zu groß (höchstens {self.max_bytes} Bytes).")


def _refuse(status: int, detail: str) -> JSONResponse:
    """A refusal that also ends the connection: the rest of an unread body must not be taken as a request."""
    return JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already read body once, then passes on (disconnect notices)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replayed


def h11_with_head_timeout(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, plus: a connection that has not sent a complete request head ``timeout_s`` after
    it was opened or after its previous answer is closed. uvicorn alone keeps a fresh connection and one that
    sends its head byte by byte forever (its keep-alive timer is stopped by any byte received)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class H11WithHeadTimeout(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # asyncio.Protocol's signature; a stream server always hands over a Transport, which uvicorn's
            # own signature narrows to
            super().connection_made(cast(asyncio.Transport, transport))
            self._arm_head_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._request_in_progress():
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _request_in_progress(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(timeout_s, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self._request_in_progress() and not self.transport.is_closing():
                self.transport.close()

    return H11WithHeadTimeout
