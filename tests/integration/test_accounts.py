"""Local accounts: the store (argon2 hashes on SQLite and MariaDB) and ``autoreduce user``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select, update

from autoreduce.accounts import (
    HASHER,
    create_account,
    disable_account,
    list_accounts,
    set_password,
    verify_password,
)
from autoreduce.audit import Actor
from autoreduce.cli import main
from autoreduce.db import Database
from autoreduce.db.models import AuditEvent, UserAccount

PASSWORD = "correct horse battery"
ADMIN = Actor("cli:tester", "operator", "host")


def stored(database: Database, username: str) -> UserAccount:
    with database.read_session() as session:
        row = session.scalar(select(UserAccount).where(UserAccount.username == username))
        assert row is not None
        session.expunge(row)
        return row


def events(database: Database) -> list[AuditEvent]:
    with database.read_session() as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        session.expunge_all()
        return rows


def test_an_account_stores_an_argon2id_hash_and_never_the_password(database: Database) -> None:
    create_account(database, "ada", PASSWORD, "scientist", ["GEM"], display_name="Ada L")

    row = stored(database, "ada")
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in repr(
        [row.username, row.password_hash, row.role, row.instruments, row.display_name]
    )
    assert (row.role, row.instruments, row.display_name) == ("scientist", ["GEM"], "Ada L")


def test_the_right_password_signs_in_and_a_wrong_one_does_not(database: Database) -> None:
    create_account(database, "ada", PASSWORD, "scientist", ["GEM"])

    account = verify_password(database, "ada", PASSWORD)
    assert account is not None and account.instruments == ("GEM",)
    assert verify_password(database, "ada", PASSWORD + "!") is None
    assert verify_password(database, "nobody", PASSWORD) is None
    assert verify_password(database, "ada", "") is None


def test_usernames_are_kept_in_lower_case_and_match_in_any_case(database: Database) -> None:
    create_account(database, "Ada.Lovelace", PASSWORD, "admin")

    assert [a.username for a in list_accounts(database)] == ["ada.lovelace"]
    assert verify_password(database, "ADA.LOVELACE", PASSWORD) is not None
    with pytest.raises(ValueError, match="already exists"):
        create_account(database, "ada.lovelace", PASSWORD, "admin")


@pytest.mark.parametrize(
    ("username", "password", "role", "instruments", "reason"),
    [
        ("ada", "short", "admin", [], "at least 8 characters"),
        ("ada", PASSWORD, "detector", [], "unknown role"),
        ("ada lovelace", PASSWORD, "admin", [], "a username is"),
        ("", PASSWORD, "admin", [], "a username is"),
        ("ada", PASSWORD, "scientist", ["gem"], "instrument name"),
        ("ada", "x" * 1025, "admin", [], "at most 1024"),
    ],
)
def test_a_bad_account_is_refused_with_its_reason(
    database: Database,
    username: str,
    password: str,
    role: str,
    instruments: list[str],
    reason: str,
) -> None:
    with pytest.raises(ValueError, match=reason):
        create_account(database, username, password, role, instruments)
    assert list_accounts(database) == []


def test_a_disabled_account_cannot_sign_in(database: Database) -> None:
    create_account(database, "ada", PASSWORD, "admin")

    assert disable_account(database, "ada") is True
    assert verify_password(database, "ada", PASSWORD) is None
    assert disable_account(database, "ada") is False
    assert list_accounts(database)[0].is_disabled


def test_a_new_password_replaces_the_old_one(database: Database) -> None:
    create_account(database, "ada", PASSWORD, "admin")

    assert set_password(database, "ada", "a new passphrase") is True
    assert verify_password(database, "ada", PASSWORD) is None
    assert verify_password(database, "ada", "a new passphrase") is not None
    assert set_password(database, "nobody", "a new passphrase") is False


def test_a_hash_made_with_older_parameters_is_replaced_at_the_next_sign_in(
    database: Database,
) -> None:
    create_account(database, "ada", PASSWORD, "admin")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with database.session() as session:
        session.execute(update(UserAccount).values(password_hash=weak))

    assert verify_password(database, "ada", PASSWORD) is not None

    renewed = stored(database, "ada").password_hash
    assert renewed != weak and not HASHER.check_needs_rehash(renewed)
    assert verify_password(database, "ada", PASSWORD) is not None


def test_each_change_is_an_audit_event_without_the_password(database: Database) -> None:
    create_account(database, "ada", PASSWORD, "scientist", ["GEM"], actor=ADMIN)
    set_password(database, "ada", "a new passphrase", actor=ADMIN)
    disable_account(database, "ada", actor=ADMIN)

    recorded = [e for e in events(database) if e.action.startswith("user.")]
    assert [(e.action, e.target, e.actor) for e in recorded] == [
        ("user.create", "user ada", "cli:tester"),
        ("user.passwd", "user ada", "cli:tester"),
        ("user.disable", "user ada", "cli:tester"),
    ]
    assert recorded[0].details == {"role": "scientist", "instruments": ["GEM"]}
    assert "passphrase" not in repr([e.details for e in recorded])
    assert "horse" not in repr([e.details for e in recorded])


# --- the command line ----------------------------------------------------------------------

AUTOREDUCE = Path(sys.executable).with_name("autoreduce")


def autoreduce(
    *args: str, cwd: Path, database_url: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREDUCE_")}
    return subprocess.run(
        [str(AUTOREDUCE), *args],
        cwd=cwd,
        env={**clean, "AUTOREDUCE_DATABASE_URL": database_url},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_user_create_list_passwd_and_disable_at_the_command_line(
    tmp_path: Path, database_url: str
) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return autoreduce(*args, cwd=tmp_path, database_url=database_url, stdin=stdin)

    created = run(
        *("user", "create", "Ada", "--role", "scientist", "--instrument", "GEM"),
        *("--display-name", "Ada Lovelace", "--password-stdin"),
        stdin=PASSWORD + "\n",
    )
    changed = run("user", "passwd", "ada", "--password-stdin", stdin="a new passphrase\n")
    disabled = run("user", "disable", "ada")
    listed = run("user", "list")

    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created ada (scientist)"
    assert changed.stdout.strip() == "changed the password of ada"
    assert disabled.stdout.strip() == "disabled ada"
    fields = listed.stdout.strip().split("\t")
    assert fields[:4] == ["ada", "scientist", "GEM", "Ada Lovelace"]
    assert fields[-1].startswith("disabled ")
    assert listed.stderr.strip() == "1 account(s)"
    everything = "".join(p.stdout + p.stderr for p in (created, changed, disabled, listed))
    assert PASSWORD not in everything and "passphrase" not in everything
    database = Database(database_url)
    try:
        assert [e.action for e in events(database)] == [
            "user.create",
            "user.passwd",
            "user.disable",
        ]
        assert all(e.actor.startswith("cli:") for e in events(database))
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("user", "create", "ada", "--role", "admin", "--password-stdin"), "short\n", "at least 8"),
        (("user", "create", "a b", "--role", "admin", "--password-stdin"), PASSWORD, "a username"),
        (("user", "disable", "nobody"), "", "no enabled account named 'nobody'"),
        (("user", "passwd", "nobody", "--password-stdin"), PASSWORD, "no account named 'nobody'"),
    ],
)
def test_a_refused_user_command_is_one_line_and_exit_1(
    tmp_path: Path, args: tuple[str, ...], stdin: str, message: str
) -> None:
    result = autoreduce(*args, cwd=tmp_path, database_url="", stdin=stdin)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_password_prompt_asks_twice_and_never_echoes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOREDUCE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    mismatch = runner.invoke(
        main, ["user", "create", "ada", "--role", "admin"], input=f"{PASSWORD}\nother one\n"
    )
    created = runner.invoke(
        main, ["user", "create", "ada", "--role", "admin"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )

    assert mismatch.exit_code != 0 and "Repeat the password" in mismatch.output
    assert created.exit_code == 0, created.output
    assert "Password" in created.output and "Repeat the password" in created.output
    assert PASSWORD not in mismatch.output + created.output
    database = Database(f"sqlite:///{tmp_path / 'data' / 'autoreduce.db'}")
    try:
        assert verify_password(database, "ada", PASSWORD) is not None
    finally:
        database.dispose()
