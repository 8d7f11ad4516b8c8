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


def configure_logging(level: str = "DEBUG", sink: Any = None, *, stdlib: bool = True) -> None:
    """Replace every loguru handler by one on ``sink`` (stderr by default) at ``level``, without variable dumps;
    with ``stdlib``, the standard logging module logs at the same level.

    Code that adds a handler of its own with ``logger.add`` must pass ``diagnose=False`` itself: loguru reads
    ``LOGURU_DIAGNOSE`` only once, when it is first imported."""
    os.environ["LOGURU_DIAGNOSE"] = "NO"  # for child processes only (their loguru is imported after this)
    logger.remove()
    logger.add(sys.stderr if sink is None else sink, level=level.upper(), diagnose=False, backtrace=False)
    if stdlib:
        logging.basicConfig(level=level.upper(), format=STDLIB_FORMAT)
