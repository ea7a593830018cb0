"""Database backups: a consistent dump with a manifest, its verification, a restore.

``autoreduce db backup`` writes one gzip-compressed, timestamped dump into the backup directory
and a manifest beside it (engine, SHA-256 and size of the dump, rows per table, schema
revision), then removes dumps older than ``keep_days``. On MariaDB/MySQL the dump is
``mysqldump --single-transaction`` (one consistent snapshot, no table locks), whose rows
are counted from the dump itself as it streams by (:func:`rows_in`); on SQLite it is a copy made
with SQLite's online backup API, counted in the copy. Either way the counts describe
exactly the snapshot in the file, whatever was written meanwhile.

``autoreduce db restore --verify`` checks the dump's checksum against the manifest, restores it
into a scratch database (a MariaDB database with a unique name on the configured server, dropped
afterwards; a temporary file for SQLite) and compares every table's rows and the schema revision
with the manifest. The database password is handed to the MariaDB clients in a defaults file of
mode 0600 in a private temporary directory: never on a command line, in the environment or a log.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

from autoreduce.db import safe_url
from autoreduce.settings import BackupSettings
from autoreduce.state_machine import one_line

logger = logging.getLogger("autoreduce.backup")

DUMP_NAME = re.compile(r"^autoreduce-(?P<stamp>[0-9]{8}T[0-9]{6}Z)\.")
STAMP = "%Y%m%dT%H%M%SZ"
MANIFEST_SUFFIX = ".manifest.json"
SQL_SUFFIX = ".sql.gz"
SQLITE_SUFFIX = ".sqlite.gz"
MANIFEST_FORMAT = 1
DEFINER = re.compile(rb"/\*!50017 DEFINER=`[^`]*`@`[^`]*`\*/ ?")
"""A trigger's ``DEFINER`` clause, dropped from the dump: restoring it as another account (the
scratch database's, or after a move) would need SUPER; without it the restoring account defines
the triggers it creates."""
CHUNK = 1024 * 1024
INSERT = re.compile(rb"^INSERT INTO `(?P<table>[^`]+)` VALUES")
CREATE = re.compile(rb"^CREATE TABLE `(?P<table>[^`]+)` ")
QUOTED = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL)
"""A quoted value as mysqldump writes it (``\'`` and ``\\`` escaped inside)."""
REVISION_VALUE = re.compile(rb"\('(?P<revision>[^'\\]*)'\)")
ROW_SEPARATOR = re.compile(rb"\)\s*,\s*\(")
SCRATCH_NAME_CHARS = 64  # MariaDB's longest database name


class BackupError(Exception):
    """A backup, verification or restore failed; the message says what and why."""


@dataclass
class Manifest:
    """What a dump holds, written beside it as JSON."""

    file: str
    engine: str  # mariadb | sqlite
    created_at: str
    sha256: str
    bytes: int
    tables: dict[str, int]
    schema_revision: str | None
    database: str
    format: int = MANIFEST_FORMAT

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                file=str(document["file"]),
                engine=str(document["engine"]),
                created_at=str(document["created_at"]),
                sha256=str(document["sha256"]),
                bytes=int(document["bytes"]),
                tables={str(k): int(v) for k, v in dict(document["tables"]).items()},
                schema_revision=document.get("schema_revision"),
                database=str(document.get("database", "")),
                format=int(document.get("format", MANIFEST_FORMAT)),
            )
        except FileNotFoundError:
            raise BackupError(f"manifest: {path} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            reason = one_line(str(error), 200)
            raise BackupError(f"manifest: {path} cannot be read: {reason}") from None


@dataclass
class BackupResult:
    dump: Path
    manifest_path: Path
    manifest: Manifest
    pruned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "dump": str(self.dump),
            "manifest": str(self.manifest_path),
            "bytes": self.manifest.bytes,
            "sha256": self.manifest.sha256,
            "schema_revision": self.manifest.schema_revision,
            "tables": self.manifest.tables,
            "rows": sum(self.manifest.tables.values()),
            "pruned": self.pruned,
        }


@dataclass
class Check:
    name: str  # manifest | checksum | restore | row counts | schema revision
    ok: bool
    detail: str


@dataclass
class VerifyResult:
    dump: Path
    checks: list[Check]
    restored_into: str = ""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def reason(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dump": str(self.dump),
            "restored_into": self.restored_into,
            "reason": self.reason,
            "checks": [asdict(check) for check in self.checks],
        }


def manifest_path_of(dump: Path) -> Path:
    """``autoreduce-<stamp>.manifest.json`` beside ``autoreduce-<stamp>.sql.gz``."""
    return dump.with_name(dump.name.split(".", 1)[0] + MANIFEST_SUFFIX)


