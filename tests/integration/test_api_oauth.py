"""OAuth2 client credentials against the app: issue, use, expiry, revocation, bad input.

Runs on SQLite and MariaDB (the ``database_url`` fixture). The token endpoint answers OAuth's
error shape (RFC 6749 §5.2); the API's routes answer a bad access token with a 401 problem and
``WWW-Authenticate: Bearer error="invalid_token"``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from autoreduce.access_tokens import AccessTokens
from autoreduce.audit import Actor
from autoreduce.db import Database
from autoreduce.db.models import AuditEvent
from autoreduce.oauth_clients import NewClient, create_client, revoke_client
from autoreduce.settings import Settings
from tests.api_client import RUNS, run_body
from tests.conftest import instrument_config
from tests.polling import wait_for

TOKEN_URL = "/api/v1/oauth/token"
SIGNING_KEY = "test-signing-key-" + "k" * 32
GRANT = {"grant_type": "client_credentials"}
OPERATOR = Actor("cli:test", "operator")


@pytest.fixture
def ttl_s() -> int:
    """The access tokens' lifetime; a test parametrizes it to see one expire."""
    return 3600


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, ttl_s: int) -> Settings:
    return make_settings(
        GEM="noop",
        WISH="noop",
        BROKEN="not_installed",
        BADVARS=instrument_config("noop", variables={"sleep_s": -1}),
        database_url=database_url,
        public_read=True,
        oauth_signing_keys=[SIGNING_KEY],
        oauth_token_ttl_s=ttl_s,
    )


@pytest.fixture
def new_client(db: Database) -> Callable[..., NewClient]:
    """``new_client("detector", "GEM")``: a new OAuth client of that role and instruments."""
    counter = iter(range(1000))

    def create(role: str, *instruments: str) -> NewClient:
        return create_client(
            db, f"{role}-machine-{next(counter)}", role, instruments, actor=OPERATOR
        )

    return create


