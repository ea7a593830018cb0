"""The OAuth2 token endpoint: the client-credentials grant (RFC 6749 §4.4).

A client authenticates with HTTP Basic (its id and secret, each form-encoded, RFC 6749 §2.3.1)
or with ``client_id`` and ``client_secret`` in the form body — one of the two, never both — and
receives a signed access token (:mod:`autoreduce.access_tokens`) to send as
``Authorization: Bearer``. Errors here take OAuth's shape (§5.2), not RFC 9457's, because OAuth
client libraries parse that shape; no answer ever repeats a secret.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Annotated, Literal
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import FormData

from autoreduce.oauth_clients import ClientInfo, authenticate_client
from rest_api.dependencies import StateDep
from rest_api.problems import OWN_ERROR_SHAPE

logger = logging.getLogger("autoreduce.api")
router = APIRouter(tags=["oauth"])

GRANT_TYPE = "client_credentials"
PARAMETERS = ("grant_type", "scope", "client_id", "client_secret")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1
BASIC_CHALLENGE = 'Basic realm="autoreduce"'


class AccessTokenResponse(BaseModel):
    """A new access token (RFC 6749 §5.1)."""

    access_token: str = Field(description="Send it as `Authorization: Bearer <access_token>`.")
    token_type: Literal["Bearer"] = Field(description="Always `Bearer`.")
    expires_in: int = Field(description="Seconds the token stays valid.")
    scope: str = Field(description="The scope granted: the client's role.")


class OAuthError(BaseModel):
    """An OAuth 2.0 error (RFC 6749 §5.2)."""

    error: Literal[
        "invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope"
    ] = Field(description="The OAuth error code.")
    error_description: str = Field(description="What was wrong, in one line a person can act on.")


class OAuthFailure(Exception):
    """A refused token request: the OAuth error code, a description and the HTTP status."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = BASIC_CHALLENGE
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=headers)


OAUTH_ERRORS: dict[int | str, dict[str, object]] = {
    400: {
        "model": OAuthError,
        "description": "The request is malformed, or its grant type or scope is not supported "
        "(OAuth error format, RFC 6749 §5.2).",
        OWN_ERROR_SHAPE: True,
    },
    401: {
        "model": OAuthError,
        "description": "The client did not authenticate, is unknown or revoked, or its secret "
        "is wrong (OAuth error format, RFC 6749 §5.2).",
        "headers": {
            "WWW-Authenticate": {
                "description": "`Basic`: authenticate the client with HTTP Basic.",
                "schema": {"type": "string"},
            }
        },
        OWN_ERROR_SHAPE: True,
    },
}


async def form_fields(request: Request) -> FormData:
    """The form as sent, repeated fields included (the parse FastAPI made, cached)."""
    return await request.form()


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthFailure(  # the header is never echoed: it may hold a secret
            401, "invalid_client", "authenticate the client with HTTP Basic, not another scheme"
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    client_id, colon, client_secret = decoded.partition(":")
    if not colon or not client_id:
        raise OAuthFailure(
            401,
            "invalid_client",
            "the Authorization header is not HTTP Basic of base64(client_id:client_secret)",
        )
    return unquote_plus(client_id), unquote_plus(client_secret)


def _authenticated_client(state: StateDep, request: Request, form: FormData) -> ClientInfo:
    header = request.headers.get("authorization")
    body_id, body_secret = form.get("client_id"), form.get("client_secret")
    if header is not None:
        client_id, client_secret = _basic_credentials(header)
        if body_secret is not None:
            raise OAuthFailure(
                400,
                "invalid_request",
                "the client authenticated twice: use HTTP Basic or client_secret, not both",
            )
        if body_id is not None and body_id != client_id:
            raise OAuthFailure(
                400, "invalid_request", "client_id in the body differs from the Basic one"
            )
    elif isinstance(body_id, str) and isinstance(body_secret, str):
        client_id, client_secret = body_id, body_secret
    else:
        raise OAuthFailure(
            401,
            "invalid_client",
            "the client must authenticate: HTTP Basic with its id and secret, "
            "or client_id and client_secret in the form body",
        )
    client = authenticate_client(state.database, client_id, client_secret)
    if client is None:
        raise OAuthFailure(401, "invalid_client", "unknown or revoked client, or wrong secret")
    return client


def _check_request(form: FormData, client: ClientInfo) -> str:
    """The scope to grant; :class:`OAuthFailure` for a request this endpoint cannot answer."""
    for name in PARAMETERS:
        if len(form.getlist(name)) > 1:
            raise OAuthFailure(400, "invalid_request", f"parameter {name} is given more than once")
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise OAuthFailure(400, "invalid_request", "grant_type is missing")
    if grant_type != GRANT_TYPE:
        raise OAuthFailure(
            400, "unsupported_grant_type", f"the only grant type here is {GRANT_TYPE}"
        )
    scope = form.get("scope")
    requested = set(scope.split()) if isinstance(scope, str) else set()
    if requested - {client.role}:
        raise OAuthFailure(
            400, "invalid_scope", f"this client may ask only for the scope {client.role!r}"
        )
    return client.role


@router.post(
    "/api/v1/oauth/token",
    response_model=AccessTokenResponse,
    responses=OAUTH_ERRORS,
    summary="Issue an access token (OAuth2 client credentials)",
)
def issue_access_token(
    state: StateDep,
    request: Request,
    form: Annotated[FormData, Depends(form_fields)],
    grant_type: Annotated[str | None, Form(description="Must be `client_credentials`.")] = None,
    scope: Annotated[
        str | None, Form(description="Optional; the only scope is the client's role.")
    ] = None,
    client_id: Annotated[
        str | None, Form(description="The client's id, when it does not use HTTP Basic.")
    ] = None,
    client_secret: Annotated[
        str | None, Form(description="The client's secret, when it does not use HTTP Basic.")
    ] = None,
) -> JSONResponse:
    """Trade a client's id and secret for a bearer access token (RFC 6749 §4.4).

    Authenticate with HTTP Basic (`client_id:client_secret`) or with `client_id` and
    `client_secret` in the form body. This endpoint answers its errors in OAuth's format
    (`{"error": "invalid_client", "error_description": ...}`, RFC 6749 §5.2) rather than as RFC
    9457 problems, because OAuth client libraries expect that format: 401 `invalid_client` (with
    `WWW-Authenticate: Basic`) when the client is unknown, revoked, its secret wrong or its
    Authorization header malformed; 400 `invalid_request`, `unsupported_grant_type` or
    `invalid_scope` otherwise. Unknown form fields are ignored (RFC 6749 §3.2).
    """
    del grant_type, scope, client_id, client_secret  # declared for the document; read from form
    try:
        client = _authenticated_client(state, request, form)
        granted_scope = _check_request(form, client)
    except OAuthFailure as failure:
        return failure.response()
    issued = state.access_tokens.issue(client.client_id, client.role, client.instruments)
    logger.info("issued an access token to client %s (%s)", client.name, client.client_id)
    body = AccessTokenResponse(
        access_token=issued.access_token,
        token_type="Bearer",
        expires_in=issued.expires_in,
        scope=granted_scope,
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)
