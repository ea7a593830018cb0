"""API tokens: stored hashed, roles checked, revocable (on SQLite and MariaDB)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from autoreduce.db import Database
from autoreduce.db.models import ApiToken
from autoreduce.tokens import create_token, list_tokens, revoke_token, verify_token


def test_only_the_sha256_of_a_token_is_stored(database: Database) -> None:
    token = create_token(database, "detector-1", "detector")

    with database.session() as session:
        row = session.scalars(select(ApiToken)).one()
    assert token.startswith("ar_")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.name)


def test_a_created_token_verifies_with_its_role_and_instruments(database: Database) -> None:
    token = create_token(database, "alice", "scientist", instruments=["GEM", "WISH"])

    found = verify_token(database, token)

    assert found is not None
    assert (found.name, found.role, found.instruments) == ("alice", "scientist", ["GEM", "WISH"])


def test_verify_accepts_a_session(database: Database) -> None:
    token = create_token(database, "ops", "admin")

    with database.session() as session:
        found = verify_token(session, token)

    assert found is not None and found.name == "ops"


@pytest.mark.parametrize("guess", ["", "ar_", "ar_nope", "x" * 5000])
def test_an_unknown_token_does_not_verify(database: Database, guess: str) -> None:
    create_token(database, "ops", "admin")

    assert verify_token(database, guess) is None


def test_an_unknown_role_is_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="unknown role 'operator'"):
        create_token(database, "x", "operator")


def test_a_malformed_instrument_is_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="instrument name 'gem'"):
        create_token(database, "x", "detector", instruments=["gem"])


def test_a_duplicate_name_is_refused(database: Database) -> None:
    create_token(database, "detector", "detector")

    with pytest.raises(ValueError, match="already exists"):
        create_token(database, "detector", "admin")


def test_a_revoked_token_no_longer_verifies(database: Database) -> None:
    token = create_token(database, "old", "detector")

    assert revoke_token(database, "old") is True
    assert verify_token(database, token) is None
    assert revoke_token(database, "old") is False


def test_revoking_an_unknown_name_reports_false(database: Database) -> None:
    assert revoke_token(database, "nobody") is False


def test_listing_shows_names_roles_and_revocation_but_no_secret(database: Database) -> None:
    create_token(database, "a", "admin")
    create_token(database, "b", "detector", instruments=["GEM"])
    revoke_token(database, "a")

    listed = list_tokens(database)

    assert [(t.name, t.role, t.instruments, t.is_revoked) for t in listed] == [
        ("a", "admin", (), True),
        ("b", "detector", ("GEM",), False),
    ]
    assert not hasattr(listed[0], "token_hash")
