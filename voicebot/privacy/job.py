"""The retention job inside ``voicebot serve``: once on start, then every ``privacy.retention_interval_h`` hours,
in a worker thread (a large deletion never holds up a call). Several servers sharing one database each run it;
a run after another's finds nothing left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from loguru import logger
from sqlalchemy import Engine

from voicebot.privacy.data import retention
from voicebot.settings import Settings


async def run_retention_job(
    engine: Engine, settings: Settings, *, clock: Callable[[], float] = time.time, max_runs: int | None = None
) -> None:
    """Until cancelled (or ``max_runs`` runs, for tests); a failed run is logged and tried again next time."""
    interval_s = settings.privacy.retention_interval_h * 3600
    if interval_s <= 0:
        logger.info("retention: no daily job (privacy.retention_interval_h = 0); run voicebot retention run")
        return
    runs = 0
    while max_runs is None or runs < max_runs:
        try:
            await asyncio.to_thread(
                retention,
                engine,
                settings.privacy,
                settings.paths.calls_dir,
                now=clock(),
                recordings_dir=settings.paths.recordings_dir,
            )
        except Exception as error:  # the database down for a while: the next run catches up
            logger.error(
                f"retention: run failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
            )
        runs += 1
        if max_runs is not None and runs >= max_runs:
            return
        await asyncio.sleep(interval_s)
