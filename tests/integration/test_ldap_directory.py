"""Signing in against a real slapd: right and wrong passwords, injections, groups, outages.

Two ways of finding a user run each test that does not depend on one: a DN template with the
memberof overlay's ``memberOf`` attribute (``template``), and a search bound as a service
account with a group search (``search``).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoreduce.ldap_directory import DirectoryUnavailable, DirectoryUser, LdapDirectory
from autoreduce.settings import LdapSettings
from tests.slapd import PASSWORDS, Slapd, free_port, start_slapd

MakeDirectory = Callable[..., LdapDirectory]


def ldap_settings(server: Slapd, mode: str, **overrides: Any) -> LdapSettings:
    """Settings for ``server``: alice and dave are scientists, bob an admin; WISH and GEM."""
    found: dict[str, Any]
    if mode == "template":
        found = {"user_dn_template": server.user_dn_template}
    else:
        found = {
            "user_search_base": server.people_dn,
            "bind_dn": server.service_dn,
            "bind_password": server.service_password,
            "group_search_base": server.groups_dn,
        }
    options: dict[str, Any] = {
        "url": server.url,
        "role_groups": {
            "admin": server.group_dn("autoreduce-admins"),
            "scientist": server.group_dn("scientists"),
        },
        "instrument_groups": {"WISH": server.group_dn("wish"), "GEM": server.group_dn("gem")},
        **found,
        **overrides,
    }
    return LdapSettings(**options)


@pytest.fixture(params=["template", "search"])
def make_directory(request: pytest.FixtureRequest, slapd: Slapd) -> MakeDirectory:
    """``make_directory(**overrides)``: an LdapDirectory on the session's slapd."""

    def build(**overrides: Any) -> LdapDirectory:
        return LdapDirectory(ldap_settings(slapd, request.param, **overrides))

    return build


@pytest.fixture
def directory(make_directory: MakeDirectory) -> LdapDirectory:
    return make_directory()


def test_right_password_signs_in_with_role_and_instruments_from_groups(
    directory: LdapDirectory,
) -> None:
    user = directory.authenticate("alice", PASSWORDS["alice"])

    assert user == DirectoryUser("alice", "scientist", ("WISH",), "Alice Liddell")


def test_member_of_the_admin_group_is_an_admin(directory: LdapDirectory) -> None:
    user = directory.authenticate("bob", PASSWORDS["bob"])

    assert user == DirectoryUser("bob", "admin", ("GEM",), "Bob Builder")


def test_username_in_another_case_gets_the_directorys_spelling(directory: LdapDirectory) -> None:
    user = directory.authenticate("ALICE", PASSWORDS["alice"])

    assert user is not None and user.name == "alice"


def test_group_dns_compare_regardless_of_case_and_spaces(
    make_directory: MakeDirectory, slapd: Slapd
) -> None:
    directory = make_directory(
        role_groups={"scientist": "CN=Scientists, OU=Groups, DC=example, DC=org"},
        instrument_groups={"WISH": "cn=WISH ,ou=groups,dc=EXAMPLE,dc=org"},
    )

    user = directory.authenticate("alice", PASSWORDS["alice"])

    assert user is not None and (user.role, user.instruments) == ("scientist", ("WISH",))


def test_wrong_password_is_refused(directory: LdapDirectory) -> None:
    assert directory.authenticate("alice", PASSWORDS["bob"]) is None


def test_unknown_user_is_refused(directory: LdapDirectory) -> None:
    assert directory.authenticate("mallory", PASSWORDS["alice"]) is None


@pytest.mark.parametrize(
    "username",
    [
        "*",
        "al*",
        "a*e",
        ")(uid=*",
        "alice)(|(uid=*",
        "*)(uid=*))(|(uid=*",
        "alice,ou=people,dc=example,dc=org",
        "uid=alice,ou=people,dc=example,dc=org",
        "alice\\2a",
        "alice\x00",
        " alice",
        "",
    ],
)
def test_injection_in_the_username_never_signs_in(directory: LdapDirectory, username: str) -> None:
    assert directory.authenticate(username, PASSWORDS["alice"]) is None


