"""Request bodies and what the HTTP side discloses, against the real app (in-process, or a real uvicorn on
loopback where the timing of the bytes on the wire matters): size before reading, slow bodies, deep JSON, content
type, no API schema by default, no Server header."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from voicebot.calls import CallRegistry
from voicebot.server import http_server_config
from voicebot.settings import Settings
from voicebot.web.app import create_app

pytestmark = pytest.mark.timeout(60)


def _settings(**http: Any) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"http": settings.http.model_copy(update=http)})


def _client(**http: Any) -> httpx.AsyncClient:
    app = create_app(_settings(**http), None, registry=CallRegistry(max_calls=1))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://voicebot")


@contextlib.asynccontextmanager
async def _uvicorn(**http: Any) -> AsyncIterator[int]:
    """The app behind uvicorn as `voicebot serve` configures it, on a free loopback port."""
    import uvicorn

    settings = _settings(**http)
    app = create_app(settings, None, registry=CallRegistry(max_calls=1))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(http_server_config(app, settings))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        while not server.started and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def _exchange(port: int, head: str, body: bytes = b"", timeout_s: float = 10.0) -> bytes:
    """Send a request head and (part of) a body, then read whatever the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            return await reader.read()  # until the server closes (every answer here ends the connection)
    finally:
        writer.close()


def _head(content_length: int, content_type: str = "application/json") -> str:
    return (
        "POST /api/offer HTTP/1.1\r\nHost: voicebot\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {content_length}\r\n"
    )


async def test_declared_huge_body_is_refused_before_it_is_read() -> None:
    async with _uvicorn() as port:
        answer = await _exchange(port, _head(50_000_000), b'{"sdp": "')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert "zu groß".encode() in answer


async def test_streamed_body_over_the_limit_is_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"sdp": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'", "type": "offer"}'

    async with _client() as client:
        response = await client.post(
            "/api/offer", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413 and "zu groß" in response.json()["detail"]


async def test_slow_body_gets_408() -> None:
    async with _uvicorn(body_timeout_s=0.5) as port:
        answer = await _exchange(port, _head(200), b'{"sdp": ')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"nicht rechtzeitig" in answer


async def test_deeply_nested_json_is_400() -> None:
    depth = 30_000
    body = b'{"sdp": ' + b"[" * depth + b"]" * depth + b"}"
    async with _client() as client:
        response = await client.post("/api/offer", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "kein gültiges JSON" in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_declared_json_is_415(content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"sdp": "v=0\r\n", "type": "offer"}).encode()
    async with _client() as client:
        offer = await client.post("/api/offer", content=body, headers=headers)
        patch = await client.patch("/api/offer", content=body, headers=headers)
    assert offer.status_code == 415 and "application/json" in offer.json()["detail"]
    assert patch.status_code == 415


async def test_json_with_charset_is_accepted() -> None:
    async with _client() as client:
        response = await client.post(
            "/api/offer", content=b"[]", headers={"Content-Type": "application/json; charset=utf-8"}
        )
    assert response.status_code == 400 and "JSON-Objekt" in response.json()["detail"]


async def test_no_api_schema_or_docs_unless_switched_on() -> None:
    async with _client() as client:
        closed = [(await client.get(path)).status_code for path in ("/openapi.json", "/docs", "/redoc")]
    async with _client(api_docs=True) as client:
        schema = await client.get("/openapi.json")
        docs = await client.get("/docs")
    assert closed == [404, 404, 404]
    assert schema.status_code == 200 and "/api/offer" in schema.json()["paths"]
    assert docs.status_code == 200


async def test_answers_carry_no_server_header() -> None:
    async with _uvicorn() as port:
        answer = await _exchange(port, "GET /healthz HTTP/1.1\r\nHost: voicebot\r\nConnection: close\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200")
    assert b"\r\nserver:" not in head, head


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHo"], ids=["idle", "partial-head"])
async def test_a_connection_without_a_complete_request_head_is_closed(sent: bytes) -> None:
    async with _uvicorn(head_timeout_s=0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(sent)
            await writer.drain()
            async with asyncio.timeout(10):
                answer = await reader.read()
        finally:
            writer.close()
    assert answer == b"", answer  # closed without an answer


async def test_keep_alive_connection_serves_requests_within_the_head_deadline() -> None:
    async with _uvicorn(head_timeout_s=5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(3):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: voicebot\r\n\r\n")
                await writer.drain()
                async with asyncio.timeout(10):
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                assert head.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in body
        finally:
            writer.close()
