"""How every ``voicebot`` command reports a problem: one ``error: ...`` line on stderr and a non-zero exit.

Imports of pydantic and the settings stay inside the functions so that ``voicebot --help`` stays fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from voicebot.settings import Settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` to stderr and return the exit to raise (``raise fail(...) from None``)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


def settings_error_line(exc: Exception) -> str:
    """One line for an invalid configuration, e.g. ``asr.bogus: Extra inputs are not permitted``."""
    from pydantic import ValidationError

    from voicebot.settings import UnknownSettingError

    if isinstance(exc, UnknownSettingError):
        return str(exc)
    if not isinstance(exc, ValidationError):  # e.g. tomllib.TOMLDecodeError, or the file cannot be read
        config_file = os.environ.get("VOICEBOT_CONFIG", "voicebot.toml")
        return f"cannot read {config_file}: {str(exc).splitlines()[0]}"
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return f"invalid configuration (voicebot.toml or VOICEBOT_* environment): {problems}"


def check_environment_or_exit() -> None:
    """Exit with one line when a ``VOICEBOT_*`` variable names no setting (every command, before it starts)."""

    from voicebot.settings import UnknownSettingError, check_environment

    try:
        check_environment(os.environ)
    except UnknownSettingError as exc:
        raise fail(str(exc)) from None


def settings_or_exit() -> Settings:
    """The process settings, or exit with one line naming the setting that is wrong (exit 1 from every command:
    a configuration error is not a usage error)."""
    from voicebot.settings import get_settings

    try:
        return get_settings()
    except (ValueError, OSError) as exc:  # pydantic's ValidationError and TOMLDecodeError are ValueErrors
        raise fail(settings_error_line(exc)) from None
