"""The /call page in real headless Chromium with a fake microphone playing a German WAV: it connects over WebRTC
(aiortc on the server) and the bot's voice arrives. Plus the HTTP error paths of the signalling endpoint."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any

import pytest
from interop.peers import VoicebotServer, espeak_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path("/tmp/call-page.png")


def _fake_microphone(wav: Path) -> list[str]:
    """Chromium flags: grant the microphone without a prompt and feed it from ``wav`` (looped)."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
    ]


INBOUND_AUDIO_STATS = """async () => {
  if (!peer) return null;
  const report = await peer.getStats();
  let result = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      result = { bytes: s.bytesReceived, energy: s.totalAudioEnergy || 0, samples: s.totalSamplesReceived };
    }
  });
  return result;
}"""


async def test_browser_call_connects_and_bot_audio_arrives(
    web_server: VoicebotServer, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    microphone = espeak_wav("Wohngeld.", tmp_path / "mic.wav", rate=48000, lead_s=3.0, tail_s=6.0)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=_fake_microphone(microphone),
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{web_server.http_url}/call")
            status = page.get_by_role("status")
            await page.get_by_role("button", name="Rathaus anrufen").click()
            await page.wait_for_selector('#status[data-state="connected"]', timeout=30000)
            assert "Verbunden" in (await status.text_content() or "")
            assert await page.get_by_role("button", name="Auflegen").is_enabled()
            health = web_server.health()
            assert health is not None and health["active_calls"] == 1

            stats = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                stats = await page.evaluate(INBOUND_AUDIO_STATS)
                if stats and stats["bytes"] > 10000 and stats["energy"] > 0.01:
                    break
                await asyncio.sleep(0.5)
            assert stats and stats["bytes"] > 10000 and stats["energy"] > 0.01, (
                f"no bot audio arrived: {stats}"
            )
            assert await asyncio.to_thread(_greeting_played, web_server), web_server.transcripts()
            await page.screenshot(path=str(SCREENSHOT))

            await page.get_by_role("button", name="Auflegen").click()
            await page.wait_for_selector('#status[data-state="ended"]', timeout=5000)
            assert "Beendet" in (await status.text_content() or "")
            assert await page.get_by_role("button", name="Rathaus anrufen").is_enabled()
        finally:
            await browser.close()

    assert await asyncio.to_thread(web_server.wait_idle), "browser call not released after hang-up"
    assert web_server.transcripts()[-1]["ended_reason"], "browser call transcript not closed"


def _greeting_played(server: VoicebotServer, timeout_s: float = 20.0) -> bool:
    """The stored transcript of the browser call says the greeting was played in full."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        transcripts = server.transcripts()
        if transcripts:
            turns = transcripts[-1]["turns"]
            assert isinstance(turns, list)
            if turns and turns[0]["kind"] == "greeting" and turns[0]["played"]:
                return True
        time.sleep(0.3)
    return False


async def test_page_shows_when_the_bot_ends_a_silent_call(web_server: VoicebotServer, tmp_path: Path) -> None:
    """Silence from the microphone: the bot asks once, says goodbye and hangs up; the page says so."""
    from playwright.async_api import async_playwright

    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(bytes(2 * 48000 * 2))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=_fake_microphone(silence))
        try:
            page = await browser.new_page()
            await page.goto(f"{web_server.http_url}/call")
            await page.get_by_role("button", name="Rathaus anrufen").click()
            await page.wait_for_selector('#status[data-state="connected"]', timeout=30000)
            await page.wait_for_selector('#status[data-state="ended"]', timeout=60000)
            assert "Assistent hat aufgelegt" in (await page.get_by_role("status").text_content() or "")
        finally:
            await browser.close()
    assert await asyncio.to_thread(web_server.wait_idle)
    kinds = [t["kind"] for t in web_server.transcripts()[-1]["turns"] if t["role"] == "bot"]
    assert kinds[-2:] == ["silence_prompt", "goodbye"], kinds


async def test_denied_microphone_shows_a_readable_error(web_server: VoicebotServer) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # Without --use-fake-ui-for-media-stream the permission prompt is dismissed: getUserMedia is refused.
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--use-fake-device-for-media-stream", "--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{web_server.http_url}/call")
            await page.get_by_role("button", name="Rathaus anrufen").click()
            await page.wait_for_selector('#status[data-state="error"]', timeout=10000)
            text = await page.get_by_role("status").text_content() or ""
            assert text.startswith("Fehler:") and "Mikrofon" in text, text
            assert await page.get_by_role("button", name="Rathaus anrufen").is_enabled()
            assert await page.get_by_role("button", name="Auflegen").is_disabled()
        finally:
            await browser.close()
    health = web_server.health()
    assert health is not None and health["active_calls"] == 0


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "kein gültiges JSON"),
        (b"[]", "JSON-Objekt"),
        (json.dumps({"type": "offer"}).encode(), "sdp"),
        (json.dumps({"sdp": "v=0\r\n", "type": "answer"}).encode(), "SDP-Angebot"),
        (json.dumps({"sdp": "v=0\r\ns=-\r\n", "type": "offer"}).encode(), "keine Audiospur"),
        (
            json.dumps({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"}).encode(),
            "nicht verwendbar",
        ),
    ],
)
def test_bad_offers_get_4xx_with_a_message(web_server: VoicebotServer, body: bytes, message: str) -> None:
    status, answer = _post(f"{web_server.http_url}/api/offer", body)
    assert 400 <= status < 500
    assert message in str(answer["detail"])
    health = web_server.health()
    assert health is not None and health["status"] == "ok" and health["active_calls"] == 0
