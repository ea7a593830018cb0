"""Signing in to the web UI through its form, on an instance that is not public."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from autoreduce.accounts import create_account, disable_account, set_password
from autoreduce.db import Database
from autoreduce.db.models import AuditEvent
from autoreduce.settings import Settings
from rest_api.dependencies import ApiState
from rest_api.web import accounts
from rest_api.web.accounts import SignedIn, SignInUnavailable

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """GEM and WISH on an instance where reading needs a signed-in user."""
    return make_settings(GEM="noop", WISH="noop", database_url=database_url, public_read=False)


@pytest.fixture
def data_files() -> None:
    """These tests read no data files."""


@pytest.fixture
def ada(db: Database) -> str:
    """A scientist of GEM."""
    create_account(db, "ada", PASSWORD, "scientist", ["GEM"], display_name="Ada Lovelace")
    return "ada"


def csrf_of(client: TestClient, path: str = "/signin") -> str:
    page = client.get(path, headers=HTML)
    match = CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


def post_signin(
    client: TestClient,
    username: str = "ada",
    password: str = PASSWORD,
    next_path: str = "/",
    token: str | None = None,
) -> httpx.Response:
    form = {"username": username, "password": password, "next": next_path}
    form["csrf_token"] = csrf_of(client) if token is None else token
    return client.post("/signin", data=form, headers=HTML, follow_redirects=False)


def audit(db: Database, action: str) -> list[AuditEvent]:
    with db.read_session() as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        session.expunge_all()
        return rows


def test_a_page_without_a_session_sends_the_browser_to_sign_in_and_back(
    app_client: TestClient, ada: str
) -> None:
    asked = app_client.get("/", headers=HTML, follow_redirects=False)
    assert (asked.status_code, asked.headers["location"]) == (303, "/signin?next=/")
    assert (
        'name="next" value="/instruments/GEM"'
        in app_client.get("/signin?next=/instruments/GEM", headers=HTML).text
    )

    signed_in = post_signin(app_client, next_path="/instruments/GEM")

    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/instruments/GEM"


def test_a_signed_in_scientist_sees_their_name_and_only_their_instruments(
    app_client: TestClient, db: Database, ada: str
) -> None:
    post_signin(app_client)

    overview = app_client.get("/", headers=HTML, follow_redirects=False)

    assert overview.status_code == 200
    assert "Ada Lovelace" in overview.text
    assert 'href="/instruments/GEM"' in overview.text
    assert 'href="/instruments/WISH"' not in overview.text
    [event] = audit(db, "user.signin")
    assert (event.actor, event.role, event.target) == ("ada", "scientist", "user ada")


@pytest.mark.parametrize(
    ("username", "password"),
    [("ada", "not the password"), ("nobody", PASSWORD), ("disabled", PASSWORD)],
)
def test_wrong_password_unknown_user_and_disabled_account_get_the_same_answer(
    app_client: TestClient, db: Database, ada: str, username: str, password: str
) -> None:
    create_account(db, "disabled", PASSWORD, "admin")
    disable_account(db, "disabled")

    refused = post_signin(app_client, username, password)

    assert refused.status_code == 400
    assert "wrong username or password" in refused.text
    assert app_client.get("/", headers=HTML, follow_redirects=False).status_code == 303
    [event] = audit(db, "user.signin_failed")
    assert (event.actor, event.target) == ("anonymous", f"user {username}")
    assert password not in repr([event.details, event.target, event.actor])


def test_a_sixth_failure_within_the_window_is_refused_even_with_the_right_password(
    app_client: TestClient, db: Database, ada: str
) -> None:
    for _ in range(5):
        assert post_signin(app_client, password="guess").status_code == 400

    throttled = post_signin(app_client)

    assert throttled.status_code == 429
    assert "too many failed sign-ins" in throttled.text
    assert 0 < int(throttled.headers["retry-after"]) <= 300
    assert len(audit(db, "user.signin_failed")) == 5
    assert audit(db, "user.signin") == []


def test_failures_for_one_username_do_not_lock_out_another(
    app_client: TestClient, db: Database, ada: str
) -> None:
    create_account(db, "grace", PASSWORD, "admin")
    for _ in range(5):
        post_signin(app_client, password="guess")

    assert post_signin(app_client, "grace").status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_next_never_leaves_the_site(app_client: TestClient, ada: str, target: str) -> None:
    form = app_client.get("/signin", params={"next": target}, headers=HTML)
    assert 'name="next" value="/"' in form.text

    signed_in = post_signin(app_client, next_path=target)

    assert signed_in.headers["location"] == "/"


def test_signing_in_without_the_forms_csrf_token_is_refused(
    app_client: TestClient, db: Database, ada: str
) -> None:
    missing = post_signin(app_client, token="")
    forged = post_signin(app_client, token="a-token-from-another-session")

    assert missing.status_code == forged.status_code == 403
    assert app_client.get("/", headers=HTML, follow_redirects=False).status_code == 303
    assert audit(db, "user.signin") == audit(db, "user.signin_failed") == []


def test_signing_out_needs_the_csrf_token_and_ends_the_session(
    app_client: TestClient, db: Database, ada: str
) -> None:
    post_signin(app_client)
    token = csrf_of(app_client, "/")

    refused = app_client.post("/signout", headers=HTML, follow_redirects=False)
    assert refused.status_code == 403
    assert app_client.get("/", headers=HTML, follow_redirects=False).status_code == 200

    signed_out = app_client.post(
        "/signout", data={"csrf_token": token}, headers=HTML, follow_redirects=False
    )
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/signin")
    assert "You have signed out" in app_client.get("/signin", headers=HTML).text
    assert app_client.get("/", headers=HTML, follow_redirects=False).status_code == 303
    assert [e.actor for e in audit(db, "user.signout")] == ["ada"]


def test_signing_in_starts_a_fresh_session_with_a_new_csrf_token(
    app_client: TestClient, ada: str
) -> None:
    before = csrf_of(app_client)
    post_signin(app_client, token=before)
    after = csrf_of(app_client, "/")

    assert after != before
    stale = app_client.post(
        "/signout", data={"csrf_token": before}, headers=HTML, follow_redirects=False
    )
    assert stale.status_code == 403


def test_the_session_cookie_is_httponly_and_samesite_lax_over_http(
    app_client: TestClient, ada: str
) -> None:
    signed_in = post_signin(app_client)

    cookie = signed_in.headers["set-cookie"].lower()
    assert cookie.startswith("autoreduce_session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie


def test_the_session_cookie_is_secure_over_https(app_client: TestClient, ada: str) -> None:
    client = TestClient(app_client.app, base_url="https://testserver")

    signed_in = post_signin(client)

    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_someone_signed_in_who_opens_the_form_goes_on_to_next(
    app_client: TestClient, ada: str
) -> None:
    post_signin(app_client)

    again = app_client.get("/signin?next=/failed", headers=HTML, follow_redirects=False)

    assert (again.status_code, again.headers["location"]) == (303, "/failed")


def test_an_empty_form_is_a_page_asking_for_both_fields(app_client: TestClient) -> None:
    refused = post_signin(app_client, "", "")

    assert refused.status_code == 400
    assert "enter your username and password" in refused.text


def test_a_backend_that_cannot_answer_is_a_503_page_not_a_wrong_password(
    app_client: TestClient, db: Database, ada: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def directory_down(state: ApiState, username: str, password: str) -> SignedIn | None:
        raise SignInUnavailable("the directory server is down")

    monkeypatch.setattr(accounts, "BACKENDS", [directory_down, accounts.local_account])

    unknown_here = post_signin(app_client, "grace")
    local_user = post_signin(app_client, "ada")

    assert unknown_here.status_code == 503
    assert "not answering" in unknown_here.text
    assert local_user.status_code == 303


@pytest.mark.parametrize(
    "change",
    [
        lambda db: disable_account(db, "ada"),
        lambda db: set_password(db, "ada", "a new passphrase"),
    ],
    ids=["disabled", "new password"],
)
def test_disabling_the_account_or_changing_its_password_ends_an_open_session(
    app_client: TestClient, db: Database, ada: str, change: Callable[[Database], bool]
) -> None:
    post_signin(app_client)
    assert app_client.get("/", headers=HTML, follow_redirects=False).status_code == 200

    assert change(db)

    assert app_client.get("/", headers=HTML, follow_redirects=False).status_code == 303
    assert app_client.get("/api/v1/runs").status_code == 401
