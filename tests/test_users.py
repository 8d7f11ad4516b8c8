"""Staff accounts: ``voicebot users add|list`` on both databases, argon2id hashes, and the refusals."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from database import Database, empty_database  # noqa: F401 (fixture)
from typer.testing import CliRunner

from voicebot.cli import app
from voicebot.db.repository import Repository
from voicebot.settings import get_settings
from voicebot.staff.accounts import AccountError, hash_password, verify_password
from voicebot.staff.phones import StaffSettingError, check_groups, check_phone_uri, dial_uri

PASSWORD = "Rathaus-Musterstadt-2026"
REPO_ROOT = Path(__file__).resolve().parents[1]


GROUPS = '[{"name": "buergerbuero", "staff_uri": "sip:bb@127.0.0.1"}, {"name": "Standesamt", "staff_uri": "sip:sa@127.0.0.1"}]'


@pytest.fixture
def runner(empty_database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:  # noqa: F811
    monkeypatch.setenv("VOICEBOT_DATABASE_URL", empty_database.url)
    monkeypatch.setenv("VOICEBOT_HANDOFF__GROUPS", GROUPS)
    get_settings.cache_clear()  # the CLI reads the process settings once
    yield CliRunner()
    get_settings.cache_clear()


def test_add_and_list_accounts_with_argon2id_hashes(
    runner: CliRunner,
    empty_database: Database,  # noqa: F811
) -> None:
    # The database has no schema yet: the first command brings it up to date.
    added = runner.invoke(
        app,
        [
            "users",
            "add",
            "anna",
            "--role",
            "supervisor",
            "--display-name",
            "Anna Beispiel",
            "--password-stdin",
        ],
        input=f"{PASSWORD}\n",
    )
    assert added.exit_code == 0, added.output
    assert (
        "Benutzer anna angelegt: Rolle supervisor, Telefon kein Telefon, Gruppen alle Gruppen" in added.output
    )
    # Without --password-stdin: a hidden prompt, asked twice.
    prompted = runner.invoke(app, ["users", "add", "bernd"], input=f"{PASSWORD}x\n{PASSWORD}x\n")
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output  # hidden input is not echoed

    listed = runner.invoke(app, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    lines = [line.split("\t") for line in listed.output.splitlines() if "\t" in line]
    assert lines == [
        ["anna", "supervisor", "away", "kein Telefon", "alle Gruppen", "Anna Beispiel"],
        ["bernd", "staff", "away", "kein Telefon", "alle Gruppen"],
    ]

    engine = empty_database.engine()
    try:
        anna = Repository(engine).staff_user("anna")
    finally:
        engine.dispose()
    assert anna is not None and anna.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in anna.password_hash
    assert verify_password(anna.password_hash, PASSWORD) == (True, False)
    assert verify_password(anna.password_hash, PASSWORD + "!")[0] is False


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "add", "carla", "--password-stdin"], "kurz\n", "Passwort zu kurz"),
        (["users", "add", "Carla!", "--password-stdin"], f"{PASSWORD}\n", "Benutzername"),
        (["users", "add", "carla", "--role", "chef", "--password-stdin"], f"{PASSWORD}\n", "Rolle 'chef'"),
        (["users", "add", "carla"], f"{PASSWORD}\nanders-als-vorher-1\n" * 3, "Aborted"),  # prompts disagree
    ],
)
def test_bad_accounts_are_refused_with_one_line(
    runner: CliRunner, args: list[str], stdin: str, message: str
) -> None:
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 1 and message in result.output, result.output
    assert runner.invoke(app, ["users", "list"]).output.startswith("keine Benutzer")


def test_a_taken_name_is_refused(runner: CliRunner) -> None:
    args = ["users", "add", "anna", "--password-stdin"]
    assert runner.invoke(app, args, input=f"{PASSWORD}\n").exit_code == 0
    again = runner.invoke(app, args, input=f"{PASSWORD}\n")
    assert again.exit_code == 1 and "gibt es schon" in again.output


def test_the_password_never_appears_in_argv(tmp_path: Path) -> None:
    """The real process: the password goes in on stdin, there is no option that takes it as an argument."""
    env = {
        "VOICEBOT_PATHS__DATABASE_FILE": str(tmp_path / "v.db"),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "users", "add", "dora", "--password", PASSWORD],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0 and "No such option" in result.stderr
    done = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "users", "add", "dora", "--password-stdin"],
        input=f"{PASSWORD}\n", env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_hashing_rules() -> None:
    with pytest.raises(AccountError):
        hash_password("x" * 11)
    with pytest.raises(AccountError):
        hash_password("x" * 1025)
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second  # salted
    assert verify_password("not a hash", PASSWORD) == (False, False)
    weak = "$argon2id$v=19$m=8192,t=1,p=1$" + first.rsplit("$", 2)[1] + "$" + first.rsplit("$", 1)[1]
    assert verify_password(weak, PASSWORD)[0] is False  # another cost gives another hash


def _listed(runner: CliRunner) -> list[list[str]]:
    listed = runner.invoke(app, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    return [line.split("\t") for line in listed.output.splitlines() if "\t" in line]


def test_phone_groups_role_and_lock_are_set_and_listed(
    runner: CliRunner,
    empty_database: Database,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    added = runner.invoke(
        app,
        ["users", "add", "anna", "--phone", "sip:anna@192.0.2.10:5062", "--groups", "BUERGERBUERO, standesamt",
         "--password-stdin"],
        input=f"{PASSWORD}\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "Telefon sip:anna@192.0.2.10:5062, Gruppen buergerbuero,Standesamt" in added.output
    refused = runner.invoke(
        app, ["users", "add", "bernd", "--groups", "steueramt", "--password-stdin"], input=f"{PASSWORD}\n"
    )
    assert refused.exit_code == 2 and "Gruppe 'steueramt' gibt es nicht" in refused.output, refused.output
    # Group names are stored as configured (the queue matches them exactly).
    assert _listed(runner) == [
        ["anna", "staff", "away", "sip:anna@192.0.2.10:5062", "buergerbuero,Standesamt"]
    ]
    changed = runner.invoke(
        app, ["users", "set", "anna", "--no-phone", "--all-groups", "--role", "admin", "--disable"]
    )
    assert changed.exit_code == 0, changed.output
    assert "Rolle admin, Telefon kein Telefon, Gruppen alle Gruppen, gesperrt" in changed.output
    assert _listed(runner) == [["anna", "admin", "away (gesperrt)", "kein Telefon", "alle Gruppen"]]
    # A tel: number needs the PBX the bot registers at; only the given fields change.
    monkeypatch.setenv("VOICEBOT_SIP__REGISTRAR", "sip:pbx.musterstadt.example:5080")
    get_settings.cache_clear()
    again = runner.invoke(app, ["users", "set", "anna", "--enable", "--phone", "tel:+49-30-1234567", "--groups",
                                "standesamt"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert _listed(runner) == [["anna", "admin", "away", "tel:+49-30-1234567", "Standesamt"]]
    engine = empty_database.engine()
    try:
        anna = Repository(engine).staff_user("anna")
    finally:
        engine.dispose()
    assert anna is not None and anna.groups == ["Standesamt"] and not anna.disabled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--phone", "sip:anna@host\r\nVia: x"], "ohne Leerzeichen, Zeilenumbrüche"),
        (["--phone", "sip:anna@host?Subject=x"], "keine Header"),
        (["--phone", "tel:+49301234"], "sip.registrar ist nicht eingestellt"),
        (["--groups", "buergerbuero,steueramt"], "Gruppe 'steueramt' gibt es nicht (eingerichtet: buergerbuero, Standesamt)"),
        (["--phone", "sip:a@h", "--no-phone"], "--phone and --no-phone exclude each other"),
        (["--role", "chef"], "Rolle 'chef'"),
        ([], "nothing to change"),
    ],
)  # fmt: skip
def test_bad_phone_groups_and_options_exit_2_with_one_line(
    runner: CliRunner, args: list[str], message: str
) -> None:
    assert (
        runner.invoke(app, ["users", "add", "anna", "--password-stdin"], input=f"{PASSWORD}\n").exit_code == 0
    )
    result = runner.invoke(app, ["users", "set", "anna", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _listed(runner) == [["anna", "staff", "away", "kein Telefon", "alle Gruppen"]]  # nothing changed
    missing = runner.invoke(app, ["users", "set", "niemand", "--all-groups"])
    assert missing.exit_code == 1 and "gibt es nicht" in missing.output


@pytest.mark.parametrize(
    "uri",
    ["sip:anna@192.0.2.10", "sip:201@pbx.musterstadt.de:5062;transport=tcp", "sips:anna@[2001:db8::1]:5061",
     "sip:pbx.example", "SIP:Anna@Host", "tel:+49301234567", "tel:030-123(4)"],
)  # fmt: skip
def test_phone_addresses_that_are_accepted(uri: str) -> None:
    assert check_phone_uri(f" {uri} ", registrar="pbx.example") == uri


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("anna@192.0.2.10", "beginnt mit sip:"), ("http://pbx/", "beginnt mit sip:"), ("sip:", "SIP-Adresse"),
        ("sip:anna@", "SIP-Adresse"), ("sip:an na@host", "ohne Leerzeichen"), ("sip:anna@ho\nst", "ohne Leerzeichen"),
        ("sip:a@host:0", "Port 0"), ("sip:a@host:65536", "Port 65536"), ("sip:a@-host", "SIP-Adresse"),
        ("sip:a@host;x=<y>", "SIP-Adresse"), ("sip:a;b@host", "SIP-Adresse"), ("sip:ä@host", "Sonderzeichen"),
        ("tel:12", "Rufnummer"), ("tel:+49abc", "Rufnummer"), ("tel:+49301234;phone-context=x", "Rufnummer"),
        ("sip:a@" + "h" * 260, "zu lang"),
    ],
)  # fmt: skip
def test_phone_addresses_that_are_refused(uri: str, message: str) -> None:
    with pytest.raises(StaffSettingError, match=re.escape(message)):
        check_phone_uri(uri, registrar="pbx.example")


def test_tel_numbers_are_dialled_at_the_registrar_and_groups_match_the_configuration() -> None:
    assert dial_uri("sip:anna@192.0.2.10", None) == "sip:anna@192.0.2.10"
    assert dial_uri("tel:+49-30-1234(5)", "pbx.example:5080") == "sip:+493012345@pbx.example:5080;user=phone"
    assert (
        dial_uri("tel:0301234", "sips:hotline@pbx.example;transport=tcp")
        == "sips:0301234@pbx.example;user=phone"
    )
    with pytest.raises(ValueError, match="registrar"):
        dial_uri("tel:0301234", None)
    assert check_groups(["standesamt", " Bürgerbüro", "STANDESAMT"], ["Bürgerbüro", "Standesamt"]) == [
        "Standesamt", "Bürgerbüro"
    ]  # fmt: skip
    with pytest.raises(StaffSettingError, match="mindestens eine Gruppe"):
        check_groups(["", " "], ["Bürgerbüro"])
    with pytest.raises(StaffSettingError, match=r"handoff\.groups ist leer"):
        check_groups(["Bürgerbüro"], [])
