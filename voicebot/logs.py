"""Logging set-up of every voicebot process: loguru (ours and pipecat's) and the stdlib loggers (SIP/RTP).

Two formats (setting ``log_format``): ``text``, one human-readable line per entry (the embedded default), and
``json``, one JSON object per line for a log collector (decision 0912): ``time``, ``level``, ``message``,
``component`` (the module that logged), ``call_id`` on every line logged while handling a call (bound with
:func:`call_context`), and ``exception`` (the traceback, without variable values) when there is one. In JSON mode
the stdlib loggers (SIP transactions, RTP) are routed through loguru, so they are JSON lines too.

What callers said is logged at DEBUG only (the ASR result, pipecat's transcriptions); below DEBUG no line carries
transcript text.

loguru's default handler (added when loguru is first imported) and any ``logger.add`` without arguments run with
``diagnose=True``: a logged exception then prints the value of every variable in every frame of its traceback —
a settings object, a database URL with its password, a caller's raw SDP. A caller can trigger such an exception
(a broken offer), so production handlers never diagnose; tracebacks keep file, line and code only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
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


@contextlib.contextmanager
def call_context(call_id: str) -> Iterator[None]:
    """Every line logged inside, and in every asyncio task created inside (tasks copy the context), names
    ``call_id``."""
    with logger.contextualize(call_id=call_id):
        yield


def json_line(record: Any) -> str:
    """One log record as one line of JSON (no newline inside: messages and tracebacks are escaped)."""
    entry: dict[str, Any] = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
        "component": record["extra"].get("component") or record["name"],
    }
    call_id = record["extra"].get("call_id")
    if call_id:
        entry["call_id"] = str(call_id)
    if record["exception"] is not None:
        kind, value, trace = record["exception"]
        entry["exception"] = "".join(traceback.format_exception(kind, value, trace))
    return json.dumps(entry, ensure_ascii=False, default=str)


class _JsonSink:
    """A loguru sink writing :func:`json_line` of each record to a text stream (or calling a function)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __call__(self, message: Any) -> None:
        line = json_line(message.record) + "\n"
        if hasattr(self.target, "write"):
            self.target.write(line)
            self.target.flush()
        else:
            self.target(line)


class _ToLoguru(logging.Handler):
    """Routes a stdlib logging record into loguru (JSON mode), naming its logger as the component."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(component=record.name, from_stdlib=True).opt(exception=record.exc_info).log(
            level, record.getMessage()
        )


def configure_logging(
    level: str = "DEBUG", sink: Any = None, *, stdlib: bool = True, log_format: str = "text"
) -> None:
    """Replace every loguru handler by one on ``sink`` (stderr by default) at ``level``, without variable dumps,
    as text lines or (``log_format="json"``) JSON lines; with ``stdlib``, the standard logging module logs at the
    same level (in JSON mode through loguru).

    Code that adds a handler of its own with ``logger.add`` must pass ``diagnose=False`` itself: loguru reads
    ``LOGURU_DIAGNOSE`` only once, when it is first imported."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {log_format!r}")
    os.environ["LOGURU_DIAGNOSE"] = "NO"  # for child processes only (their loguru is imported after this)
    logger.remove()
    debugging = level.upper() == "DEBUG"
    target = sys.stderr if sink is None else sink
    logger.add(
        _JsonSink(target) if log_format == "json" else target,
        level=level.upper(),
        diagnose=False,
        backtrace=False,
        filter=None if debugging else _not_expected_library_warning,
    )
    if stdlib and log_format == "json":
        # Instead of the handlers that write text lines (basicConfig's); a counting handler (metrics) stays.
        root = logging.getLogger()
        for handler in root.handlers[:]:
            if isinstance(handler, _ToLoguru) or type(handler) is logging.StreamHandler:
                root.removeHandler(handler)
        root.addHandler(_ToLoguru())
        root.setLevel(level.upper())
    elif stdlib:
        logging.basicConfig(level=level.upper(), format=STDLIB_FORMAT)
    if stdlib:
        numeric = logging.getLevelName(level.upper())
        chatty_level = numeric if numeric == logging.DEBUG else max(logging.WARNING, numeric)
        for name in CHATTY_LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(chatty_level)
