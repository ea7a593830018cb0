"""Batch re-runs: many runs of one instrument re-run in one transaction, and read back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from rest_api.auth import Caller, ReaderDep, require_role
from rest_api.batches import cancel_batch, preview_batch, read_batch, record_batch
from rest_api.dependencies import SessionDep, StateDep
from rest_api.problems import problems
from rest_api.rerun_schemas import BatchItem, BatchRerunRequest
from rest_api.schemas import CancelRequest

router = APIRouter(prefix="/api/v1/reruns", tags=["reruns"])

BatchId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The batch's id.")]


@router.post(
    "",
    status_code=201,
    response_model=BatchItem,
    responses={
        200: {"model": BatchItem, "description": "A dry run: what the batch would do."},
        **problems(400, 401, 403, 404, 409, 413),
    },
)
def rerun_batch(
    request: BatchRerunRequest,
    response: Response,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("scientist", "admin"))],
) -> BatchItem:
    """Re-run a list, a range, an experiment's runs, the runs a search finds or the runs of one
    failure group, with changed variables (one new version each).

    Runs whose latest version is Queued or Processing are refused with the reason, unless
    `supersede` cancels a Queued one. More runs than the caller's role may re-run is a 422.
    """
    state.instrument_config(request.instrument)
    caller.check_instrument(request.instrument, must_list=caller.role == "scientist")
    if request.dry_run:
        response.status_code = 200
        return preview_batch(state, request, caller)
    return record_batch(state, request, caller)


@router.get("/{batch_id}", response_model=BatchItem, responses=problems(401, 404))
def get_batch(batch_id: BatchId, session: SessionDep, caller: ReaderDep) -> BatchItem:
    """A batch and, for each of its runs, the version it made and that version's state now."""
    return read_batch(session, batch_id, caller)


@router.post("/{batch_id}/cancel", response_model=BatchItem, responses=problems(401, 403, 404, 413))
def cancel_whole_batch(
    batch_id: BatchId,
    request: CancelRequest,
    state: StateDep,
    caller: Annotated[Caller, Depends(require_role("scientist", "admin"))],
) -> BatchItem:
    """Cancel every version of the batch still Queued (at once) or Processing (by its
    processor); the batch as it stands then."""
    return cancel_batch(state, batch_id, caller, request.reason)
