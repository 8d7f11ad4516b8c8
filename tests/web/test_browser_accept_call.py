"""Staff take a waiting phone caller in the console's browser (issue 10, way 2; decision 0850), end to end with
real parts: a real ``voicebot serve`` (SQLite), a baresip caller that speaks and records what it hears, and
headless Chromium whose fake microphone plays German speech.

Staff signs in (an account made through the repository) and sets "Verfügbar" on the page; the caller presses the
hand-off key and waits in the queue; "Im Browser annehmen" appears (this server holds the caller) and is pressed.
Then: the page says "Verbunden", the browser receives the caller's voice (inbound-rtp packets and audio energy),
the caller's recording is not silent while bridged (the microphone), the bot stepped out (its part of the record
ended ``transferred:browser``) and the record has ``queue_connected via=browser``. "Auflegen" ends the call for the
caller too (BYE), the record notes who ended it and the frames carried each way. A second caller is taken the same
way and hangs up first: the page says that the caller hung up."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from interop.peers import Baresip, VoicebotServer, espeak_wav, read_wav, shared_index_dir, speech_seconds
from interop.peers import spoken_turns_wav as caller_speech

from voicebot.db.engine import make_engine
from voicebot.db.models import QueueStatus
from voicebot.db.repository import Repository
from voicebot.staff.accounts import hash_password
from web.chromium import CHROMIUM, fake_microphone
from web.test_console_page import _axe_violations

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

GROUP = "buergerbuero"
PASSWORD = "Sommer-Rathaus-2026"
SCREENSHOT = Path("/tmp/console-im-browser.png")

INBOUND = """async () => {
  const peer = window.staffBrowserPeer && window.staffBrowserPeer();
  if (!peer) return null;
  const report = await peer.getStats();
  let found = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      found = { packets: s.packetsReceived || 0, energy: s.totalAudioEnergy || 0, level: s.audioLevel || 0 };
    }
  });
  return found;
}"""


def _events(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in record["events"] if e["kind"] == kind]


def _entry_id(repository: Repository, record: dict[str, Any]) -> int:
    (entry,) = repository.queue_entries_of(record["call_id"])
    return entry.id


def _record_with(
    server: VoicebotServer, kind: str, timeout_s: float, call_id: str | None = None, other_than: str = ""
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in server.transcripts():
            mine = record["call_id"] == call_id if call_id else record["call_id"] != other_than
            if mine and _events(record, kind):
                return record
        time.sleep(0.2)
    raise AssertionError(f"no record with {kind} within {timeout_s} s; server log:\n{server.log_tail()}")


async def test_staff_take_a_queued_caller_in_the_browser(tmp_path: Path, embedded_models_dir: Path) -> None:
    from playwright.async_api import async_playwright

    workdir = tmp_path / "serve"
    workdir.mkdir()
    server = VoicebotServer(
        workdir,
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        call__greeting="Guten Tag.",
        sip__rtp_inactivity_timeout_s="30",
        handoff__groups=json.dumps([{"name": GROUP, "staff_uri": "sip:unused@127.0.0.1:9", "mode": "queue"}]),
        handoff__default_group=GROUP,
        queue__announce_interval_s="30",
        queue__poll_interval_s="0.3",
        queue__max_wait_s="120",
        http__console_poll_s="0.5",
    )
    # The caller is quiet until it is queued, then speaks every few seconds (what staff should hear).
    caller_wav, _ = caller_speech(
        ["Ich habe eine Frage zum Wohngeld."] * 10, tmp_path / "caller.wav", lead_s=12, gap_s=1.5, tail_s=30
    )
    caller = Baresip(tmp_path, "caller", caller_wav, ["PCMU"])
    second = Baresip(tmp_path, "second", caller_wav, ["PCMA"])
    microphone = espeak_wav(
        "Bürgerbüro Musterstadt, guten Tag, was kann ich für Sie tun?",
        tmp_path / "mic.wav",
        rate=48000,
        lead_s=0.2,
        tail_s=0.3,
    )
    server.start()
    repository = Repository(make_engine(f"sqlite:///{server.database_file}"))
    try:
        repository.add_staff_user("anna", hash_password(PASSWORD), display_name="Anna Beispiel")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=fake_microphone(microphone)
            )
            try:
                page = await browser.new_page()
                await page.goto(f"{server.http_url}/anmelden")
                await page.get_by_label("Benutzername").fill("anna")
                await page.get_by_label("Passwort").fill(PASSWORD)
                await page.get_by_role("button", name="Anmelden").click()
                await page.get_by_label("Verfügbar", exact=True).check()
                await page.get_by_role("button", name="Verfügbarkeit speichern").click()
                await page.wait_for_selector("text=Gespeichert: Verfügbar.")

                caller.start(dial=server.sip_uri, run_s=100)
                assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
                established = time.time()
                await asyncio.to_thread(server.wait_for_greeting_played, established - 1)
                caller.command("sndcode", "0")  # the hand-off key: the caller joins the queue
                queued = await asyncio.to_thread(_record_with, server, "queued", 20)

                button = page.get_by_role("button", name="Im Browser annehmen")
                await button.wait_for(timeout=10000)  # the queue list refreshes by itself
                await button.click()
                status = page.locator("#im-browser-status")
                await page.wait_for_selector('#im-browser-status[data-state="connected"]', timeout=20000)
                assert await status.text_content() == "Verbunden – Sie sprechen mit der anrufenden Person."
                connected = time.time()
                details = page.get_by_role("link", name="Zusammenfassung und Gesprächsverlauf")
                assert (
                    await details.get_attribute("href")
                    == f"/konsole/gespraech/{_entry_id(repository, queued)}"
                )

                stats: dict[str, float] | None = None
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    stats = await page.evaluate(INBOUND)
                    if stats and stats["packets"] > 100 and stats["energy"] > 0.001:
                        break
                    await asyncio.sleep(0.5)
                assert stats and stats["packets"] > 100 and stats["energy"] > 0.001, (
                    f"no caller audio: {stats}"
                )
                assert await _axe_violations(page) == []  # the console with the call panel open
                await page.screenshot(path=str(SCREENSHOT), full_page=True)  # docs/console-im-browser.png
                await asyncio.sleep(
                    max(0.0, connected + 6 - time.time())
                )  # the microphone reaches the caller

                hung_up = time.time()
                await page.get_by_role("button", name="Auflegen").click()
                await page.wait_for_selector('#im-browser-status[data-state="ended"]', timeout=5000)
                assert (
                    await status.text_content() == "Sie haben aufgelegt. Bitte tragen Sie den Abschluss ein."
                )
                assert await page.get_by_role("link", name="Abschluss eintragen").is_visible()

                # The next caller: the same member of staff takes it too (one leg at a time, the first is over);
                # this time the caller hangs up and the page says so.
                second.start(dial=server.sip_uri, run_s=60)
                assert second.wait_for_log("Call established", 15), second.log_text()[-3000:]
                await asyncio.to_thread(server.wait_for_greeting_played, time.time() - 1)
                second.command("sndcode", "0")
                next_one = await asyncio.to_thread(
                    _record_with, server, "queued", 20, other_than=queued["call_id"]
                )
                await button.click()
                await page.wait_for_selector('#im-browser-status[data-state="connected"]', timeout=20000)
                second.stop()  # BYE from the caller
                await page.wait_for_selector('#im-browser-status[data-state="ended"]', timeout=5000)
                assert await status.text_content() == (
                    "Die anrufende Person hat aufgelegt. Bitte tragen Sie den Abschluss ein."
                )
                by_caller = await asyncio.to_thread(
                    _record_with, server, "browser_leg_ended", 10, call_id=next_one["call_id"]
                )
                assert _events(by_caller, "browser_leg_ended")[0]["by"] == "caller"
            finally:
                await browser.close()

        assert caller.wait_for_log("terminated", 10), caller.log_text()[-3000:]  # the server's BYE
        ended = await asyncio.to_thread(_record_with, server, "browser_leg_ended", 10)
        assert ended["call_id"] == queued["call_id"]
        assert ended["ended_reason"] == "transferred:browser"  # the bot stepped out: no hold audio after this
        (offered,) = _events(ended, "queue_offered")
        (linked,) = _events(ended, "queue_connected")
        (leg,) = _events(ended, "browser_leg_ended")
        assert offered["via"] == "browser" and linked["via"] == "browser" and leg["by"] == "staff"
        assert leg["frames_to_browser"] > 100 and leg["frames_from_browser"] > 100, leg  # > 2 s each way
        (entry,) = repository.queue_entries_of(queued["call_id"])
        anna = repository.staff_user("anna")
        assert anna is not None and (entry.status, entry.staff_user_id) == (
            QueueStatus.ANSWERED.value,
            anna.id,
        )

        caller.stop()
        heard, rate = read_wav(caller.heard())
        start, end = connected - established + 1.0, hung_up - established - 0.5
        window = heard[int(start * rate) : int(end * rate)]
        loud = speech_seconds(window, rate) / max(1e-3, end - start)
        print(f"caller heard the browser microphone: {loud:.0%} of 20 ms windows above -40 dBFS")
        assert loud > 0.3, loud
    finally:
        caller.stop()
        second.stop()
        repository.engine.dispose()
        if server.process is not None and server.process.poll() is None:
            assert server.stop() == 0, server.log_tail()
