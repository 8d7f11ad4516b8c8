"""The staff queue end to end with real parts only (issue 10, "Tests with real parts"): two ``voicebot serve``
processes A and B on one fresh PostgreSQL schema, headless Chromium on A's console, baresip callers on B and a
baresip staff phone that answers by itself.

Anna (an account as ``voicebot users add`` makes it: argon2 hash, phone URI, group "buergerbuero" with mode
"queue") signs in on A's ``/anmelden`` and sets herself "verfügbar" with the keyboard. Two callers call B: one
presses the hand-off key 0, the other says "Ich möchte mit einem Menschen sprechen" (a stored clip, wideband
G.722: whisper-base does not hear espeak-ng German asking for a person at 8 kHz, see ``data/README.md``). A's
console shows both without a reload, each with the reason in German and the caller's number, a few seconds at
most after the queue entry was stored by B. Anna clicks "Annehmen" for the first one: B polls only every 60 s
here, so what rings her phone within seconds is PostgreSQL's NOTIFY from A; B bridges the caller to her phone
(RTP packets both ways in B's record; the staff phone's recording is the caller's 440 Hz hum), the entry is
answered by Anna; the caller hangs up and Anna stores the wrap-up in the browser. Then A restarts: the second
caller, still held by B, is on A's console again, and leaves it without a reload when they hang up.
"""

from __future__ import annotations

import json
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from database import fresh_postgres_schema
from web.chromium import CHROMIUM

from interop.peers import Baresip, VoicebotServer, espeak_wav, read_wav, shared_index_dir, speech_seconds
from voicebot.db import migrate
from voicebot.db.engine import make_engine
from voicebot.db.models import Availability, QueueEntry, QueueStatus
from voicebot.db.repository import Repository
from voicebot.staff.accounts import hash_password
from voicebot.staff.summary import REASON_TEXTS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

GROUP = "buergerbuero"
PASSWORD = "Rathaus-Musterstadt-2026"
ASKS_FOR_A_PERSON = Path(__file__).parent / "data" / "menschen-sprechen-16k.wav"
KEY_CALLER = "0301110001"  # the callers' SIP user names: the numbers the console shows
VOICE_CALLER = "0301110002"
POLL_B_S = 60.0  # B's own look for accepted callers (and its announcements): far later than the ring


def _server(workdir: Path, models_dir: Path, database_url: str, name: str, poll_s: float) -> VoicebotServer:
    workdir.mkdir()
    return VoicebotServer(
        workdir,
        models_dir=models_dir,
        index_dir=shared_index_dir(),
        database_url=database_url,
        call__greeting="Guten Tag.",
        sip__transfer_timeout_s="10",
        sip__rtp_inactivity_timeout_s="30",
        handoff__groups=json.dumps([{"name": GROUP, "staff_uri": "sip:unused@127.0.0.1:9", "mode": "queue"}]),
        handoff__default_group=GROUP,
        queue__announce_interval_s="60",
        queue__poll_interval_s=str(poll_s),
        queue__max_wait_s="120",
        queue__instance_name=name,
        http__console_poll_s="1",
    )


def _start_both(*servers: VoicebotServer) -> None:
    """Start the servers side by side (each loads its models); re-raise the first failure."""
    errors: list[BaseException] = []

    def start(server: VoicebotServer) -> None:
        try:
            server.start()
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=200)
    if errors:
        raise errors[0]


def _wav(path: Path, rate: int, *parts: np.ndarray | float) -> Path:
    """Mono s16 WAV from float sample arrays and seconds of silence."""
    pieces = [
        np.zeros(int(part * rate), dtype=np.int16)
        if isinstance(part, float)
        else (np.asarray(part) * 32767).astype(np.int16)
        for part in parts
    ]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.concatenate(pieces).tobytes())
    return path


def _events(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in record["events"] if e["kind"] == kind]


