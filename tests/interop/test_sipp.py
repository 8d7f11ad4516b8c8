"""sipp (the SIP test tool) against `voicebot serve`: pcap audio + RFC 2833 DTMF, CANCEL, BYE from either side, and
the bridged-transfer fallback with a sipp echo UAS as staff when the caller's side refuses REFER."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from readiness import wait_until_bound

from interop.peers import VoicebotServer, free_port, sipp
from voicebot.db.engine import make_engine
from voicebot.db.models import QueueEntry
from voicebot.db.repository import Repository
from voicebot.telephony.pbx_handoff import reference_from_user_to_user

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP_PCAPS = Path("/usr/share/sip-tester")


@pytest.fixture
def sipp_dir(tmp_path: Path) -> Path:
    """sipp's pcap scenarios read ``pcap/...`` relative to the working directory."""
    (tmp_path / "pcap").symlink_to(SIPP_PCAPS)
    return tmp_path


def _caller_completes(server: VoicebotServer, cwd: Path, scenario: list[str], timeout_s: float) -> None:
    """sipp calls the bot with ``scenario`` (``-sf FILE`` or ``-sn BUILTIN``) and must complete it; otherwise the
    failure shows sipp's output, its error log and the server's log."""
    result = sipp(
        [
            *scenario,
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port()),
            "-s",
            "hotline",
            f"127.0.0.1:{server.sip_port}",
            "-trace_err",
            "-error_file",
            str(cwd / "errors.log"),
        ],
        cwd=cwd,
        timeout_s=timeout_s,
    )
    errors = (cwd / "errors.log").read_text(errors="replace") if (cwd / "errors.log").exists() else ""
    assert result.returncode == 0, (
        f"sipp rc={result.returncode}\n{result.stdout[-2000:]}\n{errors[-3000:]}\nserver:\n{server.log_tail()}"
    )


