"""``voicebot users add|list``: staff accounts for the console. The password is read from a hidden prompt or, for
scripts, from stdin (``--password-stdin``); never from an argument, where it would land in the shell history."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from voicebot.commands.errors import fail, settings_or_exit

if TYPE_CHECKING:
    from voicebot.db.models import StaffUser
    from voicebot.db.repository import Repository

users_app = typer.Typer(help="Staff accounts for the console: add, set, list.", no_args_is_help=True)
USAGE_ERROR = 2  # a bad phone address or group (like click's usage errors)


def _phone_and_groups(phone: str | None, groups: str | None) -> tuple[str | None, list[str] | None]:
    """The checked ``--phone`` and ``--groups`` (None where not given); exit 2 with one line otherwise. Group
    names must be configured in handoff.groups (decision 0860)."""
    from voicebot.staff.phones import StaffSettingError, check_groups, check_phone_uri

    settings = settings_or_exit()
    try:
        phone_uri = check_phone_uri(phone, registrar=settings.sip.registrar) if phone is not None else None
        if phone is not None and not phone_uri:
            raise StaffSettingError("Telefonadresse leer: ohne Telefon bitte --no-phone")
        chosen = (
            check_groups(groups.split(","), [group.name for group in settings.handoff.groups])
            if groups is not None
            else None
        )
    except StaffSettingError as error:
        raise fail(str(error), USAGE_ERROR) from None
    return phone_uri, chosen


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
    phone: Annotated[
        str | None,
        typer.Option("--phone", help="Where the bot rings them on accept: sip:, sips: or tel: URI"),
    ] = None,
    groups: Annotated[
        str | None,
        typer.Option(
            "--groups", help="Staff groups they take, comma-separated (handoff.groups; default: all)"
        ),
    ] = None,
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
    phone_uri, chosen_groups = _phone_and_groups(phone, groups)
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
        user = repository.add_staff_user(
            name,
            password_hash,
            chosen_role,
            display_name=display_name.strip()[:128],
            phone_uri=phone_uri or "",
            groups=chosen_groups,
        )
    except IntegrityError:
        raise fail(f"Benutzer {name!r} gibt es schon") from None
    except SQLAlchemyError as error:
        raise fail(f"database: {str(error).splitlines()[0]}") from None
    typer.echo(f"Benutzer {name} angelegt: {_describe(user)}")


@users_app.command("set")
def set_user(
    name: Annotated[str, typer.Argument(help="User name")],
    phone: Annotated[
        str | None,
        typer.Option("--phone", help="Where the bot rings them on accept: sip:, sips: or tel: URI"),
    ] = None,
    no_phone: Annotated[bool, typer.Option("--no-phone", help="Remove the phone address")] = False,
    groups: Annotated[
        str | None, typer.Option("--groups", help="Staff groups they take, comma-separated (handoff.groups)")
    ] = None,
    all_groups: Annotated[
        bool, typer.Option("--all-groups", help="They take callers of every group")
    ] = False,
    role: Annotated[str | None, typer.Option(help="staff, supervisor or admin")] = None,
    disable: Annotated[bool, typer.Option("--disable", help="Lock the account (signs it out)")] = False,
    enable: Annotated[bool, typer.Option("--enable", help="Unlock the account")] = False,
) -> None:
    """Change an account's phone address, groups, role or lock; what is not given stays as it is."""
    from sqlalchemy.exc import SQLAlchemyError

    from voicebot.staff.accounts import AccountError, check_role

    exclusive = [
        ("--phone", phone is not None, "--no-phone", no_phone),
        ("--groups", groups is not None, "--all-groups", all_groups),
        ("--disable", disable, "--enable", enable),
    ]
    for first, has_first, second, has_second in exclusive:
        if has_first and has_second:
            raise fail(f"{first} and {second} exclude each other; give one of them", USAGE_ERROR)
    changes: dict[str, object] = {}
    if role is not None:
        try:
            changes["role"] = check_role(role).value
        except AccountError as error:
            raise fail(str(error), USAGE_ERROR) from None
    phone_uri, chosen_groups = _phone_and_groups(phone, groups)
    if phone_uri is not None or no_phone:
        changes["phone_uri"] = phone_uri or ""
    if chosen_groups is not None or all_groups:
        changes["groups"] = chosen_groups
    if disable or enable:
        changes["disabled"] = disable
    if not changes:
        raise fail(
            "nothing to change: give --phone/--no-phone, --groups/--all-groups, --role or --disable/--enable",
            USAGE_ERROR,
        )
    repository = _repository()
    try:
        user = repository.staff_user(name)
        if user is None:
            raise fail(f"Benutzer {name!r} gibt es nicht (voicebot users list zeigt alle)")
        repository.update_staff_user(user.id, changes)
        updated = repository.staff_user(name) or user
    except SQLAlchemyError as error:
        raise fail(f"database: {str(error).splitlines()[0]}") from None
    typer.echo(f"Benutzer {name} geändert: {_describe(updated)}")


def _describe(user: StaffUser) -> str:
    phone = user.phone_uri or "kein Telefon"
    groups = ",".join(user.groups) if user.groups is not None else "alle Gruppen"
    return f"Rolle {user.role}, Telefon {phone}, Gruppen {groups}{', gesperrt' if user.disabled else ''}"


@users_app.command("list")
def list_users() -> None:
    """The staff accounts, tab-separated: name, role, availability (gesperrt), phone, groups, display name."""
    users = _repository().staff_users()
    if not users:
        typer.echo("keine Benutzer (anlegen: voicebot users add NAME --role staff)")
        return
    for user in users:
        state = " (gesperrt)" if user.disabled else ""
        phone = user.phone_uri or "kein Telefon"
        groups = ",".join(user.groups) if user.groups is not None else "alle Gruppen"
        typer.echo(
            f"{user.username}\t{user.role}\t{user.availability}{state}\t{phone}\t{groups}\t{user.display_name}".rstrip(
                "\t"
            )
        )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Register ``voicebot users ...``."""
    app.add_typer(users_app, name="users")
