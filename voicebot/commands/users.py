"""``voicebot users add|list``: staff accounts for the console. The password is read from a hidden prompt or, for
scripts, from stdin (``--password-stdin``); never from an argument, where it would land in the shell history."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from voicebot.commands.errors import fail, settings_or_exit

if TYPE_CHECKING:
    from voicebot.db.repository import Repository

users_app = typer.Typer(help="Staff accounts for the console: add, list.", no_args_is_help=True)


def _repository() -> Repository:
    """The configured database, its schema brought up to date first (accounts come before the first serve)."""
    from voicebot.db.engine import database_url, make_engine
    from voicebot.db.migrate import DatabaseUnavailable, upgrade_configured
    from voicebot.db.repository import Repository

    settings = settings_or_exit()
    try:
        upgrade_configured(settings)
    except DatabaseUnavailable as error:
        raise fail(str(error)) from None
    return Repository(make_engine(database_url(settings)))


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name (lower case letters, digits, . _ -)")],
    role: Annotated[str, typer.Option(help="staff, supervisor or admin")] = "staff",
    display_name: Annotated[str, typer.Option(help="Name shown in the console")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin")
    ] = False,
) -> None:
    """Add a staff account; asks for the password twice (hidden) unless --password-stdin."""
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    from voicebot.staff.accounts import AccountError, check_role, check_username, hash_password

    try:
        check_username(name)
        chosen_role = check_role(role)
    except AccountError as error:
        raise fail(str(error)) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Passwort", hide_input=True, confirmation_prompt="Passwort wiederholen")
    try:
        password_hash = hash_password(password)
    except AccountError as error:
        raise fail(str(error)) from None
    repository = _repository()
    try:
        repository.add_staff_user(name, password_hash, chosen_role, display_name=display_name.strip()[:128])
    except IntegrityError:
        raise fail(f"Benutzer {name!r} gibt es schon") from None
    except SQLAlchemyError as error:
        raise fail(f"database: {str(error).splitlines()[0]}") from None
    typer.echo(f"Benutzer {name} angelegt (Rolle {chosen_role.value})")


@users_app.command("list")
def list_users() -> None:
    """The staff accounts: name, role, availability, disabled."""
    users = _repository().staff_users()
    if not users:
        typer.echo("keine Benutzer (anlegen: voicebot users add NAME --role staff)")
        return
    for user in users:
        state = " (gesperrt)" if user.disabled else ""
        shown = f" – {user.display_name}" if user.display_name else ""
        typer.echo(f"{user.username}\t{user.role}\t{user.availability}{state}{shown}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot users ...``."""
    app.add_typer(users_app, name="users")
