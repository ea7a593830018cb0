"""Bearer-token authentication and role checks for the write endpoints.

Missing token → 401 with ``WWW-Authenticate: Bearer``; unknown or revoked → 401; a token whose
role or instrument list does not allow the action → 403. Tokens are never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from autoreduce.tokens import verify_token
from rest_api.dependencies import StateDep

_bearer = HTTPBearer(auto_error=False, description="An API token: `autoreduce token create`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """Who sent a write request: the token's name, role and instruments (empty = any)."""

    name: str
    role: str
    instruments: tuple[str, ...]

    def check_instrument(self, instrument: str, *, must_list: bool = False) -> None:
        """403 unless this token may act on ``instrument``.

        A non-empty instrument list restricts the token; with ``must_list`` (scientists) an
        empty list allows nothing.
        """
        if self.instruments and instrument not in self.instruments:
            raise HTTPException(
                status_code=403,
                detail=f"token {self.name!r} may not act on instrument {instrument!r}",
            )
        if must_list and not self.instruments:
            raise HTTPException(
                status_code=403,
                detail=f"token {self.name!r} lists no instruments; a {self.role} token must",
            )


def require_role(*roles: str) -> Callable[..., Caller]:
    """A dependency that authenticates the caller and checks its role is one of ``roles``."""

    def authenticate(
        state: StateDep,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Caller:
        if credentials is None or not credentials.credentials:
            raise HTTPException(
                status_code=401,
                detail="this request needs a bearer token (Authorization: Bearer <token>)",
                headers=_CHALLENGE,
            )
        token = verify_token(state.database, credentials.credentials)
        if token is None:
            raise HTTPException(
                status_code=401, detail="the token is unknown or revoked", headers=_CHALLENGE
            )
        if token.role not in roles:
            raise HTTPException(
                status_code=403,
                detail=f"token {token.name!r} has role {token.role!r}; "
                f"this request needs {' or '.join(roles)}",
            )
        return Caller(token.name, token.role, tuple(token.instruments or ()))

    return authenticate
