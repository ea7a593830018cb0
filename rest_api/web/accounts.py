"""Who may sign in: one :func:`authenticate` over a list of account backends.

A backend takes ``(state, username, password)`` and answers the person signed in, or None when
it does not know them or the password is wrong. :data:`BACKENDS` is tried in order and the first
yes wins. A backend that cannot answer at all (its server is down) raises
:class:`SignInUnavailable`; the sign-in page says so (503) rather than "wrong password".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autoreduce.accounts import verify_password
from rest_api.dependencies import ApiState


@dataclass(frozen=True)
class SignedIn:
    """A person who proved who they are: what the session keeps about them."""

    name: str
    role: str
    instruments: tuple[str, ...]
    display_name: str
    source: str  # which backend: "local", "ldap"


class SignInUnavailable(Exception):
    """A backend could not check the password (e.g. the directory server is down)."""


Backend = Callable[[ApiState, str, str], SignedIn | None]


def local_account(state: ApiState, username: str, password: str) -> SignedIn | None:
    """A local account (``autoreduce user create``) whose password matches."""
    account = verify_password(state.database, username, password)
    if account is None:
        return None
    return SignedIn(
        account.username, account.role, account.instruments, account.display_name, "local"
    )


def ldap_account(state: ApiState, username: str, password: str) -> SignedIn | None:
    """A person of the facility's directory (the ``[ldap]`` settings) whose password matches and
    whose groups give them a role; None when LDAP is not configured."""
    if not state.settings.ldap.enabled:
        return None
    # ldap3 is imported only when a directory is configured and asked: the API idles without it.
    from autoreduce.ldap_directory import DirectoryUnavailable, LdapDirectory

    try:
        user = LdapDirectory(state.settings.ldap).authenticate(username, password)
    except DirectoryUnavailable as error:
        raise SignInUnavailable("the directory is unreachable") from error
    if user is None:
        return None
    return SignedIn(user.name, user.role, user.instruments, user.display_name, "ldap")


BACKENDS: list[Backend] = [local_account, ldap_account]
"""The account backends, tried in order."""


def authenticate(state: ApiState, username: str, password: str) -> SignedIn | None:
    """The person ``username`` if ``password`` is theirs in some backend, else None.

    Raises :class:`SignInUnavailable` when no backend said yes and one could not answer.
    """
    unavailable: SignInUnavailable | None = None
    for backend in BACKENDS:
        try:
            signed_in = backend(state, username, password)
        except SignInUnavailable as error:
            unavailable = error
            continue
        if signed_in is not None:
            return signed_in
    if unavailable is not None:
        raise unavailable
    return None