def basic(client_id: str, client_secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def token_for(app_client: TestClient, client: NewClient) -> str:
    response = app_client.post(
        TOKEN_URL, data=GRANT, headers=basic(client.client_id, client.client_secret)
    )
    assert response.status_code == 200, response.text
    access_token: str = response.json()["access_token"]
    return access_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_oauth_error(response: Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"} and body["error"] == error
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")
    return body


def assert_invalid_token(response: Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.json()["detail"]


def test_a_client_gets_a_bearer_token_with_http_basic(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("detector", "GEM")

    response = app_client.post(
        TOKEN_URL, data=GRANT, headers=basic(client.client_id, client.client_secret)
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "detector")
    assert response.headers["cache-control"] == "no-store"


def test_a_client_may_send_its_credentials_in_the_form_body(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("admin")
    form = {**GRANT, "client_id": client.client_id, "client_secret": client.client_secret}

    response = app_client.post(TOKEN_URL, data=form)

    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_an_access_token_submits_a_run_recorded_as_its_client(
    app_client: TestClient, db: Database, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("detector", "GEM")
    token = token_for(app_client, client)

    response = app_client.post(RUNS, json=run_body(1), headers=bearer(token))

    assert response.status_code == 201, response.text
    with db.read_session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "run.submit")).one()
    assert (event.actor, event.role) == ("client:detector-machine-0", "detector")


def test_a_client_acts_with_its_own_role_and_instruments(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    scientist = token_for(app_client, new_client("scientist", "GEM"))
    gem_detector = token_for(app_client, new_client("detector", "GEM"))

    as_scientist = app_client.post(RUNS, json=run_body(1), headers=bearer(scientist))
    on_wish = app_client.post(RUNS, json=run_body(1, "WISH"), headers=bearer(gem_detector))

    assert as_scientist.status_code == 403 and "needs detector" in as_scientist.json()["detail"]
    assert on_wish.status_code == 403 and "'WISH'" in on_wish.json()["detail"]


@pytest.mark.parametrize("ttl_s", [1])
def test_a_token_is_refused_once_it_has_expired(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    token = token_for(app_client, new_client("detector", "GEM"))

    def refused() -> Response | None:
        response = app_client.post(RUNS, json=run_body(2), headers=bearer(token))
        return response if response.status_code == 401 else None

    response = wait_for(refused, timeout_s=10, what="the access token to expire")

    assert_invalid_token(response, "expired")


def test_revoking_a_client_refuses_its_tokens_at_once_and_its_next_request(
    app_client: TestClient, db: Database, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("detector", "GEM")
    token = token_for(app_client, client)
    assert app_client.post(RUNS, json=run_body(1), headers=bearer(token)).status_code == 201

    assert revoke_client(db, client.client_id, actor=OPERATOR)

    assert_invalid_token(app_client.post(RUNS, json=run_body(2), headers=bearer(token)), "revoked")
    assert_invalid_token(app_client.get(RUNS, headers=bearer(token)), "revoked")  # public reads
    assert_oauth_error(
        app_client.post(
            TOKEN_URL, data=GRANT, headers=basic(client.client_id, client.client_secret)
        ),
        401,
        "invalid_client",
    )


def test_a_token_for_another_audience_is_refused(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("detector", "GEM")
    elsewhere = AccessTokens([SIGNING_KEY], issuer="autoreduce", audience="other", ttl_s=60)
    token = elsewhere.issue(client.client_id, "detector", ["GEM"]).access_token

    assert_invalid_token(app_client.post(RUNS, json=run_body(1), headers=bearer(token)), "aud")


def test_a_token_signed_by_an_unknown_key_is_refused(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("admin")
    forger = AccessTokens(["x" * 48], issuer="autoreduce", audience="autoreduce", ttl_s=60)
    token = forger.issue(client.client_id, "admin", []).access_token

    response = app_client.post(RUNS, json=run_body(1), headers=bearer(token))

    assert_invalid_token(response, "not signed by a key of this service")


@pytest.mark.parametrize("credential", ["a.b.c", "eyJ..", "..", "\u00e9.x.y", "x" * 5000 + ".."])
def test_a_garbage_jwt_is_a_401_not_a_500(app_client: TestClient, credential: str) -> None:
    header = f"Bearer {credential}".encode("latin-1")  # as a client may send it: raw bytes

    response = app_client.post(RUNS, json=run_body(1), headers={"Authorization": header})

    assert_invalid_token(response, "access token")


def test_api_tokens_keep_working_beside_access_tokens(
    app_client: TestClient, auth: Callable[..., dict[str, str]]
) -> None:
    response = app_client.post(RUNS, json=run_body(1), headers=auth("detector"))

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Basic !!!not-base64!!!", "not HTTP Basic"),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), "not HTTP Basic"),
        ("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "not HTTP Basic"),
        ("Basic " + base64.b64encode(b":secret-without-id").decode(), "not HTTP Basic"),
        ("Basic", "not HTTP Basic"),
        ("Bearer ar_something", "authenticate the client with HTTP Basic"),
        ("Digest x", "authenticate the client with HTTP Basic"),
        ("ars_a-secret-sent-bare", "authenticate the client with HTTP Basic"),
    ],
)
def test_a_malformed_authorization_header_is_invalid_client(
    app_client: TestClient, authorization: str, reason: str
) -> None:
    response = app_client.post(TOKEN_URL, data=GRANT, headers={"Authorization": authorization})

    assert reason in assert_oauth_error(response, 401, "invalid_client")["error_description"]
    sent = authorization.split(" ", 1)[-1]  # what may be a credential: never echoed
    assert len(sent) <= 8 or sent not in response.text


def test_a_wrong_secret_or_an_unknown_client_is_invalid_client_and_never_echoed(
    app_client: TestClient, new_client: Callable[..., NewClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = new_client("admin")
    wrong_secret = "ars_" + "w" * 43
    attempts = [
        basic(client.client_id, wrong_secret),
        basic("arc_unknown", client.client_secret),
        basic(client.client_id, ""),
    ]

    responses = [app_client.post(TOKEN_URL, data=GRANT, headers=h) for h in attempts]
    responses.append(app_client.post(TOKEN_URL, data=GRANT))  # no credentials at all
    token_for(app_client, client)  # and one that succeeds, logged

    for response in responses:
        assert_oauth_error(response, 401, "invalid_client")
        assert client.client_secret not in response.text and wrong_secret not in response.text
    assert client.client_secret not in caplog.text and wrong_secret not in caplog.text
    assert "issued an access token to client admin-machine-0" in caplog.text


def test_an_issued_access_token_never_reaches_the_log(
    app_client: TestClient, new_client: Callable[..., NewClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = token_for(app_client, new_client("detector", "GEM"))

    app_client.post(RUNS, json=run_body(1), headers=bearer(token))

    assert token not in caplog.text and token.split(".")[2] not in caplog.text


@pytest.mark.parametrize(
    ("form", "error", "reason"),
    [
        ({}, "invalid_request", "grant_type is missing"),
        ({"grant_type": "password"}, "unsupported_grant_type", "client_credentials"),
        ({**GRANT, "scope": "admin"}, "invalid_scope", "'scientist'"),
        ({**GRANT, "scope": "scientist extra"}, "invalid_scope", "'scientist'"),
    ],
)
def test_a_request_the_endpoint_cannot_grant_is_a_400_oauth_error(
    app_client: TestClient,
    new_client: Callable[..., NewClient],
    form: dict[str, str],
    error: str,
    reason: str,
) -> None:
    client = new_client("scientist", "GEM")

    response = app_client.post(
        TOKEN_URL, data=form, headers=basic(client.client_id, client.client_secret)
    )

    assert reason in assert_oauth_error(response, 400, error)["error_description"]


def test_the_scope_of_the_clients_role_is_granted(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("scientist", "GEM")

    response = app_client.post(
        TOKEN_URL,
        data={**GRANT, "scope": "scientist"},
        headers=basic(client.client_id, client.client_secret),
    )

    assert response.status_code == 200 and response.json()["scope"] == "scientist"


def test_a_repeated_parameter_is_invalid_request(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("admin")

    response = app_client.post(
        TOKEN_URL,
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={
            **basic(client.client_id, client.client_secret),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )

    body = assert_oauth_error(response, 400, "invalid_request")
    assert "grant_type is given more than once" in body["error_description"]


def test_authenticating_twice_is_invalid_request(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("admin")
    form = {**GRANT, "client_secret": client.client_secret}

    response = app_client.post(
        TOKEN_URL, data=form, headers=basic(client.client_id, client.client_secret)
    )

    body = assert_oauth_error(response, 400, "invalid_request")
    assert client.client_secret not in response.text and "not both" in body["error_description"]


def test_a_json_body_is_not_a_client_credentials_request(
    app_client: TestClient, new_client: Callable[..., NewClient]
) -> None:
    client = new_client("admin")

    response = app_client.post(
        TOKEN_URL, json={**GRANT, "client_id": client.client_id, "client_secret": "x"}
    )

    assert_oauth_error(response, 401, "invalid_client")


def test_the_openapi_document_declares_oauth_errors_for_the_token_endpoint(
    app_client: TestClient,
) -> None:
    document = app_client.get("/openapi.json").json()

    responses = document["paths"][TOKEN_URL]["post"]["responses"]

    for status in ("400", "401"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/OAuthError"}
        assert "x-own-error-shape" not in responses[status]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "application/problem+json" in responses["422"]["content"]
