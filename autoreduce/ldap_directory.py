"""Signing in against an LDAP directory: a simple bind as the user, groups mapped to a role.

:class:`LdapDirectory` answers one question, "who is this username and password?", with a
:class:`DirectoryUser` (their role and instruments from their groups) or None (not signed in; the
reason is logged, never the password). It raises :class:`DirectoryUnavailable` when it cannot
tell, because no server of ``ldap.url`` answered: the sign-in page then says the directory is
unreachable rather than that the password is wrong.

The steps, each on a connection with the configured timeouts and TLS (``ldaps://`` or StartTLS):

1. the user's DN: ``user_dn_template`` with the username DN-escaped, or a search under
   ``user_search_base`` with ``user_filter`` (the username filter-escaped), bound as the service
   account ``bind_dn`` when one is set; exactly one entry must match;
2. a simple bind as that DN with the password (an empty password is refused before: LDAP would
   take it as an anonymous bind and "succeed");
3. the user's groups, read as the user: their ``memberOf`` attribute, or the groups under
   ``group_search_base`` whose member attribute holds their DN;
4. the role: the strongest of :data:`~autoreduce.settings.LDAP_ROLES` whose group they are in;
   their instruments: those whose group they are in. No role group, or a scientist in no
   instrument group: not signed in. An admin in no instrument group may act on every instrument
   (an empty list means "any", as for tokens).
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPCertificateError, LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from autoreduce.settings import LDAP_ROLES, LdapSettings

log = logging.getLogger(__name__)

MAX_USERNAME_LENGTH = 256
"""Longer usernames are refused without asking the directory (characters)."""


@dataclass(frozen=True)
class DirectoryUser:
    """A user the directory vouched for.

    ``name`` is the directory's spelling of the username (its ``username_attribute``);
    ``instruments`` empty means any instrument (only ever for an admin).
    """

    name: str
    role: str
    instruments: tuple[str, ...]
    display_name: str


class DirectoryUnavailable(Exception):
    """No LDAP server answered (down, timed out, TLS failed, or the service account refused)."""


class _DirectoryUnusable(LDAPException):
    """The service account could not bind, or StartTLS was refused: no sign-in can work."""


class _Refused(Exception):
    """This sign-in is refused; the message is the reason that is logged."""


def normalise_dn(dn: str) -> str:
    """``dn`` in one spelling for comparing: attribute types and values lower case, no spaces
    around the separators (``CN=Wish, ou=Groups`` and ``cn=wish,ou=groups`` are equal)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in dn:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char in ",+":
            parts.append("".join(current))
            parts.append(char)
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    normal = []
    for part in parts:
        if part in (",", "+"):
            normal.append(part)
            continue
        attribute, _, value = part.partition("=")
        normal.append(f"{attribute.strip()}={value.strip()}")
    return "".join(normal).lower()


def username_problem(username: str) -> str | None:
    """Why ``username`` is not asked about at all, or None when it may be."""
    if not username:
        return "empty username"
    if len(username) > MAX_USERNAME_LENGTH:
        return f"username longer than {MAX_USERNAME_LENGTH} characters"
    if username != username.strip():
        return "username with leading or trailing spaces"
    if any(ord(char) < 32 or ord(char) == 127 for char in username):
        return "username with control characters"
    return None


