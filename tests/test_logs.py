"""Logs never disclose configured secrets (issue 15): no loguru variable dumps, secrets as ``SecretStr``.

The real path: ``voicebot serve`` with every secret configured and an INVITE whose SDP (``m=audio ²``) made the
call set-up fail; loguru's variable dump of that traceback printed the settings with the database password.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from database import fresh_postgres_schema
from interop.peers import VoicebotServer, shared_index_dir
from loguru import logger
from pydantic import SecretStr

from sip_bridge.media.sdp import SessionDescription
from voicebot.logs import configure_logging
from voicebot.settings import LlmSettings, Settings, SipSettings

SECRETS = ("pw-db-7f3a9", "sk-llm-91c2e", "reg-pw-5d1e4", "in-pw-0b8c6")
BROKEN_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ² RTP/AVP 0\r\n"
).encode()


def _settings() -> Settings:
    database, api_key, auth, inbound = (SecretStr(secret) for secret in SECRETS)
    return Settings(
        database_url=SecretStr(f"postgresql://voicebot:{database.get_secret_value()}@127.0.0.1:9/voicebot"),
        llm=LlmSettings(base_url="http://127.0.0.1:9/v1", api_key=api_key),
        sip=SipSettings(auth_username="2001", auth_password=auth, inbound_password=inbound),
    )


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """The production logging set-up (``voicebot serve``), with a list as its sink; loguru's default after."""
    lines: list[str] = []
    configure_logging("DEBUG", lines.append, stdlib=False)
    yield lines
    logger.remove()
    logger.add(sys.stderr)


def _invite(port: int, local_port: int) -> bytes:
    head = (
        f"INVITE sip:hotline@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK-secret-1;rport\r\n"
        "From: <sip:caller@127.0.0.1>;tag=caller-tag\r\n"
        "To: <sip:hotline@127.0.0.1>\r\n"
        "Call-ID: broken-offer@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Max-Forwards: 70\r\n"
        f"Contact: <sip:caller@127.0.0.1:{local_port}>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(BROKEN_OFFER)}\r\n\r\n"
    )
    return head.encode() + BROKEN_OFFER


def _final_status(sock: socket.socket, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return None
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"SIP/2.0 ") else 0
        if status >= 200:
            return status
    return None


@pytest.mark.slow
def test_a_failing_call_set_up_in_serve_logs_no_secret(tmp_path: Path, embedded_models_dir: Path) -> None:
    """`voicebot serve` with every secret configured; a caller's broken offer; the whole log has no secret."""
    database, api_key, auth, inbound = SECRETS
    with fresh_postgres_schema(password=database) as database_url:  # serve upgrades it and logs where it is
        server = VoicebotServer(
            tmp_path,
            models_dir=embedded_models_dir,
            index_dir=shared_index_dir(),
            database_url=database_url,
            llm__api_key=api_key,
            sip__auth_username="2001",
            sip__auth_password=auth,
            sip__inbound_password=inbound,  # no realm: calls are not challenged
        )
        _serve_a_broken_call(server)


def _serve_a_broken_call(server: VoicebotServer) -> None:
    server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.sendto(_invite(server.sip_port, sock.getsockname()[1]), ("127.0.0.1", server.sip_port))
            status = _final_status(sock, timeout_s=20.0)
    finally:
        assert server.stop() == 0, server.log_tail()
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert status is not None and 400 <= status < 600, (status, log[-3000:])  # refused; the server went on
    assert "schema upgraded from empty to 0007" in log  # the database was used, and named
    for secret in SECRETS:
        assert secret not in log, log


def test_an_exception_with_secrets_in_scope_is_logged_without_them(log_lines: list[str]) -> None:
    """The same for any code that logs an exception while it holds the settings and a plain secret."""

    def set_up_call(settings: Settings, offer: bytes) -> SessionDescription:
        assert settings.database_url is not None
        dsn = settings.database_url.get_secret_value()  # a plain str now, as handed to psycopg
        return SessionDescription.parse(offer) if dsn else SessionDescription.parse(b"")

    try:
        set_up_call(_settings(), BROKEN_OFFER)
    except Exception:
        logger.exception("call set-up failed")
    log = "".join(log_lines)
    assert "Traceback" in log and "set_up_call" in log  # the traceback itself is kept
    for secret in SECRETS:
        assert secret not in log, log


