"""``autoreduce client create | list | revoke`` as an operator runs them, in an empty directory."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from autoreduce.db import Database
from autoreduce.db.models import AuditEvent, OAuthClient
from autoreduce.oauth_clients import authenticate_client
from tests.integration.test_cli import autoreduce


def created_credentials(stdout: str) -> tuple[str, str]:
    lines = dict(line.split(": ", 1) for line in stdout.strip().splitlines())
    assert set(lines) == {"client_id", "client_secret"}, stdout
    return lines["client_id"], lines["client_secret"]


def data_database(cwd: Path) -> Database:
    return Database(f"sqlite:///{cwd / 'autoreduce-data' / 'autoreduce.db'}")


def test_client_create_prints_the_id_and_secret_once_and_stores_only_a_hash(
    tmp_path: Path,
) -> None:
    result = autoreduce(
        "client", "create", "--name", "orchestrator", "--role", "scientist",
        "--instrument", "GEM", "--instrument", "WISH", cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    client_id, secret = created_credentials(result.stdout)
    assert "shown only this once" in result.stderr
    database = data_database(tmp_path)
    try:
        with database.read_session() as session:
            row = session.scalars(select(OAuthClient)).one()
            event = session.scalars(select(AuditEvent)).one()
            assert (row.client_id, row.name, row.role, row.instruments) == (
                client_id,
                "orchestrator",
                "scientist",
                ["GEM", "WISH"],
            )
            assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
            assert row.created_by.startswith("cli:")
            assert (event.action, event.target) == ("client.create", "client orchestrator")
            assert secret not in str(event.details)
        found = authenticate_client(database, client_id, secret)
        assert found is not None and found.name == "orchestrator"
        assert authenticate_client(database, client_id, secret + "x") is None
    finally:
        database.dispose()


def test_client_list_shows_each_client_without_its_secret(tmp_path: Path) -> None:
    created = autoreduce("client", "create", "--name", "ci", "--role", "detector", cwd=tmp_path)
    client_id, secret = created_credentials(created.stdout)

    listed = autoreduce("client", "list", cwd=tmp_path)

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"{client_id}\tci\tdetector\t*\t")
    assert secret not in listed.stdout and listed.stderr.strip() == "1 client(s)"


def test_client_revoke_revokes_once_then_says_there_is_no_such_client(tmp_path: Path) -> None:
    created = autoreduce("client", "create", "--name", "ci", "--role", "admin", cwd=tmp_path)
    client_id, secret = created_credentials(created.stdout)

    first = autoreduce("client", "revoke", client_id, cwd=tmp_path)
    second = autoreduce("client", "revoke", client_id, cwd=tmp_path)
    listed = autoreduce("client", "list", cwd=tmp_path)

    assert (first.returncode, first.stdout.strip()) == (0, f"revoked {client_id}")
    assert second.returncode == 1
    assert second.stderr.strip() == f"Error: no active client with id {client_id!r}"
    assert "\trevoked " in listed.stdout
    database = data_database(tmp_path)
    try:
        assert authenticate_client(database, client_id, secret) is None
    finally:
        database.dispose()


def test_client_create_refuses_a_bad_instrument_or_a_taken_name_in_one_line(
    tmp_path: Path,
) -> None:
    bad = autoreduce(
        "client", "create", "--name", "x", "--role", "admin", "--instrument", "gem/..",
        cwd=tmp_path,
    )  # fmt: skip
    autoreduce("client", "create", "--name", "taken", "--role", "admin", cwd=tmp_path)
    taken = autoreduce("client", "create", "--name", "taken", "--role", "admin", cwd=tmp_path)

    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "instrument name 'gem/..'" in bad.stderr and bad.stdout == ""
    assert taken.returncode == 1
    assert taken.stderr.strip() == "Error: a client named 'taken' already exists"
