"""Uploads: put a file in the store (``POST /api/v1/uploads``) for a job to reduce.

The multipart body is parsed as it arrives (python-multipart's streaming parser), never held
in memory: the one file part is written to a temporary file under the data directory while its
SHA-256 is computed, and the request is refused 413 as soon as it passes ``max_upload_bytes``
(or at once when its ``Content-Length`` says it will). The file then goes to the store
(``storage``: the S3 bucket, or data_dir/uploads) under a random id; the client's file name is
kept for display only and never reaches a path or a key.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from autoreduce.audit import record_event
from autoreduce.db.models import Upload, utcnow
from autoreduce.storage import StoreError, save_upload
from rest_api.auth import Caller, ReaderDep, require_role
from rest_api.dependencies import SessionDep, StateDep
from rest_api.problems import problems

logger = logging.getLogger("autoreduce.api")
router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])

UPLOAD_PATH = "/api/v1/uploads"
MULTIPART_SLACK_BYTES = 64 * 1024  # boundaries and part headers around the file
FILE_FIELD = "file"


class UploadItem(BaseModel):
    id: str
    filename: str
    size_bytes: int
    sha256: str
    created_by: str
    created_at: datetime
    removed_at: datetime | None = Field(
        None, description="When the retention clean-up removed its file (no job may name it)."
    )


def upload_item(row: Upload) -> UploadItem:
    return UploadItem(
        id=row.id,
        filename=row.filename,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        created_by=row.created_by,
        created_at=row.created_at,
        removed_at=row.removed_at,
    )


class _TooLarge(Exception):
    pass


class _FilePart:
    """Receives the parser's callbacks: the ``file`` part into ``target``, hashed and counted."""

    def __init__(self, target: Any, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self.filename = ""
        self.files = 0
        self.problem = ""
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._writing = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def _begin(self) -> None:
        self._headers, self._writing = {}, False

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != FILE_FIELD or b"filename" not in options:
            self.problem = (
                self.problem
                or f"unexpected form field {name[:50]!r}: send one file part named 'file'"
            )
            return
        self.files += 1
        if self.files > 1:
            self.problem = "send exactly one file part named 'file'"
            return
        raw = options[b"filename"].decode("utf-8", "replace")
        self.filename = raw.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")[:255]
        self._writing = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.limit:
            raise _TooLarge
        self.digest.update(chunk)
        self.target.write(chunk)

    def _end(self) -> None:
        self._writing = False


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"the upload is larger than the limit of {limit} bytes (setting max_upload_bytes)",
        headers={"Connection": "close"},
    )


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise HTTPException(
            status_code=415, detail="send the file as multipart/form-data with a boundary"
        )
    return options[b"boundary"]


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                    "additionalProperties": False,
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=UploadItem,
    responses=problems(400, 401, 403, 413, 415, 503),
    openapi_extra=UPLOAD_BODY,
)
async def create_upload(
    request: Request,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("scientist", "admin"))],
) -> UploadItem:
    """Store one file (multipart field `file`) for jobs to reduce: its id, size and SHA-256.

    Over `max_upload_bytes` is a 413 problem, sent as soon as the limit is passed."""
    limit = state.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK_BYTES:
        raise _too_large(limit)
    boundary = _boundary(request)
    scratch = state.settings.data_dir / "upload-tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, prefix="upload-") as target:
        part = _FilePart(target, limit)
        parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except _TooLarge:
            raise _too_large(limit) from None
        except MultipartParseError as error:
            raise HTTPException(
                status_code=400, detail=f"malformed multipart body: {error}"
            ) from None
        if part.problem or part.files != 1:
            raise HTTPException(status_code=400, detail=part.problem or "no file part named 'file'")
        target.flush()
        upload_id = secrets.token_hex(16)
        try:
            location = await run_in_threadpool(_store, state, upload_id, FilePath(target.name))
        except StoreError as error:
            logger.error("storing upload %s failed: %s", upload_id, error)
            raise HTTPException(
                status_code=503, detail=f"the store refused the upload: {error}"
            ) from None
    row = Upload(
        id=upload_id,
        filename=part.filename or "upload",
        size_bytes=part.size,
        sha256=part.digest.hexdigest(),
        location=location,
        created_by=caller.name,
        created_at=utcnow(),
    )
    with state.database.session() as session:
        session.add(row)
        record_event(
            session,
            caller.actor,
            "upload.create",
            f"upload {upload_id}",
            details={"size_bytes": row.size_bytes, "sha256": row.sha256},
        )
    logger.info("stored upload %s (%d bytes) for %s", upload_id, row.size_bytes, caller.name)
    return upload_item(row)


def _store(state: Any, upload_id: str, path: FilePath) -> str:
    if state.store is not None:
        state.store.ensure_bucket()
    return save_upload(state.settings, state.store, upload_id, path)


UploadId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{32}$", description="The upload's id (32 hex digits).")
]


@router.get("/{upload_id}", response_model=UploadItem, responses=problems(401, 404))
def get_upload(upload_id: UploadId, session: SessionDep, caller: ReaderDep) -> UploadItem:
    """An upload's name, size and SHA-256."""
    row = session.get(Upload, upload_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"upload {upload_id} not found")
    return upload_item(row)