def _entry_of(repository: Repository, server: VoicebotServer, number: str, timeout_s: float) -> QueueEntry:
    """The queue entry of the caller from ``number`` once B has stored it (the record keeps no number)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in repository.live_queue(None):
            if entry.caller_number == number:
                return entry
        time.sleep(0.2)
    calls = [
        ([(t["role"], t["kind"], t["text"]) for t in r["turns"]], [e["kind"] for e in r["events"]])
        for r in server.transcripts()
    ]
    raise AssertionError(
        f"the caller {number} was not queued within {timeout_s} s; the server's calls: {calls}"
    )


def _finished_recording(peer: Baresip) -> tuple[np.ndarray, int]:
    """What ``peer`` heard, once baresip has closed the WAV after its call ended (header written at close)."""
    for _ in range(30):
        try:
            return read_wav(peer.heard())
        except (wave.Error, EOFError):
            time.sleep(0.1)
    return read_wav(peer.heard())


def _focused(page: Any) -> str:
    return str(page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()"))


def _tab_to(page: Any, wanted: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused(page) == wanted:
            return
    raise AssertionError(f"{wanted!r} not reached with Tab (focus on {_focused(page)!r})")


SEEN = """() => {
  window.__seen = {};
  const list = document.getElementById("warteschlange-liste");
  const note = () => {
    for (const item of list.querySelectorAll("li.eintrag")) {
      if (!(item.id in window.__seen)) window.__seen[item.id] = Date.now() / 1000;
    }
  };
  new MutationObserver(note).observe(list, { childList: true, subtree: true });
  note();
}"""


def test_a_caller_on_b_is_accepted_in_the_console_of_a(tmp_path: Path, embedded_models_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    staff = Baresip(
        tmp_path,
        "anna",
        espeak_wav("Bürgerbüro, guten Tag.", tmp_path / "staff.wav", tail_s=60),
        ["PCMU"],
        answer_automatically=True,
    )
    # The key caller's line carries a quiet 440 Hz hum (not speech to the bot's VAD): what the staff phone hears of
    # the caller through the bridge.
    hum = 0.05 * np.sin(2 * np.pi * 440 * np.arange(100 * 8000) / 8000)
    key_caller = Baresip(tmp_path, KEY_CALLER, _wav(tmp_path / "key.wav", 8000, hum), ["PCMU"])
    asks, rate = read_wav(ASKS_FOR_A_PERSON)
    voice_caller = Baresip(
        tmp_path,
        VOICE_CALLER,
        _wav(tmp_path / "voice.wav", rate, 3.5, asks, 100.0),  # after the greeting "Guten Tag."
        ["G722"],
        source_rate=rate,
    )
    with fresh_postgres_schema() as url:
        engine = make_engine(url)
        migrate.upgrade(engine)  # once, before both servers start (each would upgrade an empty schema)
        repository = Repository(engine)
        anna = repository.add_staff_user("anna", hash_password(PASSWORD), display_name="Anna Beispiel")
        repository.set_phone(anna.id, staff.uri, [GROUP])
        a = _server(tmp_path / "a", embedded_models_dir, url, "rathaus-a", poll_s=1.0)
        b = _server(tmp_path / "b", embedded_models_dir, url, "rathaus-b", poll_s=POLL_B_S)
        try:
            _start_both(a, b)
            staff.start(run_s=150)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    _through_the_console(
                        browser.new_page(), a, b, repository, anna.id, staff, key_caller, voice_caller
                    )
                finally:
                    browser.close()
        finally:
            for peer in (key_caller, voice_caller, staff):
                peer.stop()
            stopped = {name: server.stop() for name, server in (("A", a), ("B", b))}
            engine.dispose()
    assert stopped == {"A": 0, "B": 0}, (stopped, a.log_tail(), b.log_tail())


def _through_the_console(
    page: Any,
    a: VoicebotServer,
    b: VoicebotServer,
    repository: Repository,
    anna_id: int,
    staff: Baresip,
    key_caller: Baresip,
    voice_caller: Baresip,
) -> None:
    base = a.http_url
    # Sign in on A and become available, keyboard only.
    page.goto(f"{base}/anmelden")
    _tab_to(page, "benutzername")
    page.keyboard.type("anna")
    _tab_to(page, "passwort")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/konsole")
    _tab_to(page, "v-away")  # the checked radio is the group's tab stop
    page.keyboard.press("ArrowUp")  # away → busy
    page.keyboard.press("ArrowUp")  # busy → available
    _tab_to(page, "Verfügbarkeit speichern")
    page.keyboard.press("Enter")
    page.wait_for_selector("#hinweis:has-text('Gespeichert')")
    anna = repository.staff_user("anna")
    assert anna is not None and anna.availability == Availability.AVAILABLE.value
    page.evaluate("() => { window.__sameDocument = true; }")
    page.evaluate(SEEN)

    # Two callers on B: one presses the hand-off key, the other asks for a person in words.
    dialled = time.time()
    key_caller.start(dial=b.sip_uri, run_s=120)
    assert key_caller.wait_for_log("Call established", 15), key_caller.log_text()[-3000:]
    b.wait_for_greeting_played(dialled)
    voice_caller.start(dial=b.sip_uri, run_s=120)
    key_caller.command("sndcode", "0")
    assert voice_caller.wait_for_log("Call established", 15), voice_caller.log_text()[-3000:]
    queued = {number: _entry_of(repository, b, number, 40) for number in (KEY_CALLER, VOICE_CALLER)}
    records = {
        number: b.wait_for_record(
            lambda r, e=entry: r["call_id"] == e.call_id and bool(_events(r, "queued")), number
        )
        for number, entry in queued.items()
    }
    keyed, spoke = records[KEY_CALLER], records[VOICE_CALLER]
    assert [e["reason"] for e in _events(keyed, "handoff_requested")] == ["handoff_key"], keyed["events"]
    assert [e["reason"] for e in _events(spoke, "handoff_requested")] == ["caller_asked"], (
        spoke["events"], [(t["role"], t["text"]) for t in spoke["turns"]]
    )  # fmt: skip

    # A's console shows both, with the bot's summary, without a reload.
    for number, reason in ((KEY_CALLER, "handoff_key"), (VOICE_CALLER, "caller_asked")):
        entry = queued[number]
        assert entry.process and entry.process["id"] == "rathaus-b"
        item = page.locator(f"#eintrag-{entry.id}")
        item.wait_for(timeout=10_000)
        text = item.text_content() or ""
        assert REASON_TEXTS[reason] in text and number in text, text
        seen = page.evaluate(f"() => window.__seen['eintrag-{entry.id}']")
        print(f"{reason}: on A's console {seen - entry.enqueued_at:.2f} s after B stored the entry")
        assert 0 <= seen - entry.enqueued_at <= 5.0, (seen, entry.enqueued_at)
    assert page.evaluate("() => window.__sameDocument === true")
    assert page.locator("#warteschlange-status").text_content() == "2 anrufende Personen warten."

    # Anna accepts the key caller: A notifies, B rings her phone and bridges.
    first = queued[KEY_CALLER]
    accepted = time.time()
    page.locator(f"#annehmen-{first.id}").click()
    page.wait_for_url(f"{base}/konsole/gespraech/{first.id}")
    assert staff.wait_for_log("Call established", 15), staff.log_text()[-3000:]
    rang_after = time.time() - accepted
    print(f"staff phone answered {rang_after:.2f} s after the click on A")
    assert rang_after < 10.0, rang_after  # B was woken by A's NOTIFY: its own look comes after 60 s
    b.wait_for_record(
        lambda r: r["call_id"] == first.call_id and bool(_events(r, "queue_connected")), "connected"
    )
    page.wait_for_selector("#notiz", timeout=10_000)  # the page follows the call into "im Gespräch"
    time.sleep(2.0)  # audio flows both ways through B's bridge
    key_caller.stop()  # baresip hangs up (BYE) as it quits
    ended = b.wait_for_record(
        lambda r: r["call_id"] == first.call_id and bool(_events(r, "transfer_ended")), "bridge ended"
    )
    (offered,) = _events(ended, "queue_offered")
    assert (offered["offered_to"], offered["target"]) == (anna_id, staff.uri)
    (bridge,) = _events(ended, "transfer_ended")
    for leg in ("caller_packets_in", "caller_packets_out", "staff_packets_in", "staff_packets_out"):
        assert bridge[leg] > 50, bridge  # > 1 s of 20 ms packets each way
    assert staff.wait_for_log("terminated", 10), staff.log_text()[-2000:]  # B hung up her phone too
    heard, rate = _finished_recording(staff)
    print(f"the staff phone heard {speech_seconds(heard, rate):.1f} s of the caller's line above -40 dBFS")
    assert speech_seconds(heard, rate) > 1.0
    spectrum = np.abs(np.fft.rfft(heard))
    assert 430 <= float(np.fft.rfftfreq(len(heard), 1 / rate)[spectrum.argmax()]) <= 450  # the caller's hum
    answered = repository.queue_entry(first.id)
    assert answered is not None
    assert (answered.status, answered.staff_user_id) == (QueueStatus.ANSWERED.value, anna_id)

    # The caller has hung up: Anna records the outcome and a note in the browser.
    _tab_to(page, "e-solved")  # the checked radio is the group's tab stop
    page.keyboard.press("ArrowDown")  # solved → callback
    _tab_to(page, "notiz")
    page.keyboard.type("Rückruf wegen Vollmacht vereinbart.")
    _tab_to(page, "Abschluss speichern")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/konsole?hinweis=abgeschlossen")
    wrapped = repository.queue_entry(first.id)
    assert wrapped is not None
    assert (wrapped.outcome, wrapped.wrap_up_note) == ("callback", "Rückruf wegen Vollmacht vereinbart.")

    # A, the console's server, restarts: the queue lives in the database and B still holds the second caller.
    assert a.stop() == 0, a.log_tail()
    a.start()
    second = queued[VOICE_CALLER]
    page.goto(f"{base}/konsole")  # the session outlives the restart (the same signing key)
    item = page.locator(f"#eintrag-{second.id}")
    item.wait_for(timeout=10_000)
    assert "Platz 1" in (item.text_content() or "")
    page.evaluate("() => { window.__sameDocument = true; }")
    voice_caller.stop()  # hangs up while waiting: B marks the entry abandoned, the open console drops it
    item.wait_for(state="detached", timeout=10_000)
    assert page.evaluate("() => window.__sameDocument === true")
    assert page.locator("#warteschlange-status").text_content() == "Niemand wartet."
    gone = repository.queue_entry(second.id)
    assert gone is not None and gone.status == QueueStatus.ABANDONED.value
