"""OAuth2 access tokens: JWTs signed with HS256 by joserfc, never by hand-written code.

A token carries ``iss``, ``aud``, ``sub`` (the client id), the client's ``role`` and
``instruments``, ``iat``, ``exp`` and a random ``jti``; its header names the signing key
(``kid``). The keys are the ``oauth_signing_keys`` setting: the first signs, every one verifies,
so a rotation lists the new key first and drops the old one once its last tokens have expired.
Without a configured key, one is generated once and kept in ``<data_dir>/oauth-signing-key``
(mode 0600) so that the demo works; a key is never logged.

Verifying checks the signature with any listed key, the algorithm, ``exp``, ``aud`` and ``iss``;
whether the client is still live is the caller's business (the database row, at each request).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError
from joserfc.jwk import KeySet, OctKey

from autoreduce.settings import MIN_SIGNING_KEY_CHARS, Settings

ALGORITHM = "HS256"
KEY_FILE = "oauth-signing-key"
MAX_ACCESS_TOKEN_LENGTH = 4096


class InvalidAccessToken(Exception):
    """An access token that must be refused; the message says why (never the token)."""


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says: whose it is and until when (UNIX seconds)."""

    client_id: str
    role: str
    instruments: tuple[str, ...]
    expires_at: int
    token_id: str


@dataclass(frozen=True)
class IssuedToken:
    """A new access token and its lifetime in seconds."""

    access_token: str
    expires_in: int


def key_id(secret: str) -> str:
    """The ``kid`` of a key: 16 hex digits of its SHA-256 (names the key, reveals nothing)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def looks_like_jwt(credential: str) -> bool:
    """True for a compact JWS (three dot-separated parts); API tokens never hold a dot."""
    return credential.count(".") == 2


class AccessTokens:
    """Issues and verifies the access tokens of one instance."""

    def __init__(self, secrets_: Sequence[str], *, issuer: str, audience: str, ttl_s: int) -> None:
        if not secrets_:
            raise ValueError("at least one signing key is needed")
        keys = [OctKey.import_key(secret, {"kid": key_id(secret)}) for secret in secrets_]
        self._signing_key = keys[0]
        self._keys = KeySet(keys)  # type: ignore[arg-type]
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessTokens:
        """The tokens of ``settings``'s instance; generates the key file if no key is set."""
        secrets_ = [key.get_secret_value() for key in settings.oauth_signing_keys]
        if not secrets_:
            secrets_ = [generated_key(settings.data_dir)]
        return cls(
            secrets_,
            issuer=settings.oauth_issuer,
            audience=settings.oauth_audience,
            ttl_s=settings.oauth_token_ttl_s,
        )

    def issue(
        self,
        client_id: str,
        role: str,
        instruments: Sequence[str],
        *,
        now: int | None = None,
    ) -> IssuedToken:
        """A token for this client, valid ``ttl_s`` seconds from ``now`` (default: the clock)."""
        issued_at = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client_id,
            "role": role,
            "instruments": list(instruments),
            "iat": issued_at,
            "exp": issued_at + self.ttl_s,
            "jti": secrets.token_hex(16),
        }
        header = {"alg": ALGORITHM, "typ": "at+jwt", "kid": self._signing_key.kid}
        token = jwt.encode(header, claims, self._signing_key, algorithms=[ALGORITHM])
        return IssuedToken(access_token=token, expires_in=self.ttl_s)

    def verify(self, token: str, *, now: int | None = None) -> AccessClaims:
        """The claims of a valid ``token``; :class:`InvalidAccessToken` saying why otherwise."""
        if len(token) > MAX_ACCESS_TOKEN_LENGTH:
            raise InvalidAccessToken("the access token is too long")
        try:
            decoded = jwt.decode(token, self._keys, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError, KeyError, UnicodeError):
            raise InvalidAccessToken(
                "the access token is malformed or not signed by a key of this service"
            ) from None
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()) if now is None else now,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
            jti={"essential": True},
        )
        claims = decoded.claims
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidAccessToken("the access token has expired") from None
        except InvalidClaimError as error:
            raise InvalidAccessToken(f"the access token's {error.claim} claim is wrong") from None
        except JoseError as error:
            raise InvalidAccessToken(f"the access token is invalid ({error.error})") from None
        return _access_claims(claims)


def _access_claims(claims: dict[str, Any]) -> AccessClaims:
    subject, role, instruments = claims.get("sub"), claims.get("role"), claims.get("instruments")
    expires_at, token_id = claims.get("exp"), claims.get("jti")
    if not (
        isinstance(subject, str)
        and isinstance(role, str)
        and isinstance(instruments, list)
        and all(isinstance(name, str) for name in instruments)
        and isinstance(expires_at, int)
        and isinstance(token_id, str)
    ):
        raise InvalidAccessToken("the access token's claims are malformed")
    return AccessClaims(subject, role, tuple(instruments), expires_at, token_id)


def generated_key(data_dir: Path) -> str:
    """The instance's own signing key, made on first use in ``data_dir`` with mode 0600.

    Two processes starting at once agree: the key is written to a private temporary file and
    linked into place, which fails for the second, who then reads the first one's key.
    """
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=data_dir, prefix=f".{KEY_FILE}.")  # 0600
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(secrets.token_urlsafe(48) + "\n")
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < MIN_SIGNING_KEY_CHARS:
        raise ValueError(
            f"the signing key in {path} is shorter than {MIN_SIGNING_KEY_CHARS} characters; "
            "remove the file to have a new one made"
        )
    return secret