def test_empty_password_is_refused_not_taken_as_an_anonymous_bind(
    directory: LdapDirectory,
) -> None:
    assert directory.authenticate("alice", "") is None


def test_user_in_no_role_group_is_refused_with_the_reason_logged(
    directory: LdapDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.ldap_directory")

    assert directory.authenticate("carol", PASSWORDS["carol"]) is None
    assert "'carol'" in caplog.text and "in no role group" in caplog.text


def test_scientist_in_no_instrument_group_is_refused(
    directory: LdapDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autoreduce.ldap_directory")

    assert directory.authenticate("dave", PASSWORDS["dave"]) is None
    assert "no instrument group" in caplog.text


def test_admin_in_no_instrument_group_may_act_on_any_instrument(
    make_directory: MakeDirectory,
) -> None:
    directory = make_directory(instrument_groups={})

    user = directory.authenticate("bob", PASSWORDS["bob"])

    assert user is not None and (user.role, user.instruments) == ("admin", ())


def test_the_strongest_role_wins(make_directory: MakeDirectory, slapd: Slapd) -> None:
    # bob is in both groups when the admin group also counts as a scientist group
    directory = make_directory(
        role_groups={
            "scientist": slapd.group_dn("autoreduce-admins"),
            "admin": slapd.group_dn("autoreduce-admins"),
        }
    )

    user = directory.authenticate("bob", PASSWORDS["bob"])

    assert user is not None and user.role == "admin"


def test_stopped_server_raises_directory_unavailable(tmp_path: Path) -> None:
    server = start_slapd(tmp_path / "slapd")
    directory = LdapDirectory(ldap_settings(server, "template"))
    assert directory.authenticate("alice", PASSWORDS["alice"]) is not None

    server.stop()

    with pytest.raises(DirectoryUnavailable, match="the directory is unreachable"):
        directory.authenticate("alice", PASSWORDS["alice"])


@pytest.mark.parametrize("mode", ["template", "search"])
def test_nothing_listening_raises_directory_unavailable(slapd: Slapd, mode: str) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    directory = LdapDirectory(ldap_settings(slapd, mode, url=dead))

    with pytest.raises(DirectoryUnavailable, match=r"unreachable.*Connection refused"):
        directory.authenticate("alice", PASSWORDS["alice"])


@pytest.mark.parametrize("transport", ["ldaps", "start_tls"])
def test_a_certificate_for_another_name_is_not_trusted(tls_slapd: Slapd, transport: str) -> None:
    # the certificate names localhost; the URL names 127.0.0.1
    url = tls_slapd.ldaps_url if transport == "ldaps" else tls_slapd.localhost_url
    tls = {"url": url.replace("//localhost:", "//127.0.0.1:"), "ca_file": tls_slapd.ca_file}
    directory = LdapDirectory(
        ldap_settings(tls_slapd, "template", start_tls=transport != "ldaps", **tls)
    )

    with pytest.raises(DirectoryUnavailable, match=r"does not name 127\.0\.0\.1"):
        directory.authenticate("alice", PASSWORDS["alice"])


def test_a_server_that_never_answers_times_out_as_unavailable(slapd: Slapd) -> None:
    # a listening socket nobody reads: the connection opens, the bind is never answered
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        directory = LdapDirectory(ldap_settings(slapd, "template", url=url, receive_timeout_s=1))
        outcome: list[BaseException | DirectoryUser | None] = []

        def sign_in() -> None:
            try:
                outcome.append(directory.authenticate("alice", PASSWORDS["alice"]))
            except DirectoryUnavailable as error:
                outcome.append(error)

        attempt = threading.Thread(target=sign_in, daemon=True)
        attempt.start()
        attempt.join(timeout=60)

    assert not attempt.is_alive(), "the sign-in waited for ever"
    assert isinstance(outcome[0], DirectoryUnavailable)


def test_the_next_server_is_tried_when_the_first_is_down(slapd: Slapd) -> None:
    urls = f"ldap://127.0.0.1:{free_port()} {slapd.url}"
    directory = LdapDirectory(ldap_settings(slapd, "search", url=urls))

    user = directory.authenticate("alice", PASSWORDS["alice"])

    assert user is not None and user.role == "scientist"


def test_service_account_with_a_wrong_password_makes_the_directory_unavailable(
    slapd: Slapd,
) -> None:
    directory = LdapDirectory(ldap_settings(slapd, "search", bind_password="not-the-password"))

    with pytest.raises(DirectoryUnavailable, match="service account"):
        directory.authenticate("alice", PASSWORDS["alice"])


@pytest.mark.parametrize("base", ["user_search_base", "group_search_base"])
def test_a_search_base_that_does_not_exist_is_a_configuration_error_not_no_such_user(
    slapd: Slapd, base: str
) -> None:
    directory = LdapDirectory(
        ldap_settings(slapd, "search", **{base: "ou=nowhere,dc=example,dc=org"})
    )

    with pytest.raises(DirectoryUnavailable, match=r"search under ou=nowhere.*noSuchObject"):
        directory.authenticate("alice", PASSWORDS["alice"])


def test_start_tls_refused_by_a_server_without_tls_makes_it_unavailable(slapd: Slapd) -> None:
    directory = LdapDirectory(ldap_settings(slapd, "template", start_tls=True))

    with pytest.raises(DirectoryUnavailable):
        directory.authenticate("alice", PASSWORDS["alice"])


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A slapd with a certificate from a CA of its own: ldaps:// and StartTLS."""
    server = start_slapd(tmp_path_factory.mktemp("slapd-tls"), tls=True)
    try:
        yield server
    finally:
        server.stop()


def test_ldaps_with_the_servers_ca_signs_in(tls_slapd: Slapd) -> None:
    settings = ldap_settings(
        tls_slapd, "search", url=tls_slapd.ldaps_url, ca_file=tls_slapd.ca_file
    )

    user = LdapDirectory(settings).authenticate("alice", PASSWORDS["alice"])

    assert user is not None and user.role == "scientist"


def test_start_tls_with_the_servers_ca_signs_in(tls_slapd: Slapd) -> None:
    settings = ldap_settings(
        tls_slapd,
        "template",
        url=tls_slapd.localhost_url,
        start_tls=True,
        ca_file=tls_slapd.ca_file,
    )

    user = LdapDirectory(settings).authenticate("bob", PASSWORDS["bob"])

    assert user is not None and user.role == "admin"


@pytest.mark.parametrize("transport", ["ldaps", "start_tls"])
def test_a_certificate_from_an_unknown_ca_is_not_trusted(tls_slapd: Slapd, transport: str) -> None:
    # the system's CAs (no ca_file) never signed the test CA's certificate
    if transport == "ldaps":
        tls: dict[str, Any] = {"url": tls_slapd.ldaps_url}
    else:
        tls = {"url": tls_slapd.localhost_url, "start_tls": True}
    directory = LdapDirectory(ldap_settings(tls_slapd, "template", **tls))

    with pytest.raises(DirectoryUnavailable, match="certificate verify failed"):
        directory.authenticate("alice", PASSWORDS["alice"])


def test_no_password_ever_reaches_the_log(
    slapd: Slapd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    directory = LdapDirectory(ldap_settings(slapd, "search"))
    wrong_service = LdapDirectory(ldap_settings(slapd, "search", bind_password="svc-Wrong-9"))
    down = LdapDirectory(ldap_settings(slapd, "search", url=f"ldap://127.0.0.1:{free_port()}"))

    directory.authenticate("alice", PASSWORDS["alice"])
    directory.authenticate("alice", "alice-Wrong-7")
    directory.authenticate("carol", PASSWORDS["carol"])
    for unusable in (wrong_service, down):
        with pytest.raises(DirectoryUnavailable) as raised:
            unusable.authenticate("alice", PASSWORDS["alice"])
        assert PASSWORDS["alice"] not in str(raised.value)

    assert caplog.records, "the attempts were logged"
    for secret in (*PASSWORDS.values(), "alice-Wrong-7", "svc-Wrong-9"):
        assert secret not in caplog.text
