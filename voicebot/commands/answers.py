"""Placeholder registration; replaced by the module's owner."""

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register this module's commands."""
