"""The pipeline files in ``pipelines_dir``: their steps, or why a file does not load."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from autoreduce.pipelines import PipelineError, load_pipeline, pipeline_names
from rest_api.auth import ReaderDep
from rest_api.dependencies import StateDep
from rest_api.problems import problems

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"])


class PipelineStepItem(BaseModel):
    name: str
    plugin: str | None = Field(description="The step's plugin (null for a command step).")
    command: list[str] | str | None = Field(description="The step's command, if not a plugin.")
    cpus: int
    memory_mb: int | None = Field(description="MiB it may add; null: the instrument's.")
    timeout_s: float | None = Field(description="Seconds; null: the instrument's.")
    executor: str
    rely: list[str] = Field(description="The steps that must complete before it starts.")
    options: list[str] = Field(description="The names of the variables it declares.")


class PipelineItem(BaseModel):
    name: str
    description: str
    error: str = Field(
        description="Why the file does not load (file and line), or empty; a broken pipeline's "
        "runs go to Error with this reason."
    )
    instruments: list[str] = Field(description="The configured instruments that use it.")
    steps: list[PipelineStepItem] = Field(description="In file order; empty when broken.")


@router.get("", response_model=list[PipelineItem], responses=problems(401))
def list_pipelines(state: StateDep, caller: ReaderDep) -> list[PipelineItem]:
    """Every pipeline file, and every pipeline an instrument names, checked afresh."""
    directory = state.settings.resolved_pipelines_dir
    users: dict[str, list[str]] = {}
    for instrument, config in sorted(state.settings.instruments.items()):
        if config.pipeline:
            users.setdefault(config.pipeline, []).append(instrument)
    try:
        installed: list[str] | None = state.plugins().names()
    except Exception:  # plugins that fail to load: the files are checked without them
        installed = None
    items = []
    for name in sorted(set(pipeline_names(directory)) | set(users)):
        try:
            pipeline = load_pipeline(directory, name, installed)
        except PipelineError as error:
            items.append(
                PipelineItem(
                    name=name,
                    description="",
                    error=str(error),
                    instruments=users.get(name, []),
                    steps=[],
                )
            )
            continue
        steps = [
            PipelineStepItem(
                name=step_name,
                plugin=step.plugin,
                command=step.command,
                cpus=step.cpus,
                memory_mb=step.memory_mb,
                timeout_s=step.timeout_s,
                executor=step.executor,
                rely=step.rely,
                options=sorted(step.options),
            )
            for step_name, step in pipeline.steps.items()
        ]
        items.append(
            PipelineItem(
                name=name,
                description=pipeline.description,
                error="",
                instruments=users.get(name, []),
                steps=steps,
            )
        )
    return items
