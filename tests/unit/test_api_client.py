"""The client side of the API: where credentials come from, and OAuth2 client credentials.

The token endpoint is answered by ``responses`` (as the detector's HTTP client is tested);
the same client runs against the real API in ``tests/integration/test_cli_client.py``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
import responses

from autoreduce.api_client import ApiClient, ApiRefused, NotAuthorised, ServerFault
from autoreduce.client_config import (
    ClientCredentials,
    load_credentials,
    save_login,
    user_config_path,
)
from autoreduce.settings import ConfigError

API = "http://api.example:8080"
TOKEN_URL = f"{API}/api/v1/oauth/token"
INSTRUMENTS = f"{API}/api/v1/instruments"


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def client(secret: str = "s3cret/with+chars") -> ApiClient:
    return ApiClient(ClientCredentials(API, client_id="robot", client_secret=secret))


def token_answer(value: str, expires_in: float = 3600) -> responses.Response:
    return responses.Response(
        "POST",
        TOKEN_URL,
        json={"access_token": value, "token_type": "Bearer", "expires_in": expires_in},
    )


def bearer(call: responses.Call) -> str:
    return str(call.request.headers["Authorization"])


@responses.activate
def test_access_token_is_fetched_with_basic_auth_and_reused() -> None:
    responses.add(token_answer("first"))
    responses.get(INSTRUMENTS, json=[])
    api = client()

    api.get("/api/v1/instruments")
    api.get("/api/v1/instruments")

    token_calls = [c for c in responses.calls if c.request.url == TOKEN_URL]
    assert len(token_calls) == 1
    basic = base64.b64decode(bearer(token_calls[0]).removeprefix("Basic ")).decode()
    assert basic == "robot:s3cret%2Fwith%2Bchars"  # RFC 6749 2.3.1: form-encoded first
    assert token_calls[0].request.body == "grant_type=client_credentials"
    assert [bearer(c) for c in responses.calls[1:]] == ["Bearer first", "Bearer first"]


@responses.activate
def test_an_expired_access_token_is_fetched_anew() -> None:
    responses.add(token_answer("short", expires_in=0))
    responses.add(token_answer("next"))
    responses.get(INSTRUMENTS, json=[])
    api = client()

    api.get("/api/v1/instruments")
    api.get("/api/v1/instruments")

    used = [bearer(c) for c in responses.calls if c.request.url == INSTRUMENTS]
    assert used == ["Bearer short", "Bearer next"]


@responses.activate
def test_a_401_renews_the_access_token_and_resends_once() -> None:
    responses.add(token_answer("revoked"))
    responses.add(token_answer("fresh"))
    responses.get(INSTRUMENTS, status=401, json={"detail": "the token has expired"})
    responses.get(INSTRUMENTS, json=[{"name": "GEM"}])

    assert client().get("/api/v1/instruments") == [{"name": "GEM"}]
    used = [bearer(c) for c in responses.calls if c.request.url == INSTRUMENTS]
    assert used == ["Bearer revoked", "Bearer fresh"]


@responses.activate
def test_a_second_401_is_not_authorised_not_a_loop() -> None:
    responses.add(token_answer("a"))
    responses.add(token_answer("b"))
    responses.get(INSTRUMENTS, status=401, json={"detail": "client revoked"})

    with pytest.raises(NotAuthorised, match="client revoked"):
        client().get("/api/v1/instruments")
    assert len([c for c in responses.calls if c.request.url == INSTRUMENTS]) == 2


@responses.activate
def test_refused_client_credentials_never_show_the_secret() -> None:
    responses.post(TOKEN_URL, status=401, json={"detail": "unknown client or wrong secret"})

    with pytest.raises(NotAuthorised) as refused:
        client(secret="hunter2-secret").get("/api/v1/instruments")

    assert "unknown client or wrong secret" in str(refused.value)
    assert "hunter2" not in str(refused.value)


@responses.activate
def test_a_problem_detail_is_the_message_and_the_status_picks_the_kind() -> None:
    responses.get(INSTRUMENTS, status=409, json={"detail": "GEM changed concurrently; retry"})
    responses.get(f"{API}/api/v1/failures", status=503, body="<html>bad gateway</html>")
    api = ApiClient(ClientCredentials(API, token="t"))

    with pytest.raises(ApiRefused, match=r"^GEM changed concurrently; retry$"):
        api.get("/api/v1/instruments")
    with pytest.raises(ServerFault, match="503"):
        api.get("/api/v1/failures")


def test_the_option_beats_the_environment_which_beats_the_users_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save_login("http://from-login:1", token="login-token")
    assert load_credentials().api_url == "http://from-login:1"
    assert load_credentials().token == "login-token"

    monkeypatch.setenv("AUTOREDUCE_API_URL", "http://from-env:2/")
    monkeypatch.setenv("AUTOREDUCE_API_TOKEN", "env-token")
    assert load_credentials().api_url == "http://from-env:2"
    assert load_credentials().token == "env-token"

    assert load_credentials("https://from-option:3").api_url == "https://from-option:3"


def test_credentials_come_whole_from_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    save_login(API, token="login-token")
    monkeypatch.setenv("AUTOREDUCE_API_CLIENT_ID", "robot")
    monkeypatch.setenv("AUTOREDUCE_API_CLIENT_SECRET", "env-secret")

    credentials = load_credentials()

    assert (credentials.token, credentials.client_id) == ("", "robot")
    assert "env-secret" not in repr(credentials)


def test_a_client_id_without_its_secret_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOREDUCE_API_CLIENT_ID", "robot")

    with pytest.raises(ConfigError, match="not its api_client_secret"):
        load_credentials()


@pytest.mark.parametrize("url", ["ftp://host", "not a url", "http://user:pw@host"])
def test_an_api_url_that_is_not_plain_http_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_credentials(url)

    assert "pw" not in str(refused.value)


def test_login_file_is_0600_in_a_0700_directory_even_with_a_loose_umask(config_home: Path) -> None:
    previous = os.umask(0o000)
    try:
        path = save_login(API, client_id="robot", client_secret="s")
    finally:
        os.umask(previous)

    assert path == user_config_path() == config_home / "autoreduce" / "client.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_credentials().client_secret == "s"


# --- the streamed multipart body of an upload -------------------------------------------------


def _parsed(body: bytes, content_type: str) -> tuple[dict[bytes, bytes], bytes]:
    """The one part's headers and data, as the API's streaming parser (python-multipart) sees."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    headers: dict[bytes, bytes] = {}
    field, data = [b""], bytearray()

    def header_field(d: bytes, s: int, e: int) -> None:
        field[0] = d[s:e].lower()

    def header_value(d: bytes, s: int, e: int) -> None:
        headers[field[0]] = headers.get(field[0], b"") + d[s:e]

    def part_data(d: bytes, s: int, e: int) -> None:
        data.extend(d[s:e])

    callbacks = {
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_part_data": part_data,
    }
    parser = MultipartParser(options[b"boundary"], callbacks)  # type: ignore[arg-type]
    parser.write(body)
    parser.finalize()
    return headers, bytes(data)


def test_a_multipart_file_is_read_in_blocks_of_at_most_the_size_asked_and_rewinds(
    tmp_path: Path,
) -> None:
    from python_multipart.multipart import parse_options_header

    from autoreduce.api_client import MultipartFile

    path = tmp_path / 'sample "1".nxs'
    content = os.urandom(300_000)
    path.write_bytes(content)
    body = MultipartFile(path)

    chunks = []
    while chunk := body.read(65_536):
        assert len(chunk) <= 65_536
        chunks.append(chunk)
    sent = b"".join(chunks)
    body.seek(0)
    again = b"".join(body)
    body.close()

    assert len(sent) == len(body) and again == sent
    headers, data = _parsed(sent, body.content_type)
    assert data == content
    assert body.digest.hexdigest() == hashlib.sha256(content).hexdigest()
    _, options = parse_options_header(headers[b"content-disposition"])
    assert options[b"filename"] == b"sample %221%22.nxs"