def test_webrtc_libraries_log_warnings_only_unless_debugging() -> None:
    """aioice/aiortc log each ICE candidate pair and state change at INFO (a dozen lines per browser call)."""
    import logging

    try:
        configure_logging("INFO")
        assert [logging.getLogger(name).getEffectiveLevel() for name in ("aioice", "aiortc")] == [
            logging.WARNING
        ] * 2
        assert not logging.getLogger("aioice.ice").isEnabledFor(logging.INFO)
        configure_logging("DEBUG")
        assert logging.getLogger("aioice.ice").isEnabledFor(logging.DEBUG)
    finally:
        configure_logging("DEBUG", stdlib=False)
        for name in ("aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def _logger_of(module: str) -> Any:
    """loguru's logger as if called in ``module`` (loguru names records after the calling module)."""

    def rename(record: Any) -> None:
        record["name"] = module

    return logger.patch(rename)


def test_the_warnings_of_every_audio_only_browser_call_are_left_out_below_debug() -> None:
    """pipecat warns in every browser call that it has no camera or screen track and, at hang-up, that the audio
    track ended; other warnings, also pipecat's, still come through."""
    lines: list[str] = []
    connection = _logger_of("pipecat.transports.smallwebrtc.connection")
    transport = _logger_of("pipecat.transports.smallwebrtc.transport")
    try:
        configure_logging("INFO", lines.append, stdlib=False)
        connection.warning("No video transceiver is available")
        connection.warning("No screen video transceiver is available")
        transport.warning("Media stream error while reading the audio; clearing track.")
        transport.warning("Timeout: No audio frame received within the specified time.")
        assert len(lines) == 1 and "Timeout: No audio frame" in lines[0]
        configure_logging("DEBUG", lines.append, stdlib=False)
        connection.warning("No video transceiver is available")
        assert len(lines) == 2
    finally:
        configure_logging("DEBUG", stdlib=False)


def test_json_format_one_object_per_line_with_the_call_id_of_every_line_of_a_call() -> None:
    """``log_format = "json"``: loguru's and the stdlib's lines (SIP/RTP) become one JSON object each; a line logged
    in a task started inside :func:`call_context` (as a call's set-up and pipeline are) names the call; what the
    caller said (the ASR line, DEBUG) is not logged at INFO; a traceback has no variable values."""
    import asyncio
    import json
    import logging

    from voicebot.logs import call_context

    lines: list[str] = []
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stt = _logger_of("voicebot.pipeline.stt")

    async def in_call() -> None:
        stt.debug("ASR [de] 'Ich heiße Erika Mustermann' logprob=-0.20")
        logger.info("answered sip:+4921531234@pbx")
        logging.getLogger("sip_bridge.sip.transaction").warning("retransmission %d", 3)
        secret = "pw-in-a-frame-77"  # noqa: F841 — a variable dump would print it
        try:
            raise RuntimeError("Pipeline kaputt")
        except RuntimeError:
            logger.exception("pipeline failed")

    async def calls() -> None:
        with call_context("call-1@pbx"):
            task = asyncio.create_task(in_call())
        logger.info("between calls")
        await task

    from voicebot.metrics import METRICS

    def errors() -> tuple[float, float]:
        """The errors counted for the SIP component, and for all components together."""
        samples = [
            sample
            for metric in METRICS.registry.collect()
            for sample in metric.samples
            if sample.name == "voicebot_errors_total"
        ]
        sip = sum(s.value for s in samples if s.labels.get("component") == "sip_bridge.sip")
        return sip, sum(s.value for s in samples)

    counting = (METRICS._error_sink_id, METRICS._error_handler)  # as the other tests left them
    try:
        configure_logging("INFO", lines.append, log_format="json")
        METRICS._error_sink_id = None  # configure_logging removed every loguru sink, the error counter's too
        METRICS.count_errors()
        asyncio.run(calls())
        sip, total = errors()
        logging.getLogger("sip_bridge.sip.core").error("counted once")
        assert errors() == (sip + 1, total + 1)  # by the stdlib handler, not again as a loguru record
    finally:
        root.handlers, root.level = saved
        configure_logging("DEBUG", stdlib=False)
        METRICS._error_sink_id, METRICS._error_handler = None, counting[1]  # root's handlers are restored
        if counting[0] is not None:
            METRICS.count_errors()  # the error counter's loguru sink again, as before this test
    entries = [json.loads(line) for line in lines]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    by_message = {entry["message"]: entry for entry in entries}
    assert set(by_message) == {
        "between calls",
        "answered sip:+4921531234@pbx",
        "retransmission 3",
        "pipeline failed",
        "counted once",
    }
    assert "call_id" not in by_message["between calls"]
    for message in ("answered sip:+4921531234@pbx", "retransmission 3", "pipeline failed"):
        assert by_message[message]["call_id"] == "call-1@pbx", by_message[message]
    assert by_message["retransmission 3"]["component"] == "sip_bridge.sip.transaction"
    assert by_message["retransmission 3"]["level"] == "WARNING"
    assert by_message["answered sip:+4921531234@pbx"]["component"] == "test_logs"
    assert {"time", "level", "message", "component"} <= set(by_message["between calls"])
    failure = by_message["pipeline failed"]
    assert failure["level"] == "ERROR" and "RuntimeError: Pipeline kaputt" in failure["exception"]
    assert "pw-in-a-frame-77" not in "".join(lines)
    assert "Erika" not in "".join(lines)


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'text' or 'json'"):
        configure_logging("INFO", log_format="xml", stdlib=False)
