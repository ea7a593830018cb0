"""The ``[ldap]`` table: the README's example loads, mistakes are refused with their reason.

Every test runs in its own empty working directory (``tests/conftest.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from autoreduce.ldap_directory import LdapDirectory, normalise_dn, username_problem
from autoreduce.settings import ConfigError, LdapSettings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"
GROUPS = {"scientist": "cn=scientists,ou=groups,dc=example,dc=org"}


def readme_ldap_example() -> str:
    """The TOML block of the README's "Signing in with LDAP" section."""
    section = README.read_text().split("### Signing in with LDAP", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README shows an [ldap] example"
    return found.group(1)


def test_ldap_is_off_by_default() -> None:
    settings = load_settings()

    assert not settings.ldap.enabled


def test_the_readmes_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("autoreduce.toml").write_text(readme_ldap_example())
    monkeypatch.setenv("AUTOREDUCE_LDAP__BIND_PASSWORD", "from-the-environment")

    ldap = load_settings().ldap

    assert ldap.enabled and ldap.url.split()[1] == "ldaps://ldap2.example.org"
    assert set(ldap.role_groups) == {"admin", "scientist"}
    assert set(ldap.instrument_groups) == {"WISH", "GEM"}
    assert ldap.bind_password.get_secret_value() == "from-the-environment"
    LdapDirectory(ldap)  # builds without asking any server


def test_the_service_password_is_never_shown() -> None:
    ldap = LdapSettings(
        url="ldap://localhost", user_dn_template="uid={username},dc=x", role_groups=GROUPS,
        bind_password="hunter2-Secret",
    )  # fmt: skip

    assert "hunter2-Secret" not in repr(ldap) and "hunter2-Secret" not in str(ldap.model_dump())


def test_an_unknown_key_in_the_ldap_table_is_refused_with_a_suggestion() -> None:
    Path("autoreduce.toml").write_text('[ldap]\nuser_dn_templat = "uid={username},dc=x"\n')

    with pytest.raises(ConfigError, match=r"unknown key 'ldap.user_dn_templat'.*user_dn_template"):
        load_settings()


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"url": "http://ldap.example.org"}, "must be ldap://host"),
        ({"url": "ldap://host:port"}, "must be ldap://host"),
        ({"url": "ldap://host/dc=x?uid"}, "must be ldap://host"),
        ({"user_dn_template": "", "user_search_base": ""}, "user_dn_template or user_search_base"),
        ({"user_dn_template": "uid=alice,dc=x"}, "must contain {username}"),
        ({"user_search_base": "dc=x", "user_filter": "(uid=*)"}, "must contain {username}"),
        ({"role_groups": {}}, "without them nobody may sign in"),
        ({"role_groups": {"detector": "cn=x"}}, "role 'detector' cannot come from LDAP"),
        ({"instrument_groups": {"wish": "cn=x"}}, "instrument name 'wish'"),
        ({"url": "ldaps://host", "start_tls": True}, "ldaps:// URL is TLS already"),
        ({"connect_timeout_s": 0}, "greater than 0"),
    ],
)
def test_a_bad_ldap_table_is_refused_with_its_reason(options: dict[str, Any], reason: str) -> None:
    table = {
        "url": "ldap://ldap.example.org:389",
        "user_dn_template": "uid={username},ou=people,dc=example,dc=org",
        "role_groups": GROUPS,
        **options,
    }

    with pytest.raises(ValidationError, match=re.escape(reason)):
        LdapSettings(**table)


def test_a_directory_is_not_built_while_ldap_is_off() -> None:
    with pytest.raises(ValueError, match=r"ldap\.url is empty"):
        LdapDirectory(LdapSettings())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("CN=Wish, OU=Groups,dc=example,dc=org", "cn=wish,ou=groups,dc=example,dc=org"),
        ("cn=a\\, b ,dc=x", "cn=a\\, b,dc=x"),
        ("cn=x+uid=y, dc=z", "CN=x+UID=y,DC=z"),
    ],
)
def test_dns_that_name_one_entry_normalise_alike(first: str, second: str) -> None:
    assert normalise_dn(first) == normalise_dn(second)


def test_an_escaped_comma_is_not_a_separator() -> None:
    assert normalise_dn("cn=a\\,ou=b,dc=x") != normalise_dn("cn=a,ou=b,dc=x")


@pytest.mark.parametrize(
    "username", ["", " alice", "alice ", "al\x00ice", "al\nice", "x" * 257]
)  # fmt: skip
def test_malformed_usernames_are_not_sent_to_the_directory(username: str) -> None:
    assert username_problem(username) is not None


@pytest.mark.parametrize("username", ["alice", "Alice.Liddell", "a-b_c", "émile"])
def test_ordinary_usernames_are_asked_about(username: str) -> None:
    assert username_problem(username) is None
