"""The FastAPI app in-process: health, the accessible page, and the capacity limit shared with SIP calls."""

from __future__ import annotations

import httpx
import pytest
from aiortc import RTCPeerConnection

from voicebot.calls import CallRegistry
from voicebot.settings import Settings
from voicebot.web.app import CallPageSettingsError, create_app, render_call_page


def _client(registry: CallRegistry) -> httpx.AsyncClient:
    app = create_app(Settings(), None, registry=registry)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://voicebot")


async def _browser_like_offer() -> str:
    peer = RTCPeerConnection()
    try:
        peer.addTransceiver("audio", direction="sendrecv")
        await peer.setLocalDescription(await peer.createOffer())
        return peer.localDescription.sdp
    finally:
        await peer.close()


async def test_health_reports_calls_and_sip_state() -> None:
    registry = CallRegistry(max_calls=3)
    lease = registry.try_acquire("sip")
    registry.sip_listening = True
    async with _client(registry) as client:
        health = (await client.get("/healthz")).json()
    assert health == {
        "status": "ok",
        "town": "Musterstadt",
        "models_loaded": False,
        "active_calls": 1,
        "max_calls": 3,
        "sip_listening": True,
        "draining": False,
        "knowledge_generation": None,
        "records_unsaved": 0,
    }
    assert lease is not None
    lease.release()
    lease.release()  # idempotent
    assert registry.active == 0


async def test_call_page_is_german_and_accessible() -> None:
    async with _client(CallRegistry(max_calls=1)) as client:
        page = await client.get("/call")
        script = await client.get("/static/call.js")
        root = await client.get("/", follow_redirects=False)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="de">' in html
    assert ">Rathaus anrufen</button>" in html and ">Auflegen</button>" in html
    assert 'role="status"' in html and 'aria-live="polite"' in html
    assert script.status_code == 200 and "/api/offer" in script.text
    assert root.status_code in (302, 307) and root.headers["location"] == "/call"


async def test_full_house_answers_503_with_retry_after() -> None:
    registry = CallRegistry(max_calls=1)
    assert registry.try_acquire("sip") is not None
    async with _client(registry) as client:
        response = await client.post("/api/offer", json={"sdp": await _browser_like_offer(), "type": "offer"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert "belegt" in response.json()["detail"]
    assert registry.active == 1


async def test_ice_candidates_for_an_unknown_call_get_404() -> None:
    async with _client(CallRegistry(max_calls=1)) as client:
        response = await client.patch(
            "/api/offer",
            json={"pc_id": "nope", "candidates": [{"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}]},
        )
        malformed = await client.patch("/api/offer", json={"pc_id": "nope"})
    assert response.status_code == 404
    assert malformed.status_code == 400 and "candidates" in malformed.json()["detail"]


async def test_call_page_names_the_town_links_its_privacy_notice_and_has_a_caption_log() -> None:
    settings = Settings(
        town='Bad <Beispiel> & "Ort"', privacy_url="https://bad-beispiel.example/datenschutz?a=1&b=2"
    )
    app = create_app(settings, None, registry=CallRegistry(max_calls=1))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        html = (await client.get("/call")).text
    assert "<h1>Bürgertelefon Bad &lt;Beispiel&gt; &amp; &quot;Ort&quot;</h1>" in html
    assert 'href="https://bad-beispiel.example/datenschutz?a=1&amp;b=2">Datenschutzhinweisen</a>' in html
    assert 'role="log" aria-live="polite"' in html and "$" not in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "musterstadt.example/datenschutz", "//evil.example/"])
def test_a_privacy_url_that_is_no_web_address_is_refused(url: str) -> None:
    with pytest.raises(CallPageSettingsError, match="privacy_url"):
        render_call_page(Settings(privacy_url=url))


def test_serve_refuses_a_bad_privacy_url_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from voicebot.cli import app

    monkeypatch.setenv("VOICEBOT_PRIVACY_URL", "javascript:alert(1)")
    result = CliRunner().invoke(app, ["serve", "--http-port", "1"])
    assert result.exit_code == 1
    assert "privacy_url must be an http(s) address" in result.output
