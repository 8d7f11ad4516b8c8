"""A call-back taken outside office hours, end to end with a real SIP peer (issue 10, decision 0811).

The server's calendar has today and tomorrow closed. A baresip caller presses 0 for staff: nobody is rung; the bot
says when the office opens again and offers a call-back. The caller takes it with key 1, skips name and topic with
#, keys a number and # (RFC 4733 telephone events), confirms the read-back with key 1 and hangs up. The
``callbacks`` row has the number (``number_via`` keypad) and links to the call's record, which holds the
conversation.
"""

from __future__ import annotations

import contextlib
import json
import time
import wave
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from interop.peers import Baresip, VoicebotServer, shared_index_dir
from voicebot.benchmarks.caller_audio import silence
from voicebot.db.engine import make_engine
from voicebot.db.repository import Repository

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

NUMBER = "0211123456"


@pytest.fixture(scope="module")
def closed_server(
    tmp_path_factory: pytest.TempPathFactory, embedded_models_dir: Path
) -> Iterator[VoicebotServer]:
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    server = VoicebotServer(
        tmp_path_factory.mktemp("voicebot-callback"),
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        call__greeting="Guten Tag.",
        sip__rtp_inactivity_timeout_s="30",
        office_hours__always_open="false",
        office_hours__closed_dates=json.dumps([str(today), str(today + timedelta(days=1))]),
    )
    server.start()
    yield server
    assert server.stop() == 0, f"voicebot serve did not shut down cleanly:\n{server.log_tail()}"


def _live_record(server: VoicebotServer, started: float) -> dict[str, Any] | None:
    found = [r for r in server.transcripts() if float(str(r.get("started_at", 0))) >= started - 1]
    return found[-1] if found else None


def _wait_for_bot_turn(server: VoicebotServer, started: float, kind: str, timeout_s: float = 20.0) -> None:
    """Until the bot has queued a turn of ``kind`` (the record is written at every turn)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = _live_record(server, started)
        if record and any(t["role"] == "bot" and t["kind"] == kind for t in record["turns"]):
            return
        time.sleep(0.1)
    record = _live_record(server, started)
    turns = [(t["role"], t["kind"], t["text"][:50]) for t in (record or {}).get("turns", [])]
    raise AssertionError(f"no bot turn {kind!r} within {timeout_s} s: {turns}\n{server.log_tail(1500)}")


def _keys(caller: Baresip, digits: str) -> None:
    for digit in digits:  # one at a time: the bot takes at most 10 key presses a second
        caller.command("sndcode", digit)
        time.sleep(0.2)


def test_outside_office_hours_a_keyed_call_back_number_is_stored_with_the_call(
    closed_server: VoicebotServer, tmp_path: Path
) -> None:
    audio = tmp_path / "silence.wav"
    _write_wav(audio, 60.0)
    caller = Baresip(tmp_path, "caller", audio, ["PCMA"])
    started = time.time()
    try:
        caller.start(dial=closed_server.sip_uri, run_s=70)
        assert caller.wait_for_log("Call established", 15), caller.log_text()[-3000:]
        closed_server.wait_for_greeting_played(started)
        _keys(caller, "0")
        _wait_for_bot_turn(closed_server, started, "office_closed")
        _keys(caller, "1##")
        _wait_for_bot_turn(closed_server, started, "callback_number")
        _keys(caller, f"{NUMBER}#")
        _wait_for_bot_turn(closed_server, started, "callback_read_back")
        _keys(caller, "1")
        _wait_for_bot_turn(closed_server, started, "callback_confirmed")
        with contextlib.suppress(OSError):  # baresip hangs up, but may not answer on its control socket
            caller.command("hangup")
        record = closed_server.closed_transcript_since(started)
    finally:
        caller.stop()

    said = {t["kind"]: t["text"] for t in record["turns"] if t["role"] == "bot"}
    print(said)
    assert said["office_closed"].startswith("Das Bürgerbüro ist ab ") and "Rückruf" in said["office_closed"]
    # The caller heard the number read back; the stored record has it only in the call-back (privacy.redact).
    assert "[Telefonnummer]" in said["callback_read_back"] and "null zwei" not in said["callback_read_back"]
    assert "Wir rufen Sie bis " in said["callback_confirmed"]
    kinds = [e["kind"] for e in record["events"]]
    assert "transfer_started" not in kinds, kinds  # nobody was rung
    keyed = "".join(t["text"] for t in record["turns"] if t["role"] == "caller" and t["kind"] == "dtmf")
    assert keyed == f"01##{NUMBER}#1", keyed

    engine = make_engine(f"sqlite:///{closed_server.database_file}")
    try:
        (callback,) = Repository(engine).open_callbacks()
    finally:
        engine.dispose()
    assert (callback.call_id, callback.phone_number, callback.number_via) == (
        record["call_id"],
        NUMBER,
        "keypad",
    )
    assert callback.due_at > started + 24 * 3600  # tomorrow is closed too: due the day after at the earliest
    assert closed_server.wait_idle()


def _write_wav(path: Path, seconds: float) -> None:
    """Silence as mono s16 8 kHz (baresip's audio source; the call would end when the file ends)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(silence(seconds, rate=8000).tobytes())
