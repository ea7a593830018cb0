"""A real OpenLDAP ``slapd`` for the sign-in tests, on a free port in a temporary directory.

Registered for every suite as a pytest plugin (``tests/conftest.py``), so the integration and
browser suites share one directory per session: the fixture ``slapd`` installs slapd if missing
(``scripts/services.sh start slapd``), writes a ``slapd.conf`` (core, cosine, nis and
inetorgperson schemas, the memberof overlay, one mdb database), starts it on 127.0.0.1, loads the
people and groups below with ``ldapadd`` (so the overlay fills in ``memberOf``) and stops it with
SIGINT at the end of the session.

People (password: :data:`PASSWORDS`): alice (scientist, WISH), bob (admin), carol (in no group),
dave (scientist in no instrument group).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "scripts" / "services.sh"
SCHEMAS = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=autoreduce,{SUFFIX}"

PASSWORDS = {
    "alice": "alice-Secret-1",
    "bob": "bob-Secret-2",
    "carol": "carol-Secret-3",
    "dave": "dave-Secret-4",
    "autoreduce": "service-Secret-5",
}
DISPLAY_NAMES = {
    "alice": "Alice Liddell",
    "bob": "Bob Builder",
    "carol": "Carol Danvers",
    "dave": "Dave Bowman",
}
# group cn -> members (uids)
GROUP_MEMBERS = {
    "autoreduce-admins": ["bob"],
    "scientists": ["alice", "dave"],
    "wish": ["alice"],
    "gem": ["bob"],
}


@dataclass(frozen=True)
class Slapd:
    """A running slapd: its URL, the DNs the tests configure, and how to stop or restart it."""

    url: str
    port: int
    directory: Path
    suffix: str = SUFFIX
    root_dn: str = ROOT_DN
    root_password: str = "root-Secret-0"
    people_dn: str = PEOPLE
    groups_dn: str = GROUPS
    service_dn: str = SERVICE_DN
    service_password: str = PASSWORDS["autoreduce"]
    ldaps_url: str = ""  # with TLS (start_slapd(tls=True)): ldaps://localhost on a port of its own
    ca_file: Path | None = None  # the CA that signed the server's certificate

    @property
    def localhost_url(self) -> str:
        """:attr:`url` by the name its certificate holds (for StartTLS)."""
        return self.url.replace("//127.0.0.1:", "//localhost:")

    @property
    def user_dn_template(self) -> str:
        return f"uid={{username}},{self.people_dn}"

    def group_dn(self, name: str) -> str:
        return f"cn={name},{self.groups_dn}"

    @property
    def pid_file(self) -> Path:
        return self.directory / "slapd.pid"

    def pid(self) -> int | None:
        """The PID of the running slapd, or None when it does not run."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self) -> None:
        """Start slapd on its port and wait until it answers."""
        ldaps = self.ldaps_url.replace("//localhost:", "//127.0.0.1:")
        urls = f"{self.url} {ldaps}".strip()
        subprocess.run(
            [str(slapd_binary()), "-f", str(self.directory / "slapd.conf"), "-h", urls],
            check=True,
            timeout=30,
            capture_output=True,
        )
        wait_for(lambda: self.pid() and port_open(self.port), timeout_s=30, what="slapd's port")

    def stop(self) -> None:
        """Stop slapd with SIGINT and wait for it to exit (its port closed, its PID gone)."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGINT)
        wait_for(lambda: self.pid() is None, timeout_s=30, what="slapd to exit")
        wait_for(lambda: not port_open(self.port), timeout_s=30, what="slapd's port to close")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def slapd_conf(directory: Path, root_password: str, *, tls: bool = False) -> str:
    """A minimal slapd.conf: the schemas, memberof, one mdb database under ``directory``.

    With ``tls``, the certificate and key that :func:`write_certificates` made in ``directory``.
    """
    schemas = "\n".join(
        f"include {SCHEMAS / name}.schema" for name in ("core", "cosine", "nis", "inetorgperson")
    )
    certificates = (
        f"TLSCACertificateFile {directory / 'ca.pem'}\n"
        f"TLSCertificateFile {directory / 'server.pem'}\n"
        f"TLSCertificateKeyFile {directory / 'server.key'}\n"
        if tls
        else ""
    )
    return f"""\
{schemas}
{certificates}pidfile {directory / "slapd.pid"}
argsfile {directory / "slapd.args"}
modulepath {MODULES}
moduleload back_mdb
moduleload memberof
loglevel none

database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {root_password}
directory {directory / "data"}

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint true

access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""


def entries_ldif() -> str:
    """The tree, the people (with their passwords) and the groups, as LDIF for ldapadd."""
    blocks = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: autoreduce\nuserPassword: {PASSWORDS['autoreduce']}",
    ]
    for uid, name in DISPLAY_NAMES.items():
        blocks.append(
            f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n"
            f"sn: {name.split()[-1]}\ndisplayName: {name}\nuserPassword: {PASSWORDS[uid]}"
        )
    for group, members in GROUP_MEMBERS.items():
        lines = [f"dn: cn={group},{GROUPS}", "objectClass: groupOfNames", f"cn: {group}"]
        lines += [f"member: uid={uid},{PEOPLE}" for uid in members]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def slapd_binary() -> Path:
    """Debian's slapd (in /usr/sbin, which a user's PATH may lack)."""
    return Path(shutil.which("slapd") or "/usr/sbin/slapd")


def ensure_slapd_installed() -> None:
    """Install slapd and ldap-utils through the project's script unless both are there."""
    if slapd_binary().exists() and shutil.which("ldapadd"):
        return
    subprocess.run([str(SERVICES), "start", "slapd"], check=True, timeout=600)


def write_certificates(directory: Path) -> Path:
    """A throw-away CA and a certificate it signed for ``localhost`` only; the CA's file.

    Only the name: a client that connects to 127.0.0.1 must refuse the certificate.
    """

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, timeout=60, capture_output=True)

    ca_key, ca, key = directory / "ca.key", directory / "ca.pem", directory / "server.key"
    request, extensions = directory / "server.csr", directory / "server.ext"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=autoreduce test CA", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(key), "-out", str(request))  # fmt: skip
    extensions.write_text("subjectAltName = DNS:localhost\n")
    openssl("x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
            "-out", str(directory / "server.pem"))  # fmt: skip
    return ca


def start_slapd(directory: Path, *, tls: bool = False) -> Slapd:
    """Configure, start and fill a slapd in ``directory``; the caller stops it.

    With ``tls``, it also listens for ``ldaps://`` and offers StartTLS, with a certificate from a
    CA of its own (``ca_file``).
    """
    ensure_slapd_installed()
    (directory / "data").mkdir(parents=True)
    port = free_port()
    server = Slapd(url=f"ldap://127.0.0.1:{port}/", port=port, directory=directory)
    if tls:
        server = replace(
            server,
            ldaps_url=f"ldaps://localhost:{free_port()}/",
            ca_file=write_certificates(directory),
        )
    (directory / "slapd.conf").write_text(slapd_conf(directory, server.root_password, tls=tls))
    server.start()
    try:
        subprocess.run(
            ["ldapadd", "-x", "-H", server.url, "-D", ROOT_DN, "-w", server.root_password],
            input=entries_ldif(),
            text=True,
            check=True,
            timeout=30,
            capture_output=True,
        )
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A real slapd with alice, bob, carol and dave, for the whole session."""
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()
