"""Outputs: download a file a reduction produced (reduced data, plot, log)."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterator
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from autoreduce.db.models import RetentionCleanup, RunOutput
from autoreduce.storage import NotInStore, ObjectStore, StoreError
from rest_api.auth import ReaderDep
from rest_api.dependencies import SessionDep, StateDep
from rest_api.problems import problems

router = APIRouter(prefix="/api/v1/outputs", tags=["outputs"])

MEDIA_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".nxs": "application/x-hdf5",
    ".h5": "application/x-hdf5",
}


def media_type(path: FilePath) -> str:
    """The media type of an output from its extension (PNG is always image/png)."""
    known = MEDIA_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def output_path(output_dir: str, name: str) -> FilePath | None:
    """``name`` inside ``output_dir``; None if it is missing or resolves outside that directory."""
    if not output_dir or not name:
        return None
    try:
        root = FilePath(output_dir).resolve()
        target = (root / name).resolve()
        if not target.is_relative_to(root) or target == root or not target.is_file():
            return None
    except (OSError, ValueError):  # NUL bytes, loops, permissions
        return None
    return target


def retention_removal(session: Session, run_id: int) -> str | None:
    """Why a run version's log is gone when the retention clean-up removed it, else None."""
    cleanup = session.get(RetentionCleanup, run_id)
    if cleanup is None or not (cleanup.files or cleanup.log_lines):  # it had nothing to remove
        return None
    return (
        f"log removed by retention on {cleanup.cleaned_at:%Y-%m-%d}; the run, its reduced data "
        "and plots remain"
    )


def stored_response(
    store: ObjectStore | None,
    base_url: str,
    name: str,
    media: str,
    label: str,
    removed: Callable[[], str | None] = lambda: None,
) -> Response:
    """Stream ``name`` of the run published at ``base_url`` from the object store.

    404 when absent (or the URL is not under this instance's store prefix) — 410 when
    ``removed()`` says why (the retention clean-up deleted it) —, 503 when the store
    cannot be reached. The file is streamed through the API, not redirected to a presigned URL:
    the store's endpoint need not be reachable by clients, and access stays checked here.
    """
    if store is None:
        raise HTTPException(status_code=404, detail=f"{label} is in an object store; none is set")
    try:
        stored = store.open_output(base_url, name)
    except (NotInStore, ValueError):
        if (why := removed()) is not None:
            raise HTTPException(status_code=410, detail=f"{label}: {why}") from None
        raise HTTPException(status_code=404, detail=f"{label} not found") from None
    except StoreError as error:
        raise HTTPException(status_code=503, detail=f"the object store failed: {error}") from None

    def chunks() -> Iterator[bytes]:
        try:
            yield from stored.chunks
        finally:
            stored.close()

    filename = FilePath(name).name
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers={
            "Content-Length": str(stored.size),
            "Content-Disposition": f'inline; filename="{_header_safe(filename)}"',
        },
    )


def _header_safe(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


OutputId = Annotated[
    str,
    Path(
        pattern=r"^[1-9][0-9]{0,17}$",
        description="The output's id: decimal digits only (`+1`, `01` and `1.0` are refused).",
    ),
]


@router.get(
    "/{output_id}",
    response_class=FileResponse,
    responses={200: {"description": "The file."}, **problems(401, 404, 410, 503)},
)
def download_output(
    output_id: OutputId, session: SessionDep, state: StateDep, caller: ReaderDep
) -> Response:
    """The output file; 404 if unknown, gone, outside its run's output directory, or of an
    instrument the caller may not read; 410 if the retention clean-up removed it (a log).
    Outputs in the object store are streamed from it."""
    output = session.get(RunOutput, int(output_id))
    readable = output is not None and caller.may_read_run(output.run)
    if output is not None and readable and output.run.output_dir.startswith("s3://"):
        label = f"output {output_id}"
        media = media_type(FilePath(output.name))
        run_id = output.run_id
        return stored_response(
            state.store,
            output.run.output_dir,
            output.name,
            media,
            label,
            removed=lambda: retention_removal(session, run_id),
        )
    target = None
    if output is not None and readable:
        target = output_path(output.run.output_dir, output.name)
        if target is None and (removed := retention_removal(session, output.run_id)):
            raise HTTPException(status_code=410, detail=f"output {output_id}: {removed}")
    if target is None:
        raise HTTPException(status_code=404, detail=f"output {output_id} not found")
    return FileResponse(
        target,
        media_type=media_type(target),
        filename=target.name,
        content_disposition_type="inline",
    )
