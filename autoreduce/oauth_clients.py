"""OAuth2 clients: machines that trade a client id and secret for short-lived access tokens.

A client is created once (``autoreduce client create``), its secret shown once and stored only as
its SHA-256, exactly like an API token (:func:`autoreduce.tokens.hash_token`). The secret is 256
random bits, so a fast hash is enough: nobody can guess a preimage, and a slow password hash
(argon2, bcrypt) would only spend CPU on every token request for no gain. A client has a role and
optionally a list of instruments, as a token does; revoking it refuses its next token request and
every access token it already holds (the API checks the row on each request).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autoreduce.audit import Actor, record_event
from autoreduce.db import Database
from autoreduce.db.models import OAuthClient, utcnow
from autoreduce.tokens import MAX_NAME_LENGTH, ROLES, checked_instruments, hash_token

CLIENT_ID_PREFIX = "arc_"
SECRET_PREFIX = "ars_"
MAX_CREDENTIAL_LENGTH = 200


@dataclass(frozen=True)
class ClientInfo:
    """What may be shown about a client: never its secret, never its hash."""

    client_id: str
    name: str
    role: str
    instruments: tuple[str, ...]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class NewClient:
    """A client just created: its id and its secret (the only time the secret is seen)."""

    client_id: str
    client_secret: str


def _info(row: OAuthClient) -> ClientInfo:
    return ClientInfo(
        client_id=row.client_id,
        name=row.name,
        role=row.role,
        instruments=tuple(row.instruments or ()),
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


def create_client(
    database: Database, name: str, role: str, instruments: Iterable[str] = (), *, actor: Actor
) -> NewClient:
    """Create a client called ``name`` with ``role``; the creation is audited (never the secret).

    Raises :class:`ValueError` for an unknown role, a bad or duplicate name (revoked clients keep
    their name) or a malformed instrument name.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a client name must be 1 to {MAX_NAME_LENGTH} characters")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    allowed = checked_instruments(instruments)
    client = NewClient(
        client_id=CLIENT_ID_PREFIX + secrets.token_hex(12),
        client_secret=SECRET_PREFIX + secrets.token_urlsafe(32),
    )
    try:
        with database.session() as session:
            if session.scalar(select(OAuthClient.id).where(OAuthClient.name == name)) is not None:
                raise ValueError(f"a client named {name!r} already exists")
            session.add(
                OAuthClient(
                    client_id=client.client_id,
                    secret_hash=hash_token(client.client_secret),
                    name=name,
                    role=role,
                    instruments=allowed,
                    created_by=actor.name[:100],
                )
            )
            details = {"client_id": client.client_id, "role": role, "instruments": allowed}
            record_event(session, actor, "client.create", f"client {name}", details=details)
    except IntegrityError:  # created concurrently under the same name
        raise ValueError(f"a client named {name!r} already exists") from None
    return client


def authenticate_client(
    database: Database, client_id: str, client_secret: str
) -> ClientInfo | None:
    """The live client whose id and secret these are, or None (unknown, revoked, wrong secret)."""
    if not (0 < len(client_id) <= MAX_CREDENTIAL_LENGTH):
        return None
    if not (0 < len(client_secret) <= MAX_CREDENTIAL_LENGTH):
        return None
    with database.read_session() as session:
        row = live_client(session, client_id)
        if row is None:
            return None
        if not hmac.compare_digest(row.secret_hash, hash_token(client_secret)):
            return None
        return _info(row)


def live_client(session: Session, client_id: str) -> OAuthClient | None:
    """The client row with ``client_id`` unless it is revoked (or there is none)."""
    return session.scalar(
        select(OAuthClient).where(
            OAuthClient.client_id == client_id, OAuthClient.revoked_at.is_(None)
        )
    )


def revoke_client(database: Database, client_id: str, *, actor: Actor) -> bool:
    """Revoke the client ``client_id`` (audited); False if there is no live client with that id."""
    with database.session() as session:
        row = live_client(session, client_id)
        if row is None:
            return False
        result = session.execute(
            update(OAuthClient)
            .where(OAuthClient.id == row.id, OAuthClient.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        revoked = bool(result.rowcount)  # type: ignore[attr-defined]
        if revoked:
            details = {"client_id": client_id}
            record_event(session, actor, "client.revoke", f"client {row.name}", details=details)
        return revoked


def list_clients(database: Database) -> list[ClientInfo]:
    """Every client, revoked ones included, in creation order."""
    with database.read_session() as session:
        rows = session.scalars(select(OAuthClient).order_by(OAuthClient.id)).all()
        return [_info(row) for row in rows]
