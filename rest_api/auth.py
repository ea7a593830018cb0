"""Bearer-token authentication and role checks.

Writes need a token of the right role (:func:`require_role`); reads need a token of any role
(:func:`require_reader`) unless the instance sets ``public_read``. Missing token → 401 with
``WWW-Authenticate: Bearer``; unknown or revoked → 401 (also on a public instance: a bad
credential is never silently ignored); a token whose role or instrument list does not allow the
action → 403. A token limited to some instruments reads only those instruments' runs. Tokens are
never logged.

A bearer credential shaped like a JWT is an OAuth2 access token
(:mod:`autoreduce.access_tokens`): its signature, expiry, audience and issuer are checked, then
its client's row, so that revoking a client refuses its tokens at once. Any failure is 401 with
``WWW-Authenticate: Bearer error="invalid_token"``. The caller is ``client:<name>``, with the
role and instruments of the client's row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from autoreduce.access_tokens import InvalidAccessToken, looks_like_jwt
from autoreduce.audit import Actor
from autoreduce.db.models import ReductionRun
from autoreduce.jobs import submitted_job
from autoreduce.oauth_clients import live_client
from autoreduce.tokens import verify_token
from rest_api.dependencies import ApiState, StateDep

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token (`autoreduce token create`) or an OAuth2 access token "
    "(`POST /api/v1/oauth/token`).",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}  # RFC 6750 §3.1


@dataclass(frozen=True)
class Caller:
    """Who sent a write request: the token's name, role and instruments (empty = any)."""

    name: str
    role: str
    instruments: tuple[str, ...]
    address: str = ""  # the client's address, for the audit trail

    @property
    def actor(self) -> Actor:
        """Who this caller is in the audit trail."""
        return Actor(self.name, self.role, self.address)

    def may_read(self, instrument: str) -> bool:
        """True if this caller may read ``instrument``'s runs and outputs."""
        return not self.instruments or instrument in self.instruments

    def may_read_run(self, run: ReductionRun) -> bool:
        """True if this caller may read ``run``: its instrument, or a job this caller submitted."""
        return self.may_read(run.instrument) or submitted_job(self.name, run)

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


ANONYMOUS = Caller("anonymous", "public", ())
"""The caller of a read without a token on an instance with ``public_read``."""


def _verified(
    state: ApiState, request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Caller | None:
    """The token's caller; None without a token; 401 for an unknown or revoked one."""
    if credentials is None or not credentials.credentials:
        return None
    address = request.client.host if request.client else ""
    if looks_like_jwt(credentials.credentials):
        return _client_caller(state, credentials.credentials, address)
    token = verify_token(state.database, credentials.credentials)
    if token is None:
        raise HTTPException(
            status_code=401, detail="the token is unknown or revoked", headers=_CHALLENGE
        )
    return Caller(token.name, token.role, tuple(token.instruments or ()), address)


def _client_caller(state: ApiState, access_token: str, address: str) -> Caller:
    """The caller of an OAuth2 access token, from its client's row; 401 if it is not valid."""
    try:
        claims = state.access_tokens.verify(access_token)
    except InvalidAccessToken as error:
        raise HTTPException(status_code=401, detail=str(error), headers=_INVALID_TOKEN) from None
    with state.database.read_session() as session:
        client = live_client(session, claims.client_id)
        if client is None:
            raise HTTPException(
                status_code=401,
                detail="the client of this access token is revoked or unknown",
                headers=_INVALID_TOKEN,
            )
        return Caller(f"client:{client.name}", client.role, tuple(client.instruments), address)


def _missing_token() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="this request needs a bearer token (Authorization: Bearer <token>)",
        headers=_CHALLENGE,
    )


def require_role(*roles: str) -> Callable[..., Caller]:
    """A dependency that authenticates the caller and checks its role is one of ``roles``."""

    def authenticate(
        state: StateDep,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Caller:
        caller = _verified(state, request, credentials)
        if caller is None:
            raise _missing_token()
        if caller.role not in roles:
            raise HTTPException(
                status_code=403,
                detail=f"token {caller.name!r} has role {caller.role!r}; "
                f"this request needs {' or '.join(roles)}",
            )
        return caller

    return authenticate


def require_reader(
    state: StateDep,
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> Caller:
    """A dependency for reads: any valid token, the web UI's signed-in user, or nobody when
    the instance is public."""
    caller = _verified(state, request, credentials)
    if caller is not None:
        return caller
    from rest_api.web.session import session_user  # the web UI's sign-in reads the API too

    caller = session_user(request)
    if caller is not None:
        return caller
    if state.settings.public_read:
        return ANONYMOUS
    raise _missing_token()


ReaderDep = Annotated[Caller, Depends(require_reader)]