class LdapDirectory:
    """The configured directory (``[ldap]`` in the settings; its ``url`` must be set)."""

    def __init__(self, settings: LdapSettings) -> None:
        if not settings.enabled:
            raise ValueError("LDAP sign-in is off: ldap.url is empty")
        self._settings = settings
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
        )
        self._servers = [
            Server(
                url.rstrip("/"),
                get_info=NONE,
                tls=tls,
                connect_timeout=settings.connect_timeout_s,
            )
            for url in settings.url.split()
        ]
        self._role_groups = {role: normalise_dn(dn) for role, dn in settings.role_groups.items()}
        self._instrument_groups = {
            name: normalise_dn(dn) for name, dn in settings.instrument_groups.items()
        }

    def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        """The user ``username`` if ``password`` is theirs and their groups grant a role.

        None when it is not (wrong password, unknown user, no role group …; the reason is
        logged at INFO, without the password).

        Raises:
            DirectoryUnavailable: no server could be asked; the message says why.
        """
        problem = username_problem(username) or (None if password else "empty password")
        if problem is not None:
            log.info("LDAP sign-in refused for %r: %s", username[:MAX_USERNAME_LENGTH], problem)
            return None
        failures = []
        for server in self._servers:
            try:
                return self._authenticate_on(server, username, password)
            except _Refused as refusal:
                log.info("LDAP sign-in refused for %r: %s", username, refusal)
                return None
            except LDAPException as error:
                failures.append(f"{server.name}: {_describe(error)}")
        reason = "; ".join(failures)
        log.warning(
            "LDAP sign-in for %r impossible: the directory is unreachable (%s)", username, reason
        )
        raise DirectoryUnavailable(f"the directory is unreachable ({reason})")

    def _authenticate_on(self, server: Server, username: str, password: str) -> DirectoryUser:
        settings = self._settings
        dn = self._user_dn(server, username)
        with self._connection(server, dn, password) as connection:
            if not connection.bind():
                raise _Refused(
                    _bind_refusal(connection, by_template=bool(settings.user_dn_template))
                )
            entry = self._own_entry(connection, dn)
            groups = self._groups(connection, dn, entry)
        return self._user(username, entry, groups)

    def _user_dn(self, server: Server, username: str) -> str:
        """The user's DN: from the template, or the one entry the user search finds."""
        settings = self._settings
        if settings.user_dn_template:
            return settings.user_dn_template.replace("{username}", escape_rdn(username))
        password = settings.bind_password.get_secret_value()
        with self._connection(server, settings.bind_dn or None, password or None) as connection:
            if settings.bind_dn and not connection.bind():
                description = connection.result.get("description", "refused")
                raise _DirectoryUnusable(
                    f"the service account {settings.bind_dn} could not bind ({description}); "
                    "check ldap.bind_dn and ldap.bind_password"
                )
            search_filter = settings.user_filter.replace(
                "{username}", escape_filter_chars(username)
            )
            connection.search(
                settings.user_search_base, search_filter, SUBTREE, attributes=[], size_limit=2
            )
            _check_search(connection, f"the user search under {settings.user_search_base}")
            found = [
                entry["dn"]
                for entry in connection.response or ()
                if entry.get("type") == "searchResEntry"
            ]
        if not found:
            raise _Refused("no such user in the directory")
        if len(found) > 1:
            raise _Refused(f"{len(found)} directory entries match the user filter")
        return str(found[0])

    @contextmanager
    def _connection(
        self, server: Server, user: str | None, password: str | None
    ) -> Iterator[Connection]:
        """An open connection (TLS started when configured), unbound at the end."""
        connection = Connection(
            server,
            user=user,
            password=password,
            read_only=True,
            auto_referrals=False,
            receive_timeout=self._settings.receive_timeout_s,
            raise_exceptions=False,
        )
        try:
            connection.open()
            if self._settings.start_tls and not connection.start_tls():
                raise _DirectoryUnusable("the server refused StartTLS")
            yield connection
        finally:
            with suppress(LDAPException, OSError):
                connection.unbind()

    def _own_entry(self, connection: Connection, dn: str) -> dict[str, Any]:
        settings = self._settings
        attributes = [settings.display_name_attribute, "cn", settings.username_attribute]
        if not settings.group_search_base:
            attributes.append("memberOf")
        connection.search(dn, "(objectClass=*)", BASE, attributes=attributes)
        for entry in connection.response or ():
            if entry.get("type") == "searchResEntry":
                return dict(entry.get("attributes", {}))
        raise _Refused("bound, but the directory does not show the user their own entry")

    def _groups(self, connection: Connection, dn: str, entry: dict[str, Any]) -> set[str]:
        settings = self._settings
        if not settings.group_search_base:
            return {normalise_dn(group) for group in _values(entry.get("memberOf"))}
        search_filter = f"({settings.group_member_attribute}={escape_filter_chars(dn)})"
        connection.search(settings.group_search_base, search_filter, SUBTREE, attributes=[])
        _check_search(connection, f"the group search under {settings.group_search_base}")
        return {
            normalise_dn(found["dn"])
            for found in connection.response or ()
            if found.get("type") == "searchResEntry"
        }

    def _user(self, username: str, entry: dict[str, Any], groups: set[str]) -> DirectoryUser:
        settings = self._settings
        role = next((role for role in LDAP_ROLES if self._role_groups.get(role) in groups), None)
        if role is None:
            raise _Refused("in no role group (ldap.role_groups)")
        instruments = tuple(
            sorted(name for name, group in self._instrument_groups.items() if group in groups)
        )
        if role == "scientist" and not instruments:
            raise _Refused("a scientist in no instrument group (ldap.instrument_groups)")
        name = _first(entry.get(settings.username_attribute)) or username
        display_name = (
            _first(entry.get(settings.display_name_attribute)) or _first(entry.get("cn")) or name
        )
        log.info(
            "LDAP sign-in of %r as %s (instruments: %s)",
            name,
            role,
            ", ".join(instruments) or "any",
        )
        return DirectoryUser(name, role, instruments, display_name)


def _check_search(connection: Connection, what: str) -> None:
    """Raise :class:`_DirectoryUnusable` unless the last search succeeded (a wrong base DN
    must not look like "no such user" or "in no group")."""
    description = (connection.result or {}).get("description", "")
    if description not in ("success", "sizeLimitExceeded"):
        raise _DirectoryUnusable(f"{what} failed ({description or 'no answer'})")


def _values(value: Any) -> Iterable[str]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return [str(value)]


def _first(value: Any) -> str:
    values = list(_values(value))
    return values[0] if values else ""


def _bind_refusal(connection: Connection, *, by_template: bool) -> str:
    description = connection.result.get("description", "") if connection.result else ""
    if description == "invalidCredentials":
        return "wrong password" + (" or no such user" if by_template else "")
    return f"the directory refused the bind ({description or 'no reason given'})"


def _describe(error: LDAPException) -> str:
    """One readable line for ``error`` (ldap3 nests the reprs of the errors it wraps)."""
    if isinstance(error, LDAPCertificateError):
        return f"the server's certificate does not name {_certificate_host(error)}"
    text = str(error) or type(error).__name__
    while wrapped := _WRAPPED.fullmatch(text):
        text = wrapped.group(2)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:300] + "…"


_WRAPPED = re.compile(r"\(\s*(['\"])(.*)\1\s*,?\s*\)", re.DOTALL)


def _certificate_host(error: LDAPCertificateError) -> str:
    names = re.search(r"any name in \[(.*?)\]", str(error))
    return names.group(1).replace("'", "") if names else "the host in the URL"
