"""`GET /runs` and `GET /runs/live`: the list of runs, and its lifecycle stream, for a page.

Both are guarded by the router's `start_dependencies` (who may list and start
pipelines may see which runs there are). A summary carries no event and no
token: with `require_run_token` on, anyone who passes those dependencies sees
every run's id, name, status and times, while each run's stream and tree still
need that run's token. Apps that must hide runs from each other put that rule
in `start_dependencies`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, params
from pydantic import BaseModel

from otelstream._sse import EventStreamResponse
from otelstream.events import SSE_MESSAGE_SCHEMA
from otelstream.hubs import Hub

_MAX_SEQ = 10**18
RUNS_STREAM = "runs"
"""What a runs-stream notice names in place of a run id (`stream_overflow`, `server_shutdown`)."""


class RunSummary(BaseModel):
    run_id: str
    name: str
    status: Literal["running", "success", "error", "cancelled"]
    started_at: str
    duration_ms: float | None = None
    error_type: str | None = None


class RunList(BaseModel):
    runs: list[RunSummary]
    next_cursor: str | None = None
    """Pass it as `?cursor=` for the next, older page; null on the last page."""


def runs_list_router(
    hub: Hub,
    *,
    dependencies: Sequence[params.Depends],
    stream: Callable[..., EventStreamResponse],
    responses: dict[int | str, dict[str, Any]],
) -> APIRouter:
    """The two routes; include it before `/runs/{run_id}`, so `live` is never taken for an id.

    `stream(subscription, name)` makes the SSE response (the router's stream bounds and
    keep-alive); `responses` documents the router's JSON errors.
    """
    router = APIRouter()

    @router.get("/runs", dependencies=list(dependencies), responses=responses)
    async def list_runs(
        pipeline: Annotated[str | None, Query(description="only runs of this pipeline")] = None,
        status: Annotated[
            Literal["running", "success", "error", "cancelled"] | None, Query()
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the page before"),
        ] = None,
    ) -> RunList:
        """Recent and running runs, newest first."""
        try:
            page = await hub.list_runs(pipeline=pipeline, status=status, limit=limit, cursor=cursor)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except NotImplementedError as exc:  # a hub without the runs list (yet)
            raise HTTPException(501, str(exc)) from None
        return RunList(
            runs=[RunSummary.model_validate(run) for run in page.runs],
            next_cursor=page.next_cursor,
        )

    content = {"text/event-stream": {"schema": SSE_MESSAGE_SCHEMA}}
    described: dict[int | str, dict[str, Any]] = {
        200: {"description": "run_started and run_ended, live", "content": content}
    }

    @router.get(
        "/runs/live",
        response_class=EventStreamResponse,
        status_code=200,
        dependencies=list(dependencies),
        responses={**described, **responses},
    )
    async def runs_live(
        last_event_id: Annotated[int, Query(ge=0, le=_MAX_SEQ)] = 0,
        last_event_id_header: Annotated[
            str, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$")
        ] = "",
    ) -> EventStreamResponse:
        """Every run's `run_started` and `run_ended`, with their own seq (resume with
        `Last-Event-ID`); it replays the runs the hub keeps, then goes on until the client
        leaves."""
        after = int(last_event_id_header) if last_event_id_header else last_event_id
        try:
            subscription = hub.subscribe_runs(after)
        except NotImplementedError as exc:  # a hub without the runs stream (yet)
            raise HTTPException(501, str(exc)) from None
        return stream(subscription, RUNS_STREAM)

    return router
