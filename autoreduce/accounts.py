"""Local accounts for the web UI: a username, a role, instruments, and an argon2 password hash.

For sites without a directory (LDAP). Passwords are hashed with argon2id (``argon2-cffi``'s
:class:`~argon2.PasswordHasher`, its default parameters); only the hash is stored, and a hash made
with older parameters is replaced at the next successful sign-in. Usernames are case-insensitive
(kept in lower case). Roles: ``admin`` (everything) and ``scientist`` (the instruments listed; an
empty list reads every instrument and may write none, as a scientist token). A disabled account
cannot sign in; it keeps its name, so a name is never reused for someone else.

Every change is recorded in the audit trail when an ``actor`` is given; a password never is.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import UserAccount, utcnow
from autoreduce.tokens import checked_instruments

ACCOUNT_ROLES = ("admin", "scientist")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
"""Longer passwords are refused before hashing (bounds the work one request can cause)."""
MAX_DISPLAY_NAME_CHARS = 200

HASHER = PasswordHasher()
"""argon2id with argon2-cffi's default parameters (RFC 9106's low-memory profile)."""

_dummy_hash: str | None = None
_dummy_lock = threading.Lock()


@dataclass(frozen=True)
class AccountInfo:
    """What may be shown about an account: never its password hash."""

    username: str
    role: str
    instruments: tuple[str, ...]
    display_name: str
    created_at: datetime
    disabled_at: datetime | None

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None


def _info(row: UserAccount) -> AccountInfo:
    return AccountInfo(
        username=row.username,
        role=row.role,
        instruments=tuple(row.instruments or ()),
        display_name=row.display_name,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def normal_username(username: str) -> str:
    """``username`` as stored (lower case, trimmed); :class:`ValueError` if it cannot be one."""
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise ValueError(
            "a username is 1 to 100 characters: letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    """``password`` if it may be set; :class:`ValueError` saying why not otherwise."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    return password


def create_account(
    database: Database,
    username: str,
    password: str,
    role: str,
    instruments: Iterable[str] = (),
    *,
    display_name: str = "",
    actor: Actor | None = None,
) -> AccountInfo:
    """Create a local account; :class:`ValueError` for a bad or taken name, role or password."""
    name = normal_username(username)
    if role not in ACCOUNT_ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ACCOUNT_ROLES)}")
    allowed = checked_instruments(instruments)
    display = display_name.strip()
    if len(display) > MAX_DISPLAY_NAME_CHARS:
        raise ValueError(f"a display name has at most {MAX_DISPLAY_NAME_CHARS} characters")
    password_hash = HASHER.hash(check_password(password))
    try:
        with database.session() as session:
            if session.scalar(select(UserAccount.id).where(UserAccount.username == name)):
                raise ValueError(f"an account named {name!r} already exists")
            row = UserAccount(
                username=name,
                password_hash=password_hash,
                role=role,
                instruments=allowed,
                display_name=display,
            )
            session.add(row)
            if actor is not None:
                details = {"role": role, "instruments": allowed}
                record_event(session, actor, "user.create", f"user {name}", details=details)
            session.flush()
            return _info(row)
    except IntegrityError:  # created concurrently under the same name
        raise ValueError(f"an account named {name!r} already exists") from None


def set_password(
    database: Database, username: str, password: str, *, actor: Actor | None = None
) -> bool:
    """Give ``username`` a new password; False if there is no such account."""
    password_hash = HASHER.hash(check_password(password))
    name = username.strip().lower()
    with database.session() as session:
        row = session.scalar(select(UserAccount).where(UserAccount.username == name))
        if row is None:
            return False
        row.password_hash = password_hash
        row.password_changed_at = utcnow()
        if actor is not None:
            record_event(session, actor, "user.passwd", f"user {name}")
        return True


def disable_account(database: Database, username: str, *, actor: Actor | None = None) -> bool:
    """Disable ``username``; False if there is no enabled account of that name."""
    name = username.strip().lower()
    with database.session() as session:
        row = session.scalar(
            select(UserAccount).where(
                UserAccount.username == name, UserAccount.disabled_at.is_(None)
            )
        )
        if row is None:
            return False
        row.disabled_at = utcnow()
        if actor is not None:
            record_event(session, actor, "user.disable", f"user {name}")
        return True


def list_accounts(database: Database) -> list[AccountInfo]:
    """Every account, disabled ones included, by username."""
    with database.read_session() as session:
        rows = session.scalars(select(UserAccount).order_by(UserAccount.username)).all()
        return [_info(row) for row in rows]


def _spend_a_verification(password: str) -> None:
    """Verify ``password`` against a throwaway hash: an unknown user costs what a known one
    does, so the answer's timing does not say which usernames exist."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = HASHER.hash(secrets.token_urlsafe(24))
        dummy = _dummy_hash
    with contextlib.suppress(VerificationError):
        HASHER.verify(dummy, password)


def verify_password(database: Database, username: str, password: str) -> AccountInfo | None:
    """The enabled account ``username`` if ``password`` is its password, else None.

    An unknown, disabled or malformed username costs one argon2 verification too. On success a
    hash made with other parameters than :data:`HASHER`'s is replaced.
    """
    if not password or len(password) > MAX_PASSWORD_CHARS:
        return None
    name = username.strip().lower()
    with database.read_session() as session:
        row = session.scalar(select(UserAccount).where(UserAccount.username == name))
        account = None if row is None else (_info(row), row.password_hash)
    if account is None or account[0].is_disabled:
        _spend_a_verification(password)
        return None
    info, stored = account
    try:
        HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if HASHER.check_needs_rehash(stored):
        _rehash(database, name, stored, HASHER.hash(password))
    return info


def _rehash(database: Database, username: str, old_hash: str, new_hash: str) -> None:
    """Store ``new_hash`` unless the password changed meanwhile (the old hash is gone)."""
    with database.session() as session:
        row = session.scalar(select(UserAccount).where(UserAccount.username == username))
        if row is not None and row.password_hash == old_hash:
            row.password_hash = new_hash


def session_still_valid(database: Database, username: str, signed_in_at: datetime) -> bool:
    """True if ``username`` is enabled and its password has not changed since ``signed_in_at``."""
    with database.read_session() as session:
        row = session.execute(
            select(UserAccount.disabled_at, UserAccount.password_changed_at).where(
                UserAccount.username == username
            )
        ).one_or_none()
    return row is not None and row.disabled_at is None and row.password_changed_at <= signed_in_at
