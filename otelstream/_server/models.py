"""What the runs API's requests carry and its answers hold: bodies, answers, resume points.

Kept apart from the endpoints (`otelstream._server.api`) so the endpoints module holds behaviour
only; `otelstream.fastapi` re-exports the models users may type their code against.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Query
from pydantic import BaseModel, Field

MAX_SEQ = 10**18
"""The largest event id a client may send back (an 18-digit `Last-Event-ID`)."""

RUN_ID = re.compile(r"[0-9a-f]{32}")
"""A run id is its trace id: 32 lowercase hex digits. Anything else is unknown, unasked."""


class RunRequest(BaseModel):
    pipeline_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class RunStarted(BaseModel):
    run_id: str
    events_url: str
    run_url: str
    token: str | None = None
    """Present when `require_run_token` is set: reading the run needs it."""


RunStatus = Literal["running", "success", "error", "cancelled"]
"""A run's status (`events._fields.RUN_STATUSES`, which a test checks it against)."""


class PipelineInfo(BaseModel):
    name: str
    description: str | None = None
    expected_duration_ms: float | None = None
    """The median duration of its last successful runs (from 3 of them; issue 31)."""
    expected_p90_ms: float | None = None
    """Their 90th percentile."""
    success_rate: float | None = None
    """The share of its last runs that succeeded (None before its first run ends)."""
    last_status: str | None = None
    """How its last run ended."""


class HistoryRun(BaseModel):
    run_id: str
    status: RunStatus
    started_at: str | None = None
    duration_ms: float | None = None


class TaskHistory(BaseModel):
    durations_ms: list[float]
    """The task's durations in the pipeline's last successful runs, newest first."""
    expected_duration_ms: float | None = None
    expected_p90_ms: float | None = None


class PipelineHistory(BaseModel):
    """`GET /pipelines/{name}/history`: what the hub keeps of a pipeline's last runs."""

    pipeline: str
    runs: list[HistoryRun]
    """Its last runs, newest first (`OTELSTREAM_HISTORY_RUNS` at most)."""
    durations_ms: list[float]
    """Its last successful runs' durations, newest first."""
    expected_duration_ms: float | None = None
    expected_p90_ms: float | None = None
    success_rate: float | None = None
    last_status: str | None = None
    tasks: dict[str, TaskHistory]
    """Its tasks by their path of names from the run's root (`parallel / fetch_shard_0`)."""


class PipelineList(BaseModel):
    pipelines: list[PipelineInfo]


class RunSummary(BaseModel):
    """A run as `GET /runs` lists it: the codec's `run_summary` (a test checks the fields)."""

    run_id: str
    name: str
    status: RunStatus
    started_at: str
    duration_ms: float | None = None
    error_type: str | None = None
    errors_logged: int | None = None
    """A finished run's ERROR-and-above log records; null when it had none."""


class RunList(BaseModel):
    runs: list[RunSummary]
    next_cursor: str | None = None
    """Pass it as `?cursor=` for the next, older page; null on the last page."""


class ErrorDetail(BaseModel):
    detail: str


async def resume_after(
    last_event_id: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    last_event_id_header: Annotated[
        str, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$")
    ] = "",
) -> int:
    """Where a stream resumes: after the event id a browser's `EventSource` sends on
    reconnecting (the header), else after `?last_event_id=` (a client that cannot set
    headers), else from the start. The header wins."""
    return int(last_event_id_header) if last_event_id_header else last_event_id


ResumeAfter = Annotated[int, Depends(resume_after)]
"""An endpoint's resume point, as a parameter: `after: ResumeAfter`."""


def shown_id(run_id: str) -> str:
    """A run id as an error may echo it: a client's text, so cut."""
    return repr(run_id if len(run_id) <= 64 else run_id[:64] + "…")
