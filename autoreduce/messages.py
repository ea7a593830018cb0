"""The run message: the body every broker carries (DESIGN §4), validated on both ends."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from autoreduce.db.models import ReductionRun

PENDING_QUEUE = "autoreduce.reduction.pending"
DEAD_LETTER_QUEUE = "autoreduce.reduction.dlq"

RunReason = Literal["detected", "rerun", "replay", "job"]


class RunMessage(BaseModel):
    """Schema 1 of the run message; unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal[1] = Field(1, alias="schema")
    run_id: int = Field(gt=0)
    instrument: str = Field(min_length=1, max_length=32)
    run_number: int = Field(ge=0)
    run_version: int = Field(ge=0)
    experiment_ref: str = ""
    data_path: str = Field(min_length=1)
    variables: dict[str, Any] = Field(default_factory=dict)
    reason: RunReason = "detected"
    submitted_at: datetime
    submitted_by: str = ""

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def run_message(run: ReductionRun) -> RunMessage:
    """The message that queues ``run`` (recorded, so its id is known), built from its row."""
    reason = run.reason if run.reason in get_args(RunReason) else "replay"
    return RunMessage(
        schema=1,
        run_id=run.id,
        instrument=run.instrument,
        run_number=run.run_number,
        run_version=run.run_version,
        experiment_ref=run.experiment_ref,
        data_path=run.data_path,
        variables=run.variables or {},
        reason=reason,  # type: ignore[arg-type]
        submitted_at=run.queued_at,
        submitted_by=run.submitted_by,
    )


class InvalidMessage(ValueError):
    """A body that is not a valid run message; ``reason`` is one line for the DLQ header."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_run_message(body: str | bytes) -> RunMessage:
    """Validate a broker body, or raise :class:`InvalidMessage` with a one-line reason."""
    try:
        return RunMessage.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
        )
        raise InvalidMessage(f"invalid run message: {problems}"[:900]) from None
