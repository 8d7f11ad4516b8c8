"""A hand-off nobody takes, with real SIP peers (issue 14 item 1): a sipp caller that refuses REFER, so the bot calls
staff itself, and a staff phone that is not there, rings until CANCELled or is busy (486). A decline (603) takes the
busy path with its own words, which tests/pipeline/test_transfer_script.py checks without a call.

While the transfer runs the call is in a transfer state: ringback, no "Sind Sie noch da?", no goodbye. A failed
transfer is told with the call-back offer; key 1 takes it (``callback_accepted``: the bot asks for the name, the
dialogue of tests/pipeline/test_callback.py); afterwards the silence watchdog works again and ends the silent call
(silence prompt, goodbye, BYE).
This module runs its own server: a 3 s silence timeout and a 6 s transfer timeout make a watchdog that forgot the
transfer state speak within the transfer, and keep each call short. One more call records what reaches the
caller's RTP port during the transfer (the test's own socket is the caller's media): 425 Hz ringback.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc.rtp import RtpPacket
from readiness import wait_until_bound

from interop.peers import VoicebotServer, espeak_wav, free_port, read_wav, shared_index_dir, sipp
from sip_bridge.media.codecs import AudioCodec
from sip_bridge.media.rtp import RtpSender

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP_PCAPS = Path("/usr/share/sip-tester")
SILENCE_TIMEOUT_S = 3.0
TRANSFER_TIMEOUT_S = 6.0


@pytest.fixture(scope="module")
def staff_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def transfer_server(
    tmp_path_factory: pytest.TempPathFactory, embedded_models_dir: Path, staff_port: int
) -> Iterator[VoicebotServer]:
    server = VoicebotServer(
        tmp_path_factory.mktemp("voicebot-transfer"),
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        call__greeting="Guten Tag, hier ist das Rathaus.",
        call__silence_timeout_s=str(SILENCE_TIMEOUT_S),
        sip__staff_uri=f"sip:staff@127.0.0.1:{staff_port}",
        sip__transfer_timeout_s=str(TRANSFER_TIMEOUT_S),
        sip__rtp_inactivity_timeout_s="60",  # the sipp caller sends RTP only for its key presses
        # The bot speaks first to the SDP address, so the test's own RTP socket learns where to answer from.
        sip__rtp_packets_before_receive="500",
    )
    server.start()
    yield server
    assert server.stop() == 0, f"voicebot serve did not shut down cleanly:\n{server.log_tail()}"


def _staff_phone(workdir: Path, port: int, scenario: list[str]) -> subprocess.Popen[str]:
    staff_dir = workdir / "staff"
    staff_dir.mkdir()
    staff = subprocess.Popen(
        [
            *("sipp", *scenario, "-m", "1", "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port())),
            *("-timeout", "60s", "-timeout_error", "-nostdin", "-trace_err"),
        ],
        cwd=staff_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_until_bound(port, "udp")
    return staff


def _caller(server: VoicebotServer, workdir: Path, *, digit: str, pause_ms: int) -> None:
    """The sipp caller: 0 for staff, 405 to the REFER, ``pause_ms`` of silence, ``digit``, then waits for BYE."""
    (workdir / "pcap").symlink_to(SIPP_PCAPS)
    template = (SCENARIOS / "uac_refer_refused_then_silent.xml").read_text()
    scenario = workdir / "caller.xml"
    scenario.write_text(template.replace("CALLBACK_DIGIT", digit))
    result = sipp(
        [
            *(
                "-sf",
                str(scenario),
                "-d",
                str(pause_ms),
                "-m",
                "1",
                "-i",
                "127.0.0.1",
                "-p",
                str(free_port()),
            ),
            *("-mp", str(free_port()), "-s", "hotline", f"127.0.0.1:{server.sip_port}"),
            *("-trace_err", "-error_file", str(workdir / "errors.log")),
        ],
        cwd=workdir,
        timeout_s=90,
    )
    errors = (workdir / "errors.log").read_text(errors="replace") if (workdir / "errors.log").exists() else ""
    assert result.returncode == 0, (
        f"sipp rc={result.returncode}\n{result.stdout[-2000:]}\n{errors[-3000:]}\nserver:\n{server.log_tail()}"
    )


def _event(record: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [e for e in record["events"] if e["kind"] == kind]
    assert len(found) == 1, f"{kind}: {record['events']}"
    return dict(found[0])


@pytest.mark.parametrize(
    ("staff", "code", "reason", "pause_ms", "digit"),
    [
        # A phone that rings too long is test_the_caller_hears_ringback_while_staff_rings; the words for each
        # failure code are tests/pipeline/test_transfer_script.py's (a call each here cost half a minute).
        pytest.param(None, 408, "not answered", 9000, "1", id="nobody-listens"),
        pytest.param(("uas_reject.xml", {}), 486, "busy", 4000, "5", id="busy-486"),
    ],
)  # fmt: skip
def test_a_transfer_nobody_takes_is_told_and_offers_a_call_back(
    transfer_server: VoicebotServer,
    tmp_path: Path,
    staff_port: int,
    staff: tuple[str, dict[str, str]] | None,
    code: int,
    reason: str,
    pause_ms: int,
    digit: str,
) -> None:
    phone = None
    if staff is not None:
        name, changes = staff
        text = (SCENARIOS / name).read_text()
        for old, new in changes.items():
            text = text.replace(old, new)
        (tmp_path / name).write_text(text)
        phone = _staff_phone(tmp_path, staff_port, ["-sf", str(tmp_path / name)])
    started = time.time()
    try:
        _caller(transfer_server, tmp_path, digit=digit, pause_ms=pause_ms)
        if phone is not None:
            output, _ = phone.communicate(timeout=20)
            assert phone.returncode == 0, f"staff sipp did not complete its scenario:\n{output[-3000:]}"
    finally:
        if phone is not None and phone.poll() is None:
            phone.kill()
            phone.wait(timeout=5)

    record = transfer_server.closed_transcript_since(started)
    for line in [*record["events"], *record["turns"]]:
        print(
            {
                key: line.get(key)
                for key in ("t", "start_s", "kind", "role", "text", "code", "reason", "seconds")
            }
        )
    kinds = [e["kind"] for e in record["events"]]
    assert _event(record, "transfer_refer_refused")["code"] == 405
    begun, failed = _event(record, "transfer_started"), _event(record, "transfer_failed")
    assert (failed["code"], failed["reason"]) == (code, reason), failed
    assert "transfer_completed" not in kinds and "transfer_bridged" not in kinds, kinds
    if staff is not None:
        assert (
            kinds.index("transfer_started") < kinds.index("transfer_ringing") < kinds.index("transfer_failed")
        )
    if code == 408:
        # The bot waited the whole transfer timeout for staff, and not much longer (then it CANCELled).
        assert TRANSFER_TIMEOUT_S - 0.5 < failed["t"] - begun["t"] < TRANSFER_TIMEOUT_S + 5, (begun, failed)
        assert _event(record, "ringback")["seconds"] >= TRANSFER_TIMEOUT_S - 1

    bot = [t for t in record["turns"] if t["role"] == "bot"]
    said = [t["kind"] for t in bot]
    told = next(t for t in bot if t["kind"] == "transfer_failed")
    assert told["text"].startswith("Leider ist im Moment niemand erreichbar.")
    assert "Rückruf" in told["text"] and told["played"], told
    # No silence prompt or goodbye while the transfer ran (≥ 2 × the silence timeout), only after it failed.
    prompts = [t for t in bot if t["kind"] in ("silence_prompt", "goodbye")]
    assert all(t["start_s"] > failed["t"] for t in prompts), (failed, prompts)
    assert said.index("handoff") < said.index("transfer_failed"), said
    # Afterwards the watchdog works again: the silent caller is asked once, then the bot says goodbye and hangs up.
    assert said[-2:] == ["silence_prompt", "goodbye"], said
    assert record["ended_reason"] == "silence", record["ended_reason"]

    if digit == "1":
        callback = _event(record, "callback_accepted")
        assert callback["via"] == "dtmf", callback
        assert callback["t"] > failed["t"]
        assert "callback_name" in said, said  # the dialogue asks for the name; the caller stays silent
        # The conversation so far stays in the same record as the request.
        assert any(t["role"] == "caller" and t["text"] == "0" for t in record["turns"]), record["turns"]
    else:
        assert "callback_accepted" not in kinds and "callback_name" not in said, record
    assert transfer_server.wait_idle()


class CallerMedia:
    """The caller's phone audio, played by the test: a UDP socket that records every PCMA packet the bot sends and
    answers with 20 ms of silence per packet (so the bot hears a live caller). Bounded: it stops after ``run_s``."""

    def __init__(self, run_s: float = 90.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.heard: list[tuple[float, bytes]] = []  # (time.time() of arrival, 8 kHz PCM)
        self._to_say = b""  # 8 kHz PCM the caller speaks, 20 ms per packet, instead of silence
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + run_s
        self._thread = threading.Thread(target=self._run, name="caller-media", daemon=True)

    def __enter__(self) -> CallerMedia:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        codec, sender = AudioCodec("PCMA"), RtpSender(8)
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            packet = RtpPacket.parse(data)
            if packet.payload_type == 8:
                self.heard.append((time.time(), codec.decode(packet.payload)))
                with self._lock:
                    pcm, self._to_say = self._to_say[:320], self._to_say[320:]
                payload = codec.encode_frame(pcm.ljust(320, b"\0")) if pcm else b"\xd5" * 160  # A-law silence
                self.sock.sendto(sender.build(payload), peer)
                sender.timestamp = (sender.timestamp + 160) & 0xFFFFFFFF

    def say(self, wav: Path) -> None:
        """Speak a mono 16-bit 8 kHz WAV into the call (paced by the bot's packets, one for one)."""
        samples, rate = read_wav(wav)
        assert rate == 8000
        with self._lock:
            self._to_say += (samples * 32767).astype("<i2").tobytes()

    def tone_seconds(self, start: float, end: float, hz: float = 425.0) -> tuple[float, float]:
        """Seconds of 100 ms blocks between ``start`` and ``end`` (time.time()) dominated by a ``hz`` tone above
        -30 dBFS, and seconds of audio heard there at all."""
        pcm = b"".join(audio for at, audio in self.heard if start <= at <= end)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
        block, tone = 800, 0
        for index in range(len(samples) // block):
            chunk = samples[index * block : (index + 1) * block]
            spectrum = np.abs(np.fft.rfft(chunk * np.hanning(block))) ** 2
            peak = int(np.argmax(spectrum))
            level = 10 * np.log10(np.mean(chunk**2) + 1e-12)
            band = spectrum[max(0, peak - 2) : peak + 3].sum() / (spectrum.sum() + 1e-12)
            if abs(peak * 8000 / block - hz) <= 10 and level > -30 and band > 0.8:
                tone += 1
        return tone * block / 8000, len(samples) / 8000


def test_the_caller_hears_ringback_while_staff_rings(
    transfer_server: VoicebotServer, tmp_path: Path, staff_port: int
) -> None:
    """What reaches the caller's RTP port while staff's phone rings: the 425 Hz ringback, not silence. The caller's
    media is the test's own socket (its number in the SDP); sipp does the signalling and presses 0 by SIP INFO."""
    staff_dir = tmp_path / "ringing"
    staff_dir.mkdir()
    phone = _staff_phone(staff_dir, staff_port, ["-sf", str(SCENARIOS / "uas_ring_until_cancel.xml")])
    started = time.time()
    try:
        with CallerMedia() as media:
            result = sipp(
                [
                    *(
                        "-sf",
                        str(SCENARIOS / "uac_info_key_refer_refused.xml"),
                        "-key",
                        "rtp_port",
                        str(media.port),
                    ),
                    *("-m", "1", "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port())),
                    *("-s", "hotline", f"127.0.0.1:{transfer_server.sip_port}", "-trace_err"),
                ],
                cwd=tmp_path,
                timeout_s=90,
            )
            assert result.returncode == 0, (
                f"sipp: {result.stdout[-2000:]}\nserver:\n{transfer_server.log_tail()}"
            )
        output, _ = phone.communicate(timeout=20)
        assert phone.returncode == 0, f"staff sipp did not complete its scenario:\n{output[-3000:]}"
    finally:
        if phone.poll() is None:
            phone.kill()
            phone.wait(timeout=5)

    record = transfer_server.closed_transcript_since(started)
    begun, failed = _event(record, "transfer_started"), _event(record, "transfer_failed")
    assert (failed["code"], failed["reason"]) == (408, "not answered"), failed
    call_start = float(record["started_at"])
    window = (call_start + begun["t"], call_start + failed["t"])
    tone_s, heard_s = media.tone_seconds(*window)
    greeting_tone_s, _ = media.tone_seconds(call_start, call_start + begun["t"] - 0.5)
    print(
        f"transfer {window[1] - window[0]:.1f} s: caller got {heard_s:.1f} s of RTP audio, {tone_s:.1f} s of it 425 Hz ringback"
    )
    assert heard_s > TRANSFER_TIMEOUT_S - 1.5, "RTP to the caller stopped during the transfer"
    assert tone_s >= 1.2, (tone_s, heard_s)  # 1 s on / 4 s off: two tone bursts in a 6 s transfer
    assert greeting_tone_s < 0.3  # the detector does not take the bot's speech for ringback
    assert any(t["kind"] == "dtmf" and t["text"] == "0" for t in record["turns"])  # the INFO key press
    said = [t["kind"] for t in record["turns"] if t["role"] == "bot"]
    assert "silence_prompt" not in said[: said.index("transfer_failed")], said


def test_a_spoken_yes_after_a_failed_transfer_records_the_call_back(
    transfer_server: VoicebotServer, tmp_path: Path, staff_port: int
) -> None:
    """Staff is busy; once the caller has heard the offer, they say "Ja, bitte." (espeak-ng through PCMA, heard by
    the bot's Whisper): the call-back dialogue starts (the bot asks for the name)."""
    answer = espeak_wav("Ja, bitte.", tmp_path / "yes.wav", lead_s=0.2, tail_s=0.5)
    staff_dir = tmp_path / "busy"
    staff_dir.mkdir()
    phone = _staff_phone(staff_dir, staff_port, ["-sf", str(SCENARIOS / "uas_reject.xml")])
    started = time.time()
    outcome: list[subprocess.CompletedProcess[str]] = []
    try:
        with CallerMedia() as media:
            signalling = threading.Thread(
                target=lambda: outcome.append(
                    sipp(
                        [
                            *("-sf", str(SCENARIOS / "uac_info_key_refer_refused.xml")),
                            *("-key", "rtp_port", str(media.port), "-m", "1", "-i", "127.0.0.1"),
                            *("-p", str(free_port()), "-mp", str(free_port()), "-trace_err"),
                            *("-s", "hotline", f"127.0.0.1:{transfer_server.sip_port}"),
                        ],
                        cwd=tmp_path,
                        timeout_s=90,
                    )
                )
            )
            signalling.start()
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline and not _offer_heard(transfer_server, started):
                time.sleep(0.1)
            assert _offer_heard(transfer_server, started), transfer_server.log_tail()
            media.say(answer)
            signalling.join(timeout=100)
        assert outcome and outcome[0].returncode == 0, f"sipp failed\nserver:\n{transfer_server.log_tail()}"
        phone.communicate(timeout=20)
    finally:
        if phone.poll() is None:
            phone.kill()
            phone.wait(timeout=5)

    record = transfer_server.closed_transcript_since(started)
    assert _event(record, "transfer_failed")["code"] == 486
    callback = _event(record, "callback_accepted")
    assert callback["via"] == "speech", callback
    heard = [t["text"] for t in record["turns"] if t["role"] == "caller" and t["kind"] == "question"]
    print(f"the caller's answer to the offer was heard as {heard}")
    said = [t["kind"] for t in record["turns"] if t["role"] == "bot"]
    assert said.index("transfer_failed") < said.index("callback_name"), said
    assert "answer" not in said, said  # "Ja" took the offer; it was not a question for the engine


def _offer_heard(server: VoicebotServer, started: float) -> bool:
    for record in server.transcripts():
        if float(str(record.get("started_at", 0))) >= started - 1:
            turns = record.get("turns") or []
            if any(t.get("kind") == "transfer_failed" and t.get("played") for t in turns):
                return True
    return False