def engine_of(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend in ("mysql", "mariadb"):
        return "mariadb"
    raise BackupError(f"cannot back up a {backend} database: only SQLite and MariaDB/MySQL")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- MariaDB / MySQL clients -------------------------------------------------------------------


def _option_value(value: str) -> str:
    """A value for a MariaDB option file, quoted so any character survives."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@contextlib.contextmanager
def client_options(url: URL) -> Iterator[Path]:
    """A ``[client]`` defaults file for ``url`` (mode 0600, in a private directory), removed after.

    It carries the user, password, host, port or socket: the clients read the password from it,
    so it never appears on a command line (``/proc/*/cmdline``) or in the environment.
    """
    lines = ["[client]"]
    if url.username:
        lines.append(f"user={_option_value(url.username)}")
    if url.password is not None:
        lines.append(f"password={_option_value(str(url.password))}")
    socket = url.query.get("unix_socket")
    if socket:
        lines.append(f"socket={_option_value(str(socket))}")
    else:
        lines.append(f"host={_option_value(url.host or '127.0.0.1')}")
        lines.append(f"port={int(url.port or 3306)}")
    with tempfile.TemporaryDirectory(prefix="autoreduce-db-") as private:  # mode 0700
        path = Path(private) / "client.cnf"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write("\n".join(lines) + "\n")
        yield path


def client_environment() -> dict[str, str]:
    """This process's environment without what could carry the password to a client's
    ``/proc/PID/environ`` (``AUTOREDUCE_*``, ``MYSQL_PWD``)."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AUTOREDUCE_") and name != "MYSQL_PWD"
    }


def _client_failed(what: str, command: str, returncode: int, stderr: Path) -> BackupError:
    message = stderr.read_text(encoding="utf-8", errors="replace").strip()
    lines = [line for line in message.splitlines() if line.strip()]
    said = one_line(lines[-1], 300) if lines else "no message"
    return BackupError(f"{what}: {command} exited with status {returncode}: {said}")


def rows_in(statement: bytes) -> int:
    """The rows of one whole ``INSERT INTO `t` VALUES (…),(…);`` statement of a dump.

    Quoted values are taken out first, so that only the separators between rows are left to
    count: numbers, NULL and hex literals (``--hex-blob``) hold no parentheses. MySQL's
    mysqldump writes a statement on one line, MariaDB's one row a line; both count the same.
    """
    return len(ROW_SEPARATOR.findall(QUOTED.sub(b"''", statement))) + 1


class DumpCounter:
    """Rows per table and the schema revision of a dump, fed one line at a time.

    mysqldump escapes line breaks inside values (``\\n``), so a quoted value never spans lines
    and a statement ends at the line whose unquoted text ends with ``;``.
    """

    def __init__(self) -> None:
        self.tables: dict[str, int] = {}
        self.revision: str | None = None
        self._table: str | None = None
        self._statement: list[bytes] = []

    def feed(self, line: bytes) -> None:
        if self._table is None:
            if match := CREATE.match(line):
                self.tables.setdefault(match.group("table").decode("utf-8", "replace"), 0)
                return
            if (match := INSERT.match(line)) is None:
                return
            self._table = match.group("table").decode("utf-8", "replace")
            self.tables.setdefault(self._table, 0)
            line = line[match.end() :]
        unquoted = QUOTED.sub(b"''", line)
        self._statement.append(unquoted)
        if self._table == "alembic_version" and (found := REVISION_VALUE.search(line)):
            self.revision = found.group("revision").decode("ascii", "replace")
        if unquoted.rstrip().endswith(b";"):
            statement = b"".join(self._statement)
            self.tables[self._table] += len(ROW_SEPARATOR.findall(statement)) + 1
            self._table, self._statement = None, []


def _dump_mariadb(
    settings_backup: BackupSettings, url: URL, target: Path
) -> tuple[dict[str, int], str | None]:
    """Dump ``url``'s database gzip-compressed into ``target``; its rows per table and revision."""
    if not url.database:
        raise BackupError(f"the database URL {safe_url(str(url))} names no database")
    command = settings_backup.dump_command
    counter = DumpCounter()
    with client_options(url) as options, tempfile.TemporaryFile() as errors_file:
        argv = [
            command,
            f"--defaults-extra-file={options}",  # must come first
            "--single-transaction",
            "--extended-insert",  # many rows per INSERT: rows are counted in the dump
            "--no-autocommit",
            "--skip-add-locks",
            "--skip-lock-tables",
            "--no-tablespaces",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            "--triggers",
            url.database,
        ]
        try:
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=errors_file, env=client_environment()
            )
        except OSError as error:
            raise BackupError(f"dump: cannot run {command}: {error.strerror or error}") from None
        timer = threading.Timer(settings_backup.timeout_s, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            with gzip.open(target, "wb", compresslevel=6) as out:
                for line in process.stdout:
                    line = DEFINER.sub(b"", line)
                    out.write(line)
                    counter.feed(line)
            returncode = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if returncode != 0:
            errors_file.seek(0)
            said = errors_file.read().decode("utf-8", "replace").strip().splitlines()
            last = one_line(said[-1], 300) if said else "no message"
            raise BackupError(f"dump: {command} exited with status {returncode}: {last}")
    if not counter.tables:
        raise BackupError(f"dump: {command} wrote no table of database {url.database!r}")
    return counter.tables, counter.revision


def _feed(process: subprocess.Popen[bytes], source: gzip.GzipFile) -> str:
    """Copy ``source`` into the process's stdin; "" or why the source could not be read."""
    assert process.stdin is not None
    problem = ""
    try:
        while chunk := source.read(CHUNK):
            process.stdin.write(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        if isinstance(error, BrokenPipeError):
            problem = ""  # the client stopped early: its own exit status says why
        else:
            problem = f"the dump cannot be read to its end ({one_line(str(error), 200)})"
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            process.stdin.close()
    return problem


def _restore_mariadb(settings_backup: BackupSettings, url: URL, dump: Path) -> None:
    """Feed the gzip-compressed ``dump`` to the client, into ``url``'s database."""
    command = settings_backup.client_command
    with client_options(url) as options, tempfile.TemporaryDirectory() as scratch:
        stderr = Path(scratch) / "stderr"
        argv = [command, f"--defaults-extra-file={options}", "--batch", str(url.database)]
        with stderr.open("wb") as errors_file:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=errors_file,
                    env=client_environment(),
                )
            except OSError as error:
                raise BackupError(
                    f"restore: cannot run {command}: {error.strerror or error}"
                ) from None
            timer = threading.Timer(settings_backup.timeout_s, process.kill)
            timer.start()
            try:
                with gzip.open(dump, "rb") as source:
                    problem = _feed(process, source)
                returncode = process.wait()
            finally:
                timer.cancel()
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if problem:
            raise BackupError(f"restore: {problem}")
        if returncode != 0:
            raise _client_failed("restore", command, returncode, stderr)


def _server_engine(url: URL) -> Any:
    return create_engine(url.set(database=""), isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@contextlib.contextmanager
def scratch_mariadb(url: URL) -> Iterator[URL]:
    """A new, empty database on ``url``'s server with a unique name; dropped afterwards."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", url.database or "autoreduce")
    suffix = f"_verify_{uuid.uuid4().hex[:10]}"
    name = base[: SCRATCH_NAME_CHARS - len(suffix)] + suffix
    server = _server_engine(url)
    try:
        with server.connect() as connection:
            connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        try:
            yield url.set(database=name)
        finally:
            with server.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        server.dispose()


# --- counting ----------------------------------------------------------------------------------


def _count_rows(url: str) -> tuple[dict[str, int], str | None]:
    """Rows per table and the schema revision of the database at ``url``."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            names = inspect(connection).get_table_names()
            counts = {
                name: int(connection.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one())
                if engine.dialect.name == "sqlite"
                else int(connection.execute(text(f"SELECT COUNT(*) FROM `{name}`")).scalar_one())
                for name in names
            }
            revision = None
            if "alembic_version" in names:
                revision = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
    finally:
        engine.dispose()
    return counts, revision


def _sqlite_counts(path: Path) -> tuple[dict[str, int], str | None]:
    return _count_rows(f"sqlite:///{path}")


def _sqlite_file(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("cannot back up an in-memory SQLite database")
    return Path(url.database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy the SQLite database ``source`` into ``target`` with the online backup API."""
    if not source.is_file():
        raise BackupError(f"dump: the SQLite database {source} does not exist")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    except sqlite3.Error as error:
        raise BackupError(f"dump: SQLite backup of {source} failed: {error}") from None
    finally:
        dst.close()
        src.close()
    dst = sqlite3.connect(target)
    try:
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()


# --- backup ------------------------------------------------------------------------------------


def backup(
    database_url: str,
    backup_settings: BackupSettings,
    directory: Path,
    keep_days: int,
    now: datetime | None = None,
) -> BackupResult:
    """Dump the database into ``directory``, write its manifest, prune old dumps.

    Nothing is pruned unless the new dump and its manifest are complete; a failed dump leaves
    no file behind.

    Raises:
        BackupError: the dump failed; the message says what.
    """
    now = now or datetime.now(UTC)
    url = make_url(database_url)
    engine = engine_of(database_url)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"dump: cannot create {directory}: {error.strerror}") from None
    stem = f"autoreduce-{now.strftime(STAMP)}"
    dump = directory / (stem + (SQL_SUFFIX if engine == "mariadb" else SQLITE_SUFFIX))
    partial = directory / f".{dump.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        if engine == "mariadb":
            tables, revision = _dump_mariadb(backup_settings, url, partial)
            database = str(url.database)
        else:
            source = _sqlite_file(url)
            with tempfile.TemporaryDirectory(dir=directory, prefix=".sqlite-") as scratch:
                copy = Path(scratch) / "copy.db"
                _sqlite_copy(source, copy)
                tables, revision = _sqlite_counts(copy)
                with copy.open("rb") as raw, gzip.open(partial, "wb", compresslevel=6) as out:
                    shutil.copyfileobj(raw, out, CHUNK)
            database = source.name
        manifest = Manifest(
            file=dump.name,
            engine=engine,
            created_at=now.isoformat(),
            sha256=sha256_of(partial),
            bytes=partial.stat().st_size,
            tables=dict(sorted(tables.items())),
            schema_revision=revision,
            database=database,
        )
        os.replace(partial, dump)
        manifest_path = manifest_path_of(dump)
        written = manifest_path.with_name(f".{manifest_path.name}.partial")
        written.write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
        os.replace(written, manifest_path)
    except OSError as error:
        raise BackupError(f"dump: writing into {directory} failed: {error}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    pruned = prune(directory, keep_days, now, keep={dump.name, manifest_path.name})
    return BackupResult(dump, manifest_path, manifest, pruned)


def newest_dump(directory: Path) -> Path:
    """The newest dump (by its stamp) in ``directory``; BackupError if there is none."""
    dumps = sorted(
        (path for path in directory.glob("autoreduce-*.gz") if DUMP_NAME.match(path.name)),
        key=lambda path: path.name,
    )
    if not dumps:
        raise BackupError(f"no dump (autoreduce-<stamp>.*.gz) in {directory}")
    return dumps[-1]


def prune(directory: Path, keep_days: int, now: datetime, keep: set[str]) -> list[str]:
    """Remove this command's files (``autoreduce-<stamp>.*``) stamped over ``keep_days`` ago.

    Only regular files whose name carries the stamp are touched (a symlink is left alone).
    """
    cutoff = now - timedelta(days=keep_days)
    removed = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        match = DUMP_NAME.match(entry.name)
        if match is None or entry.name in keep or not entry.is_file(follow_symlinks=False):
            continue
        stamped = datetime.strptime(match.group("stamp"), STAMP).replace(tzinfo=UTC)
        if stamped < cutoff:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


# --- verification and restore ------------------------------------------------------------------


def _compare(manifest: Manifest, counts: dict[str, int], revision: str | None) -> list[Check]:
    differences = []
    for table, expected in manifest.tables.items():
        got = counts.get(table)
        if got is None:
            differences.append(f"{table} missing")
        elif got != expected:
            differences.append(f"{table} has {got} rows, the manifest {expected}")
    extra = sorted(set(counts) - set(manifest.tables))
    differences += [f"{table} is not in the manifest" for table in extra]
    more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
    rows = Check(
        "row counts",
        not differences,
        "; ".join(differences[:5]) + more
        if differences
        else f"{len(counts)} tables, {sum(counts.values())} rows as in the manifest",
    )
    schema = Check(
        "schema revision",
        revision == manifest.schema_revision,
        f"{revision}"
        if revision == manifest.schema_revision
        else f"restored {revision}, the manifest {manifest.schema_revision}",
    )
    return [rows, schema]


def _checksum(dump: Path, manifest: Manifest) -> Check:
    try:
        size = dump.stat().st_size
        digest = sha256_of(dump)
    except OSError as error:
        return Check("checksum", False, f"{dump} cannot be read: {error.strerror}")
    if digest != manifest.sha256:
        what = "truncated" if size < manifest.bytes else "corrupted"
        return Check(
            "checksum",
            False,
            f"SHA-256 {digest[:16]}… differs from the manifest's {manifest.sha256[:16]}… "
            f"({size} bytes, the manifest {manifest.bytes}): the dump is {what}",
        )
    return Check("checksum", True, f"SHA-256 {digest[:16]}… as in the manifest")


def _decompress_sqlite(dump: Path, target: Path) -> None:
    try:
        with gzip.open(dump, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise BackupError(
            f"the dump cannot be read to its end ({one_line(str(error), 200)})"
        ) from None
    connection = sqlite3.connect(target)
    try:
        verdict = connection.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"the restored file is not a SQLite database: {error}") from None
    finally:
        connection.close()
    if verdict is None or verdict[0] != "ok":
        raise BackupError(f"SQLite integrity check failed: {verdict and verdict[0]}")


def verify(dump: Path, database_url: str, backup_settings: BackupSettings) -> VerifyResult:
    """Check ``dump`` against its manifest and restore it into a scratch database.

    A dump of SQLite is restored into a temporary file; a dump of MariaDB/MySQL into a new
    database on the server of ``database_url`` (its user needs ``CREATE`` and ``DROP`` on
    databases named ``<database>_verify_*``), dropped afterwards.
    """
    result = VerifyResult(dump, [])
    try:
        manifest = Manifest.read(manifest_path_of(dump))
    except BackupError as error:
        result.checks.append(Check("manifest", False, str(error).removeprefix("manifest: ")))
        return result
    result.checks.append(Check("manifest", True, f"{manifest.engine} dump, {manifest.created_at}"))
    result.checks.append(_checksum(dump, manifest))
    try:
        if manifest.engine == "sqlite":
            with tempfile.TemporaryDirectory(prefix="autoreduce-verify-") as scratch:
                restored = Path(scratch) / "restored.db"
                result.restored_into = "a temporary SQLite file"
                _decompress_sqlite(dump, restored)
                counts, revision = _sqlite_counts(restored)
        else:
            if engine_of(database_url) != "mariadb":
                raise BackupError(
                    "a MariaDB/MySQL dump is verified on a MariaDB/MySQL server; the configured "
                    f"database is {make_url(database_url).get_backend_name()}"
                )
            with scratch_mariadb(make_url(database_url)) as scratch_url:
                result.restored_into = f"scratch database {scratch_url.database} (dropped)"
                _restore_mariadb(backup_settings, scratch_url, dump)
                counts, revision = _count_rows(scratch_url.render_as_string(hide_password=False))
    except BackupError as error:
        result.checks.append(Check("restore", False, str(error).removeprefix("restore: ")))
        return result
    except Exception as error:  # the server refused (privileges, unreachable): say so
        cause = getattr(error, "orig", None) or error
        result.checks.append(Check("restore", False, one_line(str(cause), 300)))
        return result
    result.checks.append(Check("restore", True, f"restored into {result.restored_into}"))
    result.checks.extend(_compare(manifest, counts, revision))
    return result


def restore(dump: Path, into_url: str, backup_settings: BackupSettings) -> VerifyResult:
    """Restore ``dump`` into the database at ``into_url``, replacing its tables.

    The dump's checksum is checked first (nothing is touched if it differs); afterwards the
    restored rows are compared with the manifest.
    """
    result = VerifyResult(dump, [], restored_into=safe_url(into_url))
    try:
        manifest = Manifest.read(manifest_path_of(dump))
    except BackupError as error:
        result.checks.append(Check("manifest", False, str(error).removeprefix("manifest: ")))
        return result
    result.checks.append(Check("manifest", True, f"{manifest.engine} dump, {manifest.created_at}"))
    result.checks.append(_checksum(dump, manifest))
    if not result.ok:
        return result
    target = make_url(into_url)
    try:
        if engine_of(into_url) != manifest.engine:
            raise BackupError(
                f"a {manifest.engine} dump cannot be restored into a "
                f"{target.get_backend_name()} database"
            )
        if manifest.engine == "sqlite":
            path = _sqlite_file(target)
            with tempfile.TemporaryDirectory(prefix="autoreduce-restore-") as scratch:
                restored = Path(scratch) / "restored.db"
                _decompress_sqlite(dump, restored)
                path.parent.mkdir(parents=True, exist_ok=True)
                src, dst = sqlite3.connect(restored), sqlite3.connect(path, timeout=30)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
                    src.close()
        else:
            _restore_mariadb(backup_settings, target, dump)
        counts, revision = _count_rows(into_url)
    except BackupError as error:
        result.checks.append(Check("restore", False, str(error).removeprefix("restore: ")))
        return result
    except Exception as error:
        cause = getattr(error, "orig", None) or error
        result.checks.append(Check("restore", False, one_line(str(cause), 300)))
        return result
    result.checks.append(Check("restore", True, f"restored into {safe_url(into_url)}"))
    result.checks.extend(_compare(manifest, counts, revision))
    return result
