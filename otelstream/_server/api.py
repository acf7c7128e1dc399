"""The runs API: every endpoint a method of one object, served by the route table in
`routes.py`.

A new endpoint goes here: a method on `RunsAPI` and a row in `ROUTES` (`routes.py`); the
steps several endpoints take are `RunsBase`'s (`shared.py`).
`create_router` (otelstream.fastapi) only wires the table into a FastAPI router.
Each endpoint is readable and testable alone; limits, access and resume points are
FastAPI dependencies (`stream_room`, `run_stream_room`, `authorize`, `ResumeAfter`),
not code inside the endpoints.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import Header, HTTPException, Query, Request, Response

from otelstream._errors import warn_limited
from otelstream._server.models import (
    RUN_ID,
    PipelineHistory,
    PipelineInfo,
    PipelineList,
    ResumeAfter,
    RunList,
    RunRequest,
    RunStarted,
    RunStatus,
    RunSummary,
    shown_id,
)
from otelstream._server.shared import RunsBase
from otelstream._server.sse import EventStreamResponse
from otelstream.events import format_time
from otelstream.hubs import HubUnavailable, RunPosition
from otelstream.runs import Pipeline

RUNS_STREAM = "runs"
"""What a runs-stream notice names in place of a run id (`stream_overflow`, `server_shutdown`)."""

NOT_STREAMED = (
    "the run started but is not streamed: add EventStreamProcessor(hub) to the tracer provider "
    "the router uses, and wrap its sampler in otelstream.RunSampler so that runs are recorded "
    "when not exported"
)


class RunsAPI(RunsBase):
    """The endpoints, and the dependencies that the route table (`routes.py`) names."""

    # -- dependencies -------------------------------------------------------------------------

    async def authorize(
        self,
        run_id: str,
        token: Annotated[str | None, Query(description="the run's token, from POST /runs")] = None,
        x_otelstream_token: Annotated[str | None, Header()] = None,
    ) -> None:
        """Reading or cancelling a run needs its token when `require_run_token` is set."""
        if self.settings.require_run_token and not self.tokens.check(
            run_id, token or x_otelstream_token
        ):
            raise HTTPException(404, f"unknown or expired run {shown_id(run_id)}, or a wrong token")

    async def stream_room(self) -> None:
        """A stream beyond `max_streams` is refused before anything starts (async: FastAPI
        would run a plain function in a worker thread)."""
        if self.streams.full():
            raise HTTPException(
                503, f"{self.streams.limit} streams are open", headers={"Retry-After": "5"}
            )

    async def run_stream_room(self, run_id: str, after: ResumeAfter = 0) -> None:
        """`stream_room` for a run's stream, except a finished run's last reconnect: that one
        is never refused, so its 204 (or 404) always ends the client's reconnecting."""
        if self.streams.full():
            position = await self.position(run_id)
            if not (position.finished and after >= position.last_seq):
                await self.stream_room()

    # -- endpoints ----------------------------------------------------------------------------

    async def run_workflow(self, request: RunRequest) -> Response:
        """Start a run and answer with its event stream, which ends after `pipeline_completed`."""
        handle = await self.start(request)
        try:
            return self.stream(handle.run_id)
        except HTTPException:
            raise HTTPException(500, NOT_STREAMED) from None

    async def list_pipelines(self) -> PipelineList:
        """The registered pipelines, with the first line of each one's docstring."""
        names = list(self.runner.pipelines)
        try:  # the list is the process's own: a hub away or slow leaves the history untold
            async with asyncio.timeout(HISTORY_WAIT_S):
                histories = await asyncio.gather(*(self.hub.history(name) for name in names))
        except HubUnavailable:  # the hub says so itself, once an outage begins
            histories = [{} for _ in names]
        except TimeoutError:
            warn_limited(
                "otelstream: the hub did not tell the pipelines' histories within %.1f s, so "
                "GET /pipelines answered without their usual times (an overloaded Redis, or "
                "this process's event loop held up, does that)",
                HISTORY_WAIT_S,
            )
            histories = [{} for _ in names]
        infos = []
        for name, history in zip(names, histories, strict=True):
            info = PipelineInfo(name=name, description=_summary(self.runner.pipelines[name]))
            for field in USUAL:
                setattr(info, field, history.get(field))
            infos.append(info)
        return PipelineList(pipelines=infos)

    async def pipeline_history(self, name: str) -> PipelineHistory:
        """The pipeline's last runs (newest first) and its tasks' usual durations."""
        if name not in self.runner.pipelines:
            raise HTTPException(404, f"no pipeline named {name!r}")
        return PipelineHistory.model_validate(await self.hub.history(name))

    async def start_run(self, request: RunRequest) -> RunStarted:
        """Start a run; its events are at `events_url`."""
        handle = await self.start(request)
        run_url = f"{self.prefix}/runs/{handle.run_id}"
        if not self.settings.require_run_token:
            return RunStarted(run_id=handle.run_id, events_url=f"{run_url}/events", run_url=run_url)
        token = self.tokens.issue(handle.run_id)
        return RunStarted(
            run_id=handle.run_id,
            events_url=f"{run_url}/events?token={token}",
            run_url=f"{run_url}?token={token}",
            token=token,
        )

    async def list_runs(
        self,
        pipeline: Annotated[str | None, Query(description="only runs of this pipeline")] = None,
        status: Annotated[RunStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the page before"),
        ] = None,
    ) -> RunList:
        """Recent and running runs, newest first.

        A summary carries no event and no token: with `require_run_token` on, whoever
        passes the `start_dependencies` sees every run's id, name, status and times, while
        each run's stream and tree still need its token."""
        try:
            page = await self.hub.list_runs(
                pipeline=pipeline, status=status, limit=limit, cursor=cursor
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except NotImplementedError as exc:  # a hub without the runs list (yet)
            raise HTTPException(501, str(exc)) from None
        return RunList(
            runs=[RunSummary.model_validate(run) for run in page.runs],
            next_cursor=page.next_cursor,
        )

    async def runs_live(self, after: ResumeAfter = 0) -> EventStreamResponse:
        """Every run's `run_started` and `run_ended`, with their own seq (resume with
        `Last-Event-ID`); it replays the runs the hub keeps, then goes on until the client
        leaves."""
        await self.hub.check()  # a hub that cannot be reached is a 503 here, not a 200 stream
        try:
            subscription = self.hub.subscribe_runs(after)
        except NotImplementedError as exc:  # a hub without the runs stream (yet)
            raise HTTPException(501, str(exc)) from None
        return self.respond(subscription, RUNS_STREAM)

    async def run_events(self, run_id: str, after: ResumeAfter = 0) -> Response:
        """The run's events: first what the client missed, then live, until the run ends."""
        position = await self.position(run_id)  # O(1) in the run's length
        if position.finished and after >= position.last_seq:
            return Response(status_code=204)
        return self.stream(run_id, after)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's status, times and span tree."""
        run = await self.hub.get_run(run_id) if RUN_ID.fullmatch(run_id) else None
        if run is None:
            raise self.unknown_run(run_id)
        run["events_url"] = f"{self.prefix}/runs/{run_id}/events"
        run["server_time"] = format_time(time.time_ns())  # a late page sets its clock by it
        if self.settings.trace_url:
            run["trace_url"] = self.settings.trace_url.format(trace_id=run_id)
        return run

    async def cancel_run(self, run_id: str) -> dict[str, str]:
        """Cancel a run, wherever it runs: it stops at its next span, `status: cancelled`."""
        # The hub first, so every worker answers alike: a worker whose lease lapsed still runs
        # the pipeline of a run that another worker ended (WorkerLost), and must not say 202.
        try:
            position: RunPosition | None = await self.position(run_id)
        except HubUnavailable:
            position = None  # a run started here is still cancelled without the hub
        if position is not None and position.finished:
            raise HTTPException(409, f"run {run_id} has already ended ({position.status})")
        if self.runner.cancel(run_id):
            return {"run_id": run_id, "status": "cancelling"}
        position = position or await self.position(run_id)
        if position.finished:
            raise HTTPException(409, f"run {run_id} has already ended ({position.status})")
        if await self.hub.cancel(run_id):  # the worker that runs it hears it
            return {"run_id": run_id, "status": "cancelling"}
        position = await self.position(run_id)
        if position.finished:  # its worker was gone: the hub ended it (WorkerLost) at once
            raise HTTPException(409, f"run {run_id} has ended ({position.status})")
        raise HTTPException(409, f"run {run_id} is not run by a server of this hub")

    async def otlp_traces(self, request: Request) -> Response:
        """OTLP/HTTP: spans of other services (`ExportTraceServiceRequest`, protobuf or JSON,
        maybe gzip) join the runs of their trace; the answer counts those it did not take."""
        if self.receiver is None:  # served only with otlp_ingest on
            raise HTTPException(404, "the OTLP receiver is off")
        return await self.receiver.export_traces(request)

    async def otlp_logs(self, request: Request) -> Response:
        """OTLP/HTTP: log records of other services (`ExportLogsServiceRequest`) that carry a
        span of a streamed run become `task_log` events under that span."""
        if self.receiver is None:
            raise HTTPException(404, "the OTLP receiver is off")
        return await self.receiver.export_logs(request)


def _summary(pipeline: Pipeline) -> str | None:
    func = getattr(pipeline, "func", pipeline)  # functools.partial
    doc = getattr(func, "__doc__", None)
    return doc.strip().splitlines()[0] if doc else None


HISTORY_WAIT_S = 1.0
"""How long `GET /pipelines` waits for the hub's histories before answering without."""
USUAL = ("expected_duration_ms", "expected_p90_ms", "success_rate", "last_status")
"""What `GET /pipelines` tells of each pipeline's history."""


__all__ = ["NOT_STREAMED", "RUNS_STREAM", "RunsAPI"]
