"""OAuth2 access tokens: signed, expiring, bound to an audience, verified during a rotation."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from autoreduce.access_tokens import (
    KEY_FILE,
    AccessTokens,
    InvalidAccessToken,
    generated_key,
    key_id,
    looks_like_jwt,
)
from autoreduce.settings import Settings

OLD_KEY = "old-key-" + "o" * 40
NEW_KEY = "new-key-" + "n" * 40
NOW = 1_900_000_000


def authority(*keys: str, audience: str = "autoreduce", ttl_s: int = 60) -> AccessTokens:
    return AccessTokens(keys, issuer="autoreduce", audience=audience, ttl_s=ttl_s)


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


def test_an_issued_token_verifies_with_its_client_role_and_instruments() -> None:
    tokens = authority(NEW_KEY)

    issued = tokens.issue("arc_1", "scientist", ["GEM", "WISH"], now=NOW)
    claims = tokens.verify(issued.access_token, now=NOW + 1)

    assert (claims.client_id, claims.role, claims.instruments) == (
        "arc_1",
        "scientist",
        ("GEM", "WISH"),
    )
    assert (issued.expires_in, claims.expires_at) == (60, NOW + 60)


def test_a_token_carries_the_registered_claims_and_names_its_key() -> None:
    issued = authority(NEW_KEY).issue("arc_1", "admin", [], now=NOW)

    claims = claims_of(issued.access_token)
    header = json.loads(base64.urlsafe_b64decode(issued.access_token.split(".")[0] + "=" * 4))

    assert {k: claims[k] for k in ("iss", "aud", "sub", "iat", "exp")} == {
        "iss": "autoreduce",
        "aud": "autoreduce",
        "sub": "arc_1",
        "iat": NOW,
        "exp": NOW + 60,
    }
    assert isinstance(claims["jti"], str) and len(claims["jti"]) == 32
    assert (header["alg"], header["kid"]) == ("HS256", key_id(NEW_KEY))
    assert NEW_KEY not in issued.access_token and key_id(NEW_KEY) not in NEW_KEY


def test_two_tokens_for_one_client_have_different_ids() -> None:
    tokens = authority(NEW_KEY)

    first = tokens.issue("arc_1", "admin", [], now=NOW)
    second = tokens.issue("arc_1", "admin", [], now=NOW)

    assert claims_of(first.access_token)["jti"] != claims_of(second.access_token)["jti"]


def test_a_token_is_refused_once_its_lifetime_is_over() -> None:
    tokens = authority(NEW_KEY, ttl_s=1)
    issued = tokens.issue("arc_1", "admin", [], now=NOW)

    tokens.verify(issued.access_token, now=NOW)
    with pytest.raises(InvalidAccessToken, match="expired"):
        tokens.verify(issued.access_token, now=NOW + 1)


def test_during_a_rotation_a_token_of_the_old_key_is_still_accepted() -> None:
    before = authority(OLD_KEY).issue("arc_1", "admin", [], now=NOW)
    rotating = authority(NEW_KEY, OLD_KEY)

    claims = rotating.verify(before.access_token, now=NOW + 1)
    after = rotating.issue("arc_1", "admin", [], now=NOW)

    assert claims.client_id == "arc_1"
    assert claims_of(after.access_token)["sub"] == "arc_1"
    assert after.access_token.split(".")[0] != before.access_token.split(".")[0]  # new kid
    authority(NEW_KEY).verify(after.access_token, now=NOW + 1)


def test_once_the_old_key_is_removed_its_tokens_are_refused() -> None:
    before = authority(OLD_KEY).issue("arc_1", "admin", [], now=NOW)

    with pytest.raises(InvalidAccessToken, match="not signed by a key of this service"):
        authority(NEW_KEY).verify(before.access_token, now=NOW + 1)


def test_a_token_for_another_audience_is_refused() -> None:
    issued = authority(NEW_KEY, audience="another-service").issue("arc_1", "admin", [], now=NOW)

    with pytest.raises(InvalidAccessToken, match="aud"):
        authority(NEW_KEY).verify(issued.access_token, now=NOW + 1)


def test_a_tampered_token_is_refused() -> None:
    issued = authority(NEW_KEY).issue("arc_1", "scientist", ["GEM"], now=NOW)
    header, _payload, signature = issued.access_token.split(".")
    forged_claims = {**claims_of(issued.access_token), "role": "admin"}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=")

    with pytest.raises(InvalidAccessToken):
        authority(NEW_KEY).verify(f"{header}.{forged_payload.decode()}.{signature}", now=NOW)


@pytest.mark.parametrize(
    "garbage", ["a.b.c", "..", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "x" * 5000 + ".a.b"]
)
def test_garbage_is_refused_with_a_reason_not_an_exception_of_the_library(garbage: str) -> None:
    with pytest.raises(InvalidAccessToken):
        authority(NEW_KEY).verify(garbage, now=NOW)


def test_only_a_three_part_credential_looks_like_a_jwt() -> None:
    issued = authority(NEW_KEY).issue("arc_1", "admin", [], now=NOW)

    assert looks_like_jwt(issued.access_token)
    assert not looks_like_jwt("ar_" + "x" * 43)


def test_without_a_configured_key_one_is_made_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    first = AccessTokens.from_settings(settings)
    token = first.issue("arc_1", "admin", [], now=NOW).access_token
    second = AccessTokens.from_settings(settings)

    key_file = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert second.verify(token, now=NOW).client_id == "arc_1"
    assert [path.name for path in key_file.parent.iterdir()] == [KEY_FILE]  # no temporary left


def test_a_configured_key_is_used_and_no_key_file_is_made(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", oauth_signing_keys=[NEW_KEY])

    token = AccessTokens.from_settings(settings).issue("arc_1", "admin", [], now=NOW)

    authority(NEW_KEY).verify(token.access_token, now=NOW)
    assert not (tmp_path / "data" / KEY_FILE).exists()


def test_a_short_signing_key_is_refused_by_the_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shorter than 32 characters"):
        Settings(data_dir=tmp_path, oauth_signing_keys=["short"])


def test_a_short_key_file_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("short\n")

    with pytest.raises(ValueError, match=str(tmp_path / KEY_FILE)):
        generated_key(tmp_path)


def test_the_settings_never_show_a_signing_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, oauth_signing_keys=[NEW_KEY])

    assert NEW_KEY not in repr(settings) and NEW_KEY not in str(settings.model_dump())
