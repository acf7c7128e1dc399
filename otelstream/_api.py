"""The runs API's endpoints and dependencies: small methods over one state object.

`create_router` (otelstream.fastapi) builds a `RunsAPI` and registers its bound
methods as routes; each endpoint is readable and testable alone, and the limits
and access rules are FastAPI dependencies (`stream_room`, `authorize`), not code
inside the endpoints.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import Header, HTTPException, Query, Response
from opentelemetry import trace
from pydantic import BaseModel, Field

from otelstream._access import RunTokens
from otelstream._parameters import call_arguments
from otelstream._sse import EventStreamResponse, OpenStreams
from otelstream.events import format_time
from otelstream.hubs import Hub, RunPosition, Subscription, UnknownRun
from otelstream.runs import Pipeline, PipelineRunner, RunHandle, RunsFull
from otelstream.settings import Settings

_RUN_ID = re.compile(r"[0-9a-f]{32}")
MAX_SEQ = 10**18


class RunRequest(BaseModel):
    pipeline_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class RunStarted(BaseModel):
    run_id: str
    events_url: str
    run_url: str
    token: str | None = None
    """Present when `require_run_token` is set: reading the run needs it."""


class PipelineInfo(BaseModel):
    name: str
    description: str | None = None


class PipelineList(BaseModel):
    pipelines: list[PipelineInfo]


NOT_STREAMED = (
    "the run started but is not streamed: add EventStreamProcessor(hub) to the tracer provider "
    "the router uses, and wrap its sampler in otelstream.RunSampler so that runs are recorded "
    "when not exported"
)


def shown_id(run_id: str) -> str:
    """A run id as an error may echo it: a client's text, so cut."""
    return repr(run_id if len(run_id) <= 64 else run_id[:64] + "…")


class RunsAPI:
    """What the routes share: the hub, the runner, the open streams, the token signer."""

    def __init__(
        self, hub: Hub, runner: PipelineRunner, settings: Settings, prefix: str = ""
    ) -> None:
        self.hub = hub
        self.runner = runner
        self.settings = settings
        self.prefix = prefix
        secret = settings.run_token_secret
        self.tokens = RunTokens(secret.get_secret_value() if secret else None)
        self.streams = OpenStreams(settings.max_streams)

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
        self.check_stream_room()

    def check_stream_room(self) -> None:
        if self.streams.full():
            raise HTTPException(
                503, f"{self.streams.limit} streams are open", headers={"Retry-After": "5"}
            )

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
        return PipelineList(
            pipelines=[
                PipelineInfo(name=name, description=_summary(pipeline))
                for name, pipeline in self.runner.pipelines.items()
            ]
        )

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

    async def run_events(
        self,
        run_id: str,
        last_event_id: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        last_event_id_header: Annotated[
            str, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$")
        ] = "",
    ) -> Response:
        """The run's events: first what the client missed, then live, until the run ends."""
        # What a browser's EventSource sends on reconnecting wins over the query parameter.
        after = int(last_event_id_header) if last_event_id_header else last_event_id
        position = await self.position(run_id)  # O(1) in the run's length
        if position.finished and after >= position.last_seq:
            return Response(status_code=204)
        self.check_stream_room()  # after the 204: a finished run's last reconnect always ends
        return self.stream(run_id, after)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's status, times and span tree."""
        run = await self.hub.get_run(run_id) if _RUN_ID.fullmatch(run_id) else None
        if run is None:
            raise HTTPException(404, f"unknown or expired run {shown_id(run_id)}")
        run["events_url"] = f"{self.prefix}/runs/{run_id}/events"
        run["server_time"] = format_time(time.time_ns())  # a late page sets its clock by it
        if self.settings.trace_url:
            run["trace_url"] = self.settings.trace_url.format(trace_id=run_id)
        return run

    async def cancel_run(self, run_id: str) -> dict[str, str]:
        """Cancel a run, wherever it runs: it stops at its next span, `status: cancelled`."""
        if self.runner.cancel(run_id):
            return {"run_id": run_id, "status": "cancelling"}
        position = await self.position(run_id)
        if position.finished:
            raise HTTPException(409, f"run {run_id} has already ended ({position.status})")
        if await self.hub.cancel(run_id):  # the worker that runs it hears it
            return {"run_id": run_id, "status": "cancelling"}
        raise HTTPException(409, f"run {run_id} is not run by a server of this hub")

    # -- the parts the endpoints share --------------------------------------------------------

    async def start(self, request: RunRequest) -> RunHandle:
        """Check, then start a run in the runner's pool (404, 409, 422 and 503 are raised)."""
        if request.pipeline_name not in self.runner.pipelines:
            raise HTTPException(404, f"unknown pipeline {shown_id(request.pipeline_name)}")
        parameters = call_arguments(request.parameters)
        await self.hub.check()  # HubUnavailable (503): a run that cannot be streamed waits
        parent = trace.get_current_span().get_span_context()
        if parent.is_valid and await self.hub.position(f"{parent.trace_id:032x}") is not None:
            # the run id is the trace id: a client that sends the traceparent of a trace that
            # already has a run must start a new trace for the next one
            raise HTTPException(409, f"trace {parent.trace_id:032x} already has a run")
        try:
            handle = self.runner.start(request.pipeline_name, parameters)
        except RunsFull as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        await self.hub.flush()  # its start is stored: every worker knows the run from now on
        return handle

    async def position(self, run_id: str) -> RunPosition:
        position = await self.hub.position(run_id) if _RUN_ID.fullmatch(run_id) else None
        if position is None:
            raise HTTPException(404, f"unknown or expired run {shown_id(run_id)}")
        return position

    def stream(self, run_id: str, after: int = 0) -> EventStreamResponse:
        try:
            subscription = self.hub.subscribe(run_id, after)
        except UnknownRun:
            raise HTTPException(404, f"unknown or expired run {shown_id(run_id)}") from None
        return self.respond(subscription, run_id)

    def stream_feed(self, subscription: Subscription, name: str) -> EventStreamResponse:
        """Another feed (the runs stream) as SSE, within the bound on open streams."""
        self.check_stream_room()
        return self.respond(subscription, name)

    def respond(self, subscription: Subscription, name: str) -> EventStreamResponse:
        """A subscription as the SSE response, with the router's bounds and keep-alive."""
        settings = self.settings
        return EventStreamResponse(
            subscription,
            name,
            keepalive=settings.keepalive_seconds,
            streams=self.streams,
            send_timeout=settings.send_timeout_seconds,
            retry_ms=settings.retry_ms,
        )


def _summary(pipeline: Pipeline) -> str | None:
    func = getattr(pipeline, "func", pipeline)  # functools.partial
    doc = getattr(func, "__doc__", None)
    return doc.strip().splitlines()[0] if doc else None


__all__ = [
    "PipelineInfo",
    "PipelineList",
    "RunRequest",
    "RunStarted",
    "RunsAPI",
    "shown_id",
]
