"""The JSON bodies of variable rules and of re-runs that say what they change (batches too)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from rest_api.schemas import (
    BASE_DESCRIPTION,
    BASE_PATTERN,
    MAX_RUN_NUMBER,
    JsonObject,
    Text,
)

RunNumberField = Annotated[int, Field(ge=0, le=MAX_RUN_NUMBER)]
MAX_LISTED_RUNS = 10_000


class VariableRuleRequest(BaseModel):
    """A rule: values for every run of one experiment, or for every run from one run on."""

    model_config = ConfigDict(extra="forbid")

    experiment_ref: Text | None = Field(
        None, min_length=1, max_length=64, description="For every run of this experiment."
    )
    from_run: RunNumberField | None = Field(None, description="For this run and every later one.")
    variables: JsonObject = Field(
        min_length=1, description="The values, validated against the plugin's declarations."
    )
    reason: Text = Field("", max_length=500, description="Why the rule is set.")

    @model_validator(mode="after")
    def _one_scope(self) -> VariableRuleRequest:
        if (self.experiment_ref is None) == (self.from_run is None):
            raise ValueError("give exactly one of experiment_ref and from_run")
        return self


class VariableRuleItem(BaseModel):
    id: int
    instrument: str
    experiment_ref: str | None
    from_run: int | None
    variables: dict[str, Any]
    reason: str
    created_by: str
    created_at: datetime


class BatchRerunRequest(BaseModel):
    """Re-run many runs of one instrument: a list, a range, an experiment, a search or a failure."""

    model_config = ConfigDict(extra="forbid")

    instrument: Text = Field(min_length=1, max_length=32)
    runs: list[RunNumberField] | None = Field(
        None, min_length=1, max_length=MAX_LISTED_RUNS, description="These run numbers."
    )
    run_min: RunNumberField | None = Field(None, description="With run_max: a range, inclusive.")
    run_max: RunNumberField | None = None
    experiment_ref: Text | None = Field(
        None, min_length=1, max_length=64, description="Every run of this experiment."
    )
    q: Text | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Every run of the instrument with a version matching this search (the "
        "search grammar of `GET /api/v1/runs?q=`).",
    )
    failure: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{12}$",
        description="Every run of the instrument with a version in Error with this fingerprint "
        "(a group of `GET /api/v1/failures`).",
    )
    variables: JsonObject = Field(
        default_factory=dict, description="Values to change over each run's base."
    )
    base: str = Field("latest", pattern=BASE_PATTERN, description=BASE_DESCRIPTION)
    reason: Text = Field("", max_length=500, description="Why; kept as each version's description.")
    dry_run: StrictBool = Field(False, description="Answer what it would do (200); queue nothing.")
    supersede: StrictBool = Field(
        False,
        description="Cancel a run's Queued latest version instead of refusing the run "
        "(a Processing one is refused even so).",
    )

    @model_validator(mode="after")
    def _one_selection(self) -> BatchRerunRequest:
        ranged = self.run_min is not None or self.run_max is not None
        chosen = [self.runs is not None, ranged]
        chosen += [value is not None for value in (self.experiment_ref, self.q, self.failure)]
        if chosen.count(True) != 1:
            raise ValueError(
                "give exactly one of runs, run_min with run_max, experiment_ref, q, failure"
            )
        if ranged and (self.run_min is None or self.run_max is None):
            raise ValueError("a range needs both run_min and run_max")
        if ranged and self.run_min > self.run_max:  # type: ignore[operator]
            raise ValueError("run_min is greater than run_max")
        return self


class RerunPlanItem(BaseModel):
    """One run of a re-run: the version made (or that a dry run would make), or why not."""

    run_number: int
    run_version: int | None = Field(description="The new version; null when refused.")
    status: str = Field(
        description="The new version's state (`Queued` … `Cancelled`), or `Refused`."
    )
    message: str = Field("", description="The new version's message, or why it was refused.")
    derived_from_version: int | None
    superseded_version: int | None = Field(
        None, description="The Queued version this one cancelled (supersede)."
    )
    variables: dict[str, Any]
    variable_sources: dict[str, str]
    differences: dict[str, dict[str, Any]] | None = Field(
        None,
        description="`{name: {from, to}}` against the version it derives from (for `current`, "
        "the latest); null when read back with GET.",
    )


class BatchItem(BaseModel):
    """A batch re-run: its id (null on a dry run) and each run's version and state."""

    id: int | None
    instrument: str
    dry_run: bool
    submitted_by: str
    created_at: datetime | None
    reason: str
    base: str
    changes: dict[str, Any]
    runs: list[RerunPlanItem]