@contextlib.contextmanager
def _staff_phone(sipp_dir: Path, port: int, scenario: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A sipp UAS as the staff phone: answers one call and echoes its RTP back (``-rtp_echo``); killed at the
    end if it has not finished by itself."""
    staff_dir = sipp_dir / "staff"
    staff_dir.mkdir()
    staff = subprocess.Popen(
        [
            "sipp",
            *scenario,
            "-rtp_echo",
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mp",
            str(free_port()),
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ],
        cwd=staff_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_bound(port, "udp")
        yield staff
    finally:
        if staff.poll() is None:
            staff.kill()
            staff.wait(timeout=5)


def test_uac_pcap_audio_and_rfc2833_digit_reach_the_pipeline(
    voicebot_server: VoicebotServer, sipp_dir: Path
) -> None:
    """sipp's built-in ``uac_pcap``: G.711 A-law speech from g711a.pcap, then the RFC 2833 digit 1, then BYE."""
    started = time.time()
    _caller_completes(voicebot_server, sipp_dir, ["-sn", "uac_pcap"], timeout_s=40)
    transcript = voicebot_server.closed_transcript_since(started)
    turns = transcript["turns"]
    assert isinstance(turns, list)
    digits = [t["text"] for t in turns if t["role"] == "caller" and t["kind"] == "dtmf"]
    assert digits == ["1"], turns
    assert transcript["ended_reason"] == "caller:bye_remote"
    assert voicebot_server.wait_idle()


def test_cancel_before_answer_gets_487_and_frees_the_line(
    voicebot_server: VoicebotServer, sipp_dir: Path
) -> None:
    _caller_completes(voicebot_server, sipp_dir, ["-sf", str(SCENARIOS / "uac_cancel.xml")], timeout_s=20)
    assert voicebot_server.wait_idle()


def test_late_offer_invite_gets_our_offer_and_the_ack_answer_starts_media(
    voicebot_server: VoicebotServer, sipp_dir: Path
) -> None:
    started = time.time()
    _caller_completes(
        voicebot_server,
        sipp_dir,
        ["-sf", str(SCENARIOS / "uac_late_offer.xml"), "-trace_logs", "-log_file", str(sipp_dir / "log.txt")],
        timeout_s=20,
    )
    assert voicebot_server.closed_transcript_since(started)["ended_reason"] == "caller:bye_remote"
    assert "late offer answered with PCMU/8000" in voicebot_server.log_tail(20000)
    assert voicebot_server.wait_idle()


def test_offer_without_a_common_codec_gets_488(voicebot_server: VoicebotServer, sipp_dir: Path) -> None:
    _caller_completes(voicebot_server, sipp_dir, ["-sf", str(SCENARIOS / "uac_g729_only.xml")], timeout_s=20)
    assert voicebot_server.wait_idle()


def test_hold_and_resume_then_bye_from_the_bot_when_rtp_stops(
    voicebot_server: VoicebotServer, sipp_dir: Path
) -> None:
    """Re-INVITEs put the bot on hold (answered recvonly) and back (sendrecv), and an offer-less re-INVITE gets
    our offer; the caller's media never arrives, so after ``rtp_inactivity_timeout_s`` (10 s here) the bot ends
    the call with BYE."""
    started = time.time()
    _caller_completes(
        voicebot_server, sipp_dir, ["-sf", str(SCENARIOS / "uac_hold_then_silent.xml")], timeout_s=30
    )
    transcript = voicebot_server.closed_transcript_since(started)
    assert transcript["ended_reason"] == "rtp-timeout"
    assert voicebot_server.wait_idle()


def _queue_entries(server: VoicebotServer, call_id: str) -> list[QueueEntry]:
    engine = make_engine(f"sqlite:///{server.database_file}")
    try:
        return list(Repository(engine).queue_entries_of(call_id))
    finally:
        engine.dispose()


def _received_headers(message_log: Path, method: str) -> dict[str, str]:
    """The header fields of the first ``method`` request sipp logged as received (``-trace_msg``)."""
    text = message_log.read_text(errors="replace")
    start = text.find(f"\n{method} sip:")
    assert start >= 0, f"sipp received no {method}:\n{text[-3000:]}"
    head = text[start + 1 :].replace("\r\n", "\n").split("\n\n", 1)[0]
    fields = [line.split(":", 1) for line in head.splitlines()[1:] if ":" in line]
    return {name.strip().lower(): value.strip() for name, value in fields}


def test_refused_refer_falls_back_to_a_bridged_call_with_staff(
    voicebot_server: VoicebotServer, sipp_dir: Path, staff_port: int
) -> None:
    """REFER → 405: the bot INVITEs staff (sipp UAS with RTP echo) itself and bridges both legs until the caller
    hangs up, then BYEs staff. Audio flows both ways: what the caller sends comes back from the echoing staff.

    The hand-off to the PBX's queue (issue 10, way 1): the REFER the caller's side (the PBX) received and the
    INVITE the staff phone received carry the queue entry's summary reference (Call-Info link, RFC 7433
    User-to-User), as sipp logged them; the entry (mode pbx) is answered once staff took the bridged call."""
    with _staff_phone(sipp_dir, staff_port, ["-sn", "uas", "-trace_msg"]) as staff:
        started = time.time()
        _caller_completes(
            voicebot_server,
            sipp_dir,
            ["-sf", str(SCENARIOS / "uac_refer_refused.xml"), "-d", "9000", "-trace_msg"],
            timeout_s=60,
        )
        staff_output, _ = staff.communicate(timeout=20)
        assert staff.returncode == 0, f"staff UAS did not complete INVITE…BYE:\n{staff_output[-2000:]}"

    transcript = voicebot_server.closed_transcript_since(started)
    events = {e["kind"]: e for e in transcript["events"]}
    assert events["transfer_refer_refused"]["code"] == 405, events
    assert "transfer_bridged" in events, events
    assert transcript["ended_reason"] == "transferred:bridged"
    ended = events["transfer_ended"]
    assert ended["by"] == "caller"
    # Caller audio went out to staff and the echo came back in from staff and out to the caller.
    assert ended["staff_packets_out"] > 100 and ended["staff_packets_in"] > 100, ended
    assert ended["caller_packets_in"] > 100 and ended["caller_packets_out"] > 100, ended
    assert voicebot_server.wait_idle()

    (entry,) = _queue_entries(voicebot_server, transcript["call_id"])
    assert events["pbx_queue_entry"]["entry"] == entry.id
    assert (entry.mode, entry.status, entry.caller_number, entry.reason) == (
        "pbx",
        "answered",
        "sipp",
        "handoff_key",
    )
    assert entry.reference and entry.answered_at is not None and entry.answered_at >= entry.enqueued_at
    link = f"<{voicebot_server.http_url}/konsole/anruf/{entry.reference}>;purpose=info"
    (refer_log,) = sipp_dir.glob("uac_refer_refused_*_messages.log")
    refer = _received_headers(refer_log, "REFER")
    assert refer["call-info"] == link, refer
    assert reference_from_user_to_user(refer["user-to-user"]) == entry.reference, refer
    # Not in the Refer-To URI unless sip.refer_to_headers asks for it (a transferee might dial them).
    assert refer["refer-to"] == f"<sip:staff@127.0.0.1:{staff_port}>", refer
    (invite_log,) = (sipp_dir / "staff").glob("uas_*_messages.log")
    invite = _received_headers(invite_log, "INVITE")
    assert invite["call-info"] == link and invite["user-to-user"] == refer["user-to-user"], invite
    assert invite["user-to-user"].endswith(";encoding=hex;purpose=isdn-uui;content=isdn-uui")


def test_unreachable_staff_is_told_to_the_caller_and_the_call_goes_on(
    voicebot_server: VoicebotServer, sipp_dir: Path
) -> None:
    """REFER refused and nobody answers the bot's INVITE to staff (nothing listens on the staff port now): after
    ``transfer_timeout_s`` (8 s here) the bot gives up, says that nobody is available, and stays in the call."""
    started = time.time()
    _caller_completes(
        voicebot_server,
        sipp_dir,
        ["-sf", str(SCENARIOS / "uac_refer_refused.xml"), "-d", "16000"],
        timeout_s=60,
    )
    transcript = voicebot_server.closed_transcript_since(started)
    events = {e["kind"]: e for e in transcript["events"]}
    assert events["transfer_failed"]["code"] == 408, events
    assert "transfer_bridged" not in events
    turns = transcript["turns"]
    assert isinstance(turns, list)
    assert any(t["role"] == "bot" and t["kind"] == "transfer_failed" for t in turns), turns
    assert transcript["ended_reason"] == "caller:bye_remote"
    assert voicebot_server.wait_idle()
    # The PBX never took the caller: the hand-off's queue entry ended without staff.
    (entry,) = _queue_entries(voicebot_server, transcript["call_id"])
    assert (entry.mode, entry.status, entry.answered_at) == ("pbx", "abandoned", None)
    assert entry.ended_at is not None and entry.ended_at - entry.enqueued_at >= 8  # transfer_timeout_s


def test_bridged_call_ends_for_the_caller_when_staff_hangs_up(
    voicebot_server: VoicebotServer, sipp_dir: Path, staff_port: int
) -> None:
    """B2BUA: staff hangs up first (BYE after 4 s) → the bot BYEs the caller."""
    with _staff_phone(sipp_dir, staff_port, ["-sf", str(SCENARIOS / "uas_echo_then_bye.xml")]) as staff:
        started = time.time()
        _caller_completes(
            voicebot_server,
            sipp_dir,
            ["-sf", str(SCENARIOS / "uac_refer_refused_staff_hangs_up.xml")],
            timeout_s=60,
        )
        staff_output, _ = staff.communicate(timeout=20)
        assert staff.returncode == 0, f"staff UAS failed:\n{staff_output[-3000:]}"
    transcript = voicebot_server.closed_transcript_since(started)
    events = {e["kind"]: e for e in transcript["events"]}
    assert events["transfer_ended"]["by"] == "staff", events
    assert transcript["ended_reason"] == "transferred:bridged"
    assert voicebot_server.wait_idle()
