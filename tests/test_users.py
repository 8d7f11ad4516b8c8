"""Staff accounts: ``voicebot users add|list`` on both databases, argon2id hashes, and the refusals."""

from __future__ import annotations

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

PASSWORD = "Rathaus-Musterstadt-2026"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runner(empty_database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:  # noqa: F811
    monkeypatch.setenv("VOICEBOT_DATABASE_URL", empty_database.url)
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
    assert "anna" in added.output and "supervisor" in added.output
    # Without --password-stdin: a hidden prompt, asked twice.
    prompted = runner.invoke(app, ["users", "add", "bernd"], input=f"{PASSWORD}x\n{PASSWORD}x\n")
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output  # hidden input is not echoed

    listed = runner.invoke(app, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    lines = [line.split("\t")[:3] for line in listed.output.splitlines() if "\t" in line]
    assert lines == [["anna", "supervisor", "away – Anna Beispiel"], ["bernd", "staff", "away"]]

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
