"""Where call recordings live and how they go: files named only by the server-minted call id (decision 0970).

``<recordings_dir>/<call id>-anrufer.wav`` (the caller, pipeline rate) and ``<call id>-bot.wav`` (the bot, the
transport's output rate). Nothing a peer sends is part of a path: the call id is checked against its format.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from voicebot.records import checked_call_id, is_call_id

TRACKS = ("anrufer", "bot")


def recording_path(directory: Path, call_id: str, track: str) -> Path:
    """The file of one track of a call's recording; ValueError for anything but a server call id or a track."""
    if track not in TRACKS:
        raise ValueError(f"unknown track {track!r}; one of {', '.join(TRACKS)}")
    return directory / f"{checked_call_id(call_id)}-{track}.wav"


def recording_files(directory: Path, call_id: str) -> list[Path]:
    """The existing, non-empty track files of a call's recording."""
    paths = (recording_path(directory, call_id, track) for track in TRACKS)
    return [path for path in paths if path.is_file() and path.stat().st_size > 44]


def delete_recordings_of(directory: Path, call_ids: Iterable[str], *, dry_run: bool = False) -> int:
    """Delete the recordings of these calls (erasure; ids not in the call id format are skipped); the number of
    calls whose recording was (or, ``dry_run``, would be) deleted."""
    deleted = 0
    for call_id in call_ids:
        if not is_call_id(call_id):
            continue
        paths = [path for path in (recording_path(directory, call_id, t) for t in TRACKS) if path.exists()]
        if not dry_run:
            for path in paths:
                path.unlink(missing_ok=True)
        deleted += bool(paths)
    return deleted


def delete_old_recordings(
    directory: Path, days: int, *, now: float | None = None, dry_run: bool = False
) -> int:
    """Delete recordings last written more than ``days`` ago (clock injectable); the number of calls."""
    if not directory.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - days * 86400
    old: set[str] = set()
    for path in directory.glob("call_*.wav"):
        call_id, _, track = path.stem.rpartition("-")
        if track in TRACKS and is_call_id(call_id) and path.stat().st_mtime < cutoff:
            old.add(call_id)
    return delete_recordings_of(directory, sorted(old), dry_run=dry_run)
