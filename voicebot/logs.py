"""Logging set-up of every voicebot process: loguru (ours and pipecat's) and the stdlib loggers (SIP/RTP).

loguru's default handler (added when loguru is first imported) and any ``logger.add`` without arguments run with
``diagnose=True``: a logged exception then prints the value of every variable in every frame of its traceback —
a settings object, a database URL with its password, a caller's raw SDP. A caller can trigger such an exception
(a broken offer), so production handlers never diagnose; tracebacks keep file, line and code only.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from loguru import logger

STDLIB_FORMAT = "%(asctime)s | %(levelname)-8s | %(name)s - %(message)s"
# WebRTC's libraries log every ICE candidate pair and state change at INFO (a dozen lines per browser call):
# below DEBUG they log warnings only.
CHATTY_LIBRARY_LOGGERS = ("aioice", "aiortc")
# pipecat's browser transport warns about what every audio-only browser call does: it has no camera or screen
# track, and its audio track ends when the caller hangs up. Below DEBUG these are left out (we log the call's start
# and end ourselves).
EXPECTED_LIBRARY_WARNINGS = frozenset(
    {
        ("pipecat.transports.smallwebrtc.connection", "No video transceiver is available"),
        ("pipecat.transports.smallwebrtc.connection", "No screen video transceiver is available"),
        (
            "pipecat.transports.smallwebrtc.transport",
            "Media stream error while reading the audio; clearing track.",
        ),
    }
)


def _not_expected_library_warning(record: Any) -> bool:
    return (record["name"], record["message"]) not in EXPECTED_LIBRARY_WARNINGS


def configure_logging(level: str = "DEBUG", sink: Any = None, *, stdlib: bool = True) -> None:
    """Replace every loguru handler by one on ``sink`` (stderr by default) at ``level``, without variable dumps;
    with ``stdlib``, the standard logging module logs at the same level.

    Code that adds a handler of its own with ``logger.add`` must pass ``diagnose=False`` itself: loguru reads
    ``LOGURU_DIAGNOSE`` only once, when it is first imported."""
    os.environ["LOGURU_DIAGNOSE"] = "NO"  # for child processes only (their loguru is imported after this)
    logger.remove()
    debugging = level.upper() == "DEBUG"
    logger.add(
        sys.stderr if sink is None else sink,
        level=level.upper(),
        diagnose=False,
        backtrace=False,
        filter=None if debugging else _not_expected_library_warning,
    )
    if stdlib:
        logging.basicConfig(level=level.upper(), format=STDLIB_FORMAT)
        numeric = logging.getLevelName(level.upper())
        chatty_level = numeric if numeric == logging.DEBUG else max(logging.WARNING, numeric)
        for name in CHATTY_LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(chatty_level)
