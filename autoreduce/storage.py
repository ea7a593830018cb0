"""Where outputs, logs and uploads live: a directory (``storage = "file"``) or an S3 store.

With ``storage = "s3://bucket/prefix"`` a processor reduces into its own local scratch
directory (``outputs``) and, when the run ends, *publishes* the run's files to the store: each
file is uploaded under a key unique to that attempt (``<prefix>/runs/<instrument>/<run>/v<version>
/a<attempt>-<token>/<name>``), then a ``manifest.json`` listing them (size and SHA-256) is written
last, then the database records the run with that attempt's base URL in ``output_dir`` and its
output rows, in one transaction. Readers (the API) only serve names the database lists under the
base it recorded, so an attempt whose upload failed half-way is never visible: its keys are
deleted (best effort) and the run is retried. Nothing a client or plugin sends chooses a key
outside the configured prefix: every component is checked and every key is built under it.

The library is boto3: the most used S3 client for Python, maintained by AWS, with managed
multipart transfers (``upload_fileobj`` / ``download_fileobj``), bucket creation (obstore cannot
create buckets) and presigned URLs; its synchronous API fits the processor and the API's
thread-pool routes. Credentials go to the client only: they are never in a URL, a log line or
an error message (botocore's errors name the bucket and key, not the keys).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from autoreduce.paths import UnsafePathError, safe_component
from autoreduce.settings import Settings

logger = logging.getLogger("autoreduce.storage")

MANIFEST = "manifest.json"
CHUNK_BYTES = 1024 * 1024


class StoreError(RuntimeError):
    """The object store refused or failed an operation; the message names no secret."""


class NotInStore(StoreError):
    """The key is not in the store (or not under this store's prefix)."""


def object_name(name: str) -> str:
    """An output's relative name as key segments; raise if any segment could escape."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(p in ("", ".", "..") for p in name.split("/")):
        raise UnsafePathError(f"output name {name[:200]!r} cannot be used in a key")
    return str(path)


@dataclass(frozen=True)
class StoredObject:
    """An object being read: its size and an iterator over its bytes (close when done)."""

    size: int
    chunks: Iterator[bytes]
    body: Any

    def close(self) -> None:
        self.body.close()


class ObjectStore:
    """One bucket and key prefix of an S3-compatible store (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        rest = settings.storage.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        for part in self.prefix.split("/") if self.prefix else []:
            safe_component(part, what="storage prefix component")
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint or None,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key.get_secret_value() or None,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value() or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    # --- keys -----------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, url: str) -> str:
        """The key of ``url``; raise :class:`NotInStore` unless it lies under this prefix."""
        head = f"s3://{self.bucket}/" + (f"{self.prefix}/" if self.prefix else "")
        if not url.startswith(head) or ".." in url.split("/"):
            raise NotInStore(f"{url[:200]!r} is not in this store")
        return url.removeprefix(f"s3://{self.bucket}/")

    def _fail(self, what: str, error: Exception) -> StoreError:
        from botocore.exceptions import ClientError

        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotInStore(f"{what}: not found")
            return StoreError(f"{what}: {code or 'refused'}")
        return StoreError(f"{what}: {type(error).__name__}: {str(error)[:200]}")

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError:
            pass
        except BotoCoreError as error:
            raise self._fail(f"bucket {self.bucket}", error) from None
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._fail(f"creating bucket {self.bucket}", error) from None
        except BotoCoreError as error:
            raise self._fail(f"creating bucket {self.bucket}", error) from None

    # --- objects ----------------------------------------------------------------------------
    def put_file(self, key: str, source: IO[bytes] | _Hashing) -> None:
        """Upload ``source`` (multipart when large) to ``key``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_fileobj(source, self.bucket, key)
        except (BotoCoreError, ClientError, OSError) as error:
            raise self._fail(f"uploading {key}", error) from None

    def fetch(self, key: str, destination: Path) -> str:
        """Download ``key`` to ``destination`` (created or replaced); its SHA-256."""
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256()
        try:
            with destination.open("wb") as target:
                self.client.download_fileobj(self.bucket, key, _Hashing(target, digest))
        except (BotoCoreError, ClientError, OSError) as error:
            destination.unlink(missing_ok=True)
            raise self._fail(f"downloading {key}", error) from None
        return digest.hexdigest()

    def open(self, key: str) -> StoredObject:
        """Stream ``key``; raise :class:`NotInStore` if it is absent."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise self._fail(f"reading {key}", error) from None
        body = answer["Body"]
        return StoredObject(int(answer["ContentLength"]), body.iter_chunks(CHUNK_BYTES), body)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        return True

    def objects_under(self, key_prefix: str) -> list[tuple[str, int]]:
        """Every key below ``key_prefix`` and its size, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[tuple[str, int]] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key_prefix.rstrip("/") + "/"):
            found.extend((item["Key"], int(item["Size"])) for item in page.get("Contents", []))
        return found

    def keys_under(self, key_prefix: str) -> list[str]:
        return [key for key, _ in self.objects_under(key_prefix)]

    def delete_keys(self, keys: list[str]) -> list[str]:
        """Delete ``keys`` (1000 a request); the keys the store refused to delete.

        Raise :class:`StoreError` if the store cannot be asked at all."""
        from botocore.exceptions import BotoCoreError, ClientError

        refused: list[str] = []
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (BotoCoreError, ClientError) as error:
                raise self._fail(f"deleting {len(batch)} key(s)", error) from None
            refused.extend(str(item.get("Key", "")) for item in answer.get("Errors", []))
        return refused

    def delete_under(self, key_prefix: str) -> None:
        """Delete every key below ``key_prefix`` (best effort: failures are logged)."""
        try:
            self.delete_keys(self.keys_under(key_prefix))
        except Exception as error:
            logger.warning("could not delete %s: %s", key_prefix, self._fail("deleting", error))

    # --- runs -------------------------------------------------------------------------------
    def run_prefix(self, instrument: str, run_number: int, run_version: int) -> str:
        return self.key(
            "runs",
            safe_component(instrument, what="instrument"),
            safe_component(run_number, what="run number"),
            f"v{safe_component(run_version, what='run version')}",
        )

    def publish(self, run_prefix: str, attempt: int, source_dir: Path, names: list[str]) -> str:
        """Upload ``names`` (relative to ``source_dir``), then the manifest; the base URL.

        Whole or not at all: on any failure the attempt's keys are deleted and
        :class:`StoreError` is raised; nothing refers to them, since the run is recorded only
        after this returns.
        """
        base = f"{run_prefix}/a{attempt}-{uuid.uuid4().hex[:12]}"
        manifest: dict[str, dict[str, object]] = {}
        try:
            for name in names:
                key = f"{base}/{object_name(name)}"
                digest = hashlib.sha256()
                path = source_dir / name
                with path.open("rb") as source:
                    self.put_file(key, _Hashing(source, digest))
                manifest[name] = {"size": path.stat().st_size, "sha256": digest.hexdigest()}
            body = json.dumps({"files": manifest}, sort_keys=True).encode()
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"{base}/{MANIFEST}",
                Body=body,
                ContentType="application/json",
            )
        except Exception as error:
            self.delete_under(base)
            if isinstance(error, StoreError):
                raise
            raise self._fail(f"publishing {base}", error) from None
        return self.url(base)

    def manifest(self, base_url: str) -> dict[str, Any]:
        stored = self.open(f"{self.key_of(base_url)}/{MANIFEST}")
        try:
            return dict(json.loads(b"".join(stored.chunks)))
        finally:
            stored.close()

    def open_output(self, base_url: str, name: str) -> StoredObject:
        return self.open(f"{self.key_of(base_url)}/{object_name(name)}")

    def fetch_output(
        self, base_url: str, name: str, entry: dict[str, Any], destination: Path
    ) -> None:
        """Download the published output ``name`` to ``destination``, checked against its
        manifest ``entry`` (size and SHA-256): raise :class:`StoreError`, the file removed, if
        it is absent or differs."""
        key = f"{self.key_of(base_url)}/{object_name(name)}"
        digest = self.fetch(key, destination)
        size = destination.stat().st_size
        if digest != entry.get("sha256", digest) or size != entry.get("size", size):
            destination.unlink(missing_ok=True)
            raise StoreError(f"downloading {key}: it differs from its manifest entry")

    # --- uploads ------------------------------------------------------------------------------
    def upload_key(self, upload_id: str) -> str:
        return self.key("uploads", safe_component(upload_id, what="upload id"))


class _Hashing:
    """A file object that hashes what is read from it or written to it."""

    def __init__(self, stream: IO[bytes], digest: Any) -> None:
        self.stream = stream
        self.digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.stream.write(data)


def open_store(settings: Settings) -> ObjectStore | None:
    """The object store of ``settings``; None when ``storage = "file"``."""
    if settings.storage == "file":
        return None
    return ObjectStore(settings)


def uploads_dir(settings: Settings) -> Path:
    """Where ``storage = "file"`` keeps uploads."""
    return settings.data_dir / "uploads"


def save_upload(settings: Settings, store: ObjectStore | None, upload_id: str, path: Path) -> str:
    """Keep the uploaded file at ``path``; where it is kept (a key URL, or a file path)."""
    if store is None:
        target_dir = uploads_dir(settings)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / safe_component(upload_id, what="upload id")
        shutil.copyfile(path, target)
        return str(target)
    key = store.upload_key(upload_id)
    with path.open("rb") as source:
        store.put_file(key, source)
    return store.url(key)


def upload_file(settings: Settings, location: str) -> Path:
    """The file of an upload kept with ``storage = "file"``, checked to lie in the uploads
    directory (:class:`UnsafePathError` otherwise)."""
    root = uploads_dir(settings).resolve()
    source = Path(location).resolve()
    if not source.is_relative_to(root) or source == root:
        raise UnsafePathError(f"upload {location[:200]!r} lies outside {root}")
    return source


def fetch_upload(
    settings: Settings, store: ObjectStore | None, location: str, destination: Path
) -> None:
    """Copy an upload kept at ``location`` (see :func:`save_upload`) to ``destination``."""
    if location.startswith("s3://"):
        if store is None:
            raise StoreError("an upload is in an object store but storage is 'file' here")
        store.fetch(store.key_of(location), destination)
        return
    shutil.copyfile(upload_file(settings, location), destination)


def remove_upload(settings: Settings, store: ObjectStore | None, location: str) -> None:
    """Delete an upload's file or object (absent already: done); raise :class:`StoreError`,
    :class:`UnsafePathError` or :class:`OSError` if it cannot be."""
    if location.startswith("s3://"):
        if store is None:
            raise StoreError("an upload is in an object store but storage is 'file' here")
        key = store.key_of(location)
        if store.delete_keys([key]):
            raise StoreError(f"the store refused to delete {key}")
        return
    path = upload_file(settings, location)
    if Path(location).is_symlink() or (path.exists() and not path.is_file()):
        raise UnsafePathError(f"upload {location[:200]!r} is not a regular file")
    path.unlink(missing_ok=True)
