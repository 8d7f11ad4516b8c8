"""Media interop with a real phone: baresip (Opus, telephone-event/8000) calls an echo bot built from our SIP
endpoint and RtpEndpoint; baresip must hear its own German sentence back and its key presses must arrive once.

Opus is the hard case: baresip pairs it with an 8 kHz telephone-event and sends events beside the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from interop.peers import free_sip_port_for_baresip

from sip_bridge.media import LocalSdpSession, RtpEndpoint, SessionDescription, answer_offer
from sip_bridge.sip import events as ev
from sip_bridge.sip.config import UserAgentConfig
from sip_bridge.sip.transport import SipEndpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((HOST, 0))
        return int(udp.getsockname()[1])


def speech_wav(path: Path) -> Path:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(
        ["espeak-ng", "-v", "de", "-w", str(raw), "Ich brauche einen neuen Reisepass."], check=True
    )
    subprocess.run(
        ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path), "pad", "0.5", "5"], check=True
    )
    return path


def loud_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, channels)[:, 0]
    window = rate // 50
    frames = samples[: samples.size // window * window].reshape(-1, window).astype(np.float64) / 32768
    return float((20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-12) > -40).sum() * 0.02)


def ctrl(port: int, command: str, params: str) -> None:
    request = f'{{"command":"{command}","params":"{params}","token":"t"}}'.encode()
    with socket.create_connection((HOST, port), timeout=5) as conn:
        conn.sendall(f"{len(request)}:".encode() + request + b",")
        conn.recv(4096)


async def _media_flowing(endpoint: RtpEndpoint, packets: int = 10, timeout_s: float = 10.0) -> None:
    """Wait (bounded) until the caller's audio arrives, so that keypad digits sent next travel on live media."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while endpoint.jitter.stats.received < packets:
        assert asyncio.get_running_loop().time() < deadline, "no RTP from baresip"
        await asyncio.sleep(0.02)


async def test_baresip_opus_call_hears_its_echo_and_sends_dtmf_once(tmp_path: Path) -> None:
    assert shutil.which("baresip"), "baresip (Debian baresip-core) is required"
    codecs = ["opus", "PCMU"]
    sip = await SipEndpoint.start(UserAgentConfig(port=0, transports=["udp"]))
    confdir = tmp_path / "baresip"
    recordings = confdir / "recordings"
    recordings.mkdir(parents=True)
    sip_port, ctrl_port = free_sip_port_for_baresip(), free_port()  # baresip also takes sip_port + 1 (TLS)
    (confdir / "config").write_text(
        f"sip_listen {HOST}:{sip_port}\nnet_interface {HOST}\naudio_source aufile,{speech_wav(tmp_path / 'in.wav')}\n"
        "audio_player none\nausrc_srate 8000\nausrc_channels 1\nmodule_path /usr/lib/baresip/modules\n"
        "module g711.so\nmodule opus.so\nmodule aufile.so\nmodule sndfile.so\n"
        f"snd_path {recordings}\nmodule_app account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\n"
        f"ctrl_tcp_listen {HOST}:{ctrl_port}\n"
    )
    (confdir / "accounts").write_text(f"<sip:phone@{HOST}:{sip_port}>;regint=0;audio_codecs=opus/48000/2\n")
    process = subprocess.Popen(
        ["baresip", "-f", str(confdir), "-e", f"/dial sip:hotline@{HOST}:{sip.port}", "-t", "15"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    rtp: RtpEndpoint | None = None
    echo: asyncio.Task[None] | None = None
    digits: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                event = await asyncio.wait_for(sip.next_event(), 1.0)
            except TimeoutError:
                continue
            if isinstance(event, ev.IncomingCall):
                rtp = RtpEndpoint(host=HOST, port=0)
                await rtp.open()
                answer, media = answer_offer(
                    SessionDescription.parse(event.sdp),
                    local_host=HOST,
                    local_port=rtp.local_port,
                    allowed_codecs=codecs,
                    session=LocalSdpSession(HOST),
                )
                assert media.codec.name == "opus" and media.dtmf_clock_rate == 8000
                rtp.configure(media)
                rtp.on_dtmf = digits.append
                sip.answer(event.call_id, answer.serialize().encode())

                async def echo_back(endpoint: RtpEndpoint) -> None:
                    while True:
                        await endpoint.send_audio(await endpoint.read_audio())

                echo = asyncio.create_task(echo_back(rtp))
                await _media_flowing(rtp)
                await asyncio.get_running_loop().run_in_executor(None, ctrl, ctrl_port, "sndcode", "1#")
            elif isinstance(event, ev.CallEnded):
                break
        assert rtp is not None, "baresip never called"
        assert digits == ["1", "#"]
        assert rtp.jitter.stats.lost == 0
    finally:
        if echo is not None:
            echo.cancel()
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if rtp is not None:
            await rtp.close()
        await sip.close()
    heard = sorted(recordings.glob("dump-*-dec.wav"))
    assert heard, "baresip recorded nothing"
    sent = loud_seconds(tmp_path / "in.wav")
    assert sent > 1.0
    assert loud_seconds(heard[-1]) > 0.8 * sent  # the whole sentence came back
