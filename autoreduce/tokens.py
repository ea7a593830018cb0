"""API bearer tokens: created once, shown once, stored only as their SHA-256.

A token reads ``ar_<43 url-safe characters>``; the prefix makes a leaked token easy to recognise
(secret scanners, logs). Roles: ``admin`` (everything), ``scientist`` (re-runs of the instruments
the token lists), ``detector`` (submits detected runs). A non-empty ``instruments`` list restricts
a token to those instruments. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import ApiToken, utcnow
from autoreduce.redaction import TOKEN_PREFIX
from autoreduce.settings import INSTRUMENT_NAME

ROLES = ("admin", "scientist", "detector")
MAX_TOKEN_LENGTH = 200
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token, never its hash."""

    name: str
    role: str
    instruments: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored in place of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def checked_instruments(instruments: Iterable[str]) -> list[str]:
    """``instruments`` without repeats; ValueError naming the first malformed name."""
    names = list(dict.fromkeys(instruments))
    for name in names:
        if not isinstance(name, str) or not INSTRUMENT_NAME.match(name):
            raise ValueError(
                f"instrument name {name!r} must be upper case letters, digits or _ "
                "(at most 32 characters)"
            )
    return names


def create_token(
    database: Database,
    name: str,
    role: str,
    instruments: Iterable[str] = (),
    *,
    actor: Actor | None = None,
) -> str:
    """Create a token called ``name`` with ``role``; return the token (the only time it is seen).

    With ``actor``, the creation is recorded in the audit trail (its name, never its value).

    Raises :class:`ValueError` for an unknown role, a bad or duplicate name (revoked tokens keep
    their name) or a malformed instrument name.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a token name must be 1 to {MAX_NAME_LENGTH} characters")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    allowed = checked_instruments(instruments)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with database.session() as session:
            if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
                raise ValueError(f"a token named {name!r} already exists")
            session.add(
                ApiToken(name=name, role=role, token_hash=hash_token(token), instruments=allowed)
            )
            if actor is not None:
                details = {"role": role, "instruments": allowed}
                record_event(session, actor, "token.create", f"token {name}", details=details)
    except IntegrityError:  # created concurrently under the same name
        raise ValueError(f"a token named {name!r} already exists") from None
    return token


def verify_token(session_or_database: Session | Database, token: str) -> ApiToken | None:
    """The live (not revoked) token row matching ``token``, or None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    query = select(ApiToken).where(
        ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
    )
    if isinstance(session_or_database, Session):
        return session_or_database.scalar(query)
    with session_or_database.read_session() as session:
        return session.scalar(query)


def revoke_token(database: Database, name: str, *, actor: Actor | None = None) -> bool:
    """Revoke the token called ``name``; False if there is no live token of that name.

    With ``actor``, the revocation is recorded in the audit trail.
    """
    with database.session() as session:
        result = session.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        revoked = bool(result.rowcount)  # type: ignore[attr-defined]
        if revoked and actor is not None:
            record_event(session, actor, "token.revoke", f"token {name}")
        return revoked


def list_tokens(database: Database) -> list[TokenInfo]:
    """Every token, revoked ones included, in creation order."""
    with database.read_session() as session:
        rows = session.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        return [
            TokenInfo(
                name=row.name,
                role=row.role,
                instruments=tuple(row.instruments or ()),
                created_at=row.created_at,
                revoked_at=row.revoked_at,
            )
            for row in rows
        ]
