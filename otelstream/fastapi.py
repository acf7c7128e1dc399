"""create_router: the runs API and the SSE streams, as a FastAPI router."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Response, params
from opentelemetry import trace
from pydantic import BaseModel, Field

from otelstream._access import RunTokens
from otelstream._limits import body_limited_route
from otelstream._parameters import call_arguments, run_request_type
from otelstream._runs_api import runs_list_router
from otelstream._shutdown import GracefulShutdown
from otelstream._sse import EventStreamResponse, OpenStreams
from otelstream.events import SSE_MESSAGE_SCHEMA
from otelstream.hubs import Hub, RunPosition, Subscription, UnknownRun
from otelstream.runs import Pipeline, PipelineRunner, RunHandle, RunsFull
from otelstream.settings import Settings
from otelstream.ui import ui_router

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_MAX_SEQ = 10**18


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


def create_router(
    *,
    hub: Hub,
    pipelines: Mapping[str, Pipeline] | None = None,
    settings: Settings | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    prefix: str = "",
    start_dependencies: Sequence[params.Depends] = (),
    watch_dependencies: Sequence[params.Depends] = (),
) -> APIRouter:
    """The HTTP API of otelstream; pipelines run in a bounded pool closed by the app's lifespan.

    The tracer provider (default: the global one) must carry an
    `EventStreamProcessor` publishing to `hub`, or runs start but never stream.
    `start_dependencies` guard listing and starting pipelines, `watch_dependencies`
    reading and cancelling runs (they may take the `run_id` path parameter):
    FastAPI dependencies for your authentication and authorisation.
    """
    settings = settings or hub.settings
    secret = settings.run_token_secret
    tokens = RunTokens(secret.get_secret_value() if secret else None)
    streams = OpenStreams(settings.max_streams)

    async def authorize(
        run_id: str,
        token: Annotated[str | None, Query(description="the run's token, from POST /runs")] = None,
        x_otelstream_token: Annotated[str | None, Header()] = None,
    ) -> None:
        if settings.require_run_token and not tokens.check(run_id, token or x_otelstream_token):
            raise HTTPException(404, f"unknown or expired run {run_id!r}, or a wrong token")

    starting = list(start_dependencies)
    watching = [*watch_dependencies, Depends(authorize)]
    runner = PipelineRunner(pipelines or {}, settings=settings, tracer_provider=tracer_provider)
    # The body of the routes that start runs: a model per pipeline, from its signature.
    request_type = run_request_type(runner.pipelines)

    def typed(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.__annotations__["request"] = request_type
        return endpoint

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.open()
        graceful.install()
        stop_listening = hub.on_cancel(runner.cancel)  # a DELETE on another worker reaches it
        yield
        stop_listening()
        graceful.end(runner.fail_running)
        runner.shutdown()

    graceful = GracefulShutdown(runner, streams, settings.shutdown_grace_seconds)
    router = APIRouter(
        prefix=prefix,
        tags=["otelstream"],
        lifespan=lifespan,
        route_class=body_limited_route(settings.max_body_bytes),
    )
    router.include_router(ui_router())  # the live page, at {prefix}/ui

    async def start(request: RunRequest) -> RunHandle:
        if request.pipeline_name not in runner.pipelines:
            raise HTTPException(404, f"unknown pipeline {request.pipeline_name!r}")
        parameters = call_arguments(request.parameters)
        await hub.check()  # HubUnavailable (503): a run that cannot be streamed is not started
        parent = trace.get_current_span().get_span_context()
        if parent.is_valid and await hub.position(format(parent.trace_id, "032x")) is not None:
            # the run id is the trace id: a client that sends the traceparent of a trace that
            # already has a run must start a new trace for the next one
            raise HTTPException(409, f"trace {parent.trace_id:032x} already has a run")
        try:
            handle = runner.start(request.pipeline_name, parameters)
        except RunsFull as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        await hub.flush()  # its start is stored: every worker knows the run from now on
        return handle

    def subscribe(run_id: str, after: int = 0) -> EventStreamResponse:
        try:
            subscription = hub.subscribe(run_id, after)
        except UnknownRun:
            raise HTTPException(404, f"unknown or expired run {run_id!r}") from None
        return EventStreamResponse(
            subscription,
            run_id,
            keepalive=settings.keepalive_seconds,
            streams=streams,
            send_timeout=settings.send_timeout_seconds,
            retry_ms=settings.retry_ms,
        )

    def check_stream_room() -> None:
        if streams.full():
            raise HTTPException(
                503, f"{streams.limit} streams are open", headers={"Retry-After": "5"}
            )

    @router.post(
        "/run-workflow",
        status_code=200,
        response_class=EventStreamResponse,
        dependencies=starting,
        responses={**_stream(), **_errors(404, 409, 413, 503)},
    )
    @typed
    async def run_workflow(request: RunRequest) -> Response:
        """Start a run and answer with its event stream, which ends after `pipeline_completed`."""
        check_stream_room()
        handle = await start(request)
        try:
            return subscribe(handle.run_id)
        except HTTPException:
            raise HTTPException(
                500,
                "the run started but is not streamed: add EventStreamProcessor(hub) to the "
                "tracer provider the router uses, and wrap its sampler in "
                "otelstream.RunSampler so that runs are recorded when not exported",
            ) from None

    @router.get("/pipelines", dependencies=starting)
    async def list_pipelines() -> PipelineList:
        return PipelineList(
            pipelines=[
                PipelineInfo(name=name, description=_summary(pipeline))
                for name, pipeline in runner.pipelines.items()
            ]
        )

    @router.post(
        "/runs",
        status_code=202,
        dependencies=starting,
        response_model_exclude_none=True,
        responses=_errors(404, 409, 413, 503),
    )
    @typed
    async def start_run(request: RunRequest) -> RunStarted:
        handle = await start(request)
        run_url = f"{prefix}/runs/{handle.run_id}"
        if not settings.require_run_token:
            return RunStarted(run_id=handle.run_id, events_url=f"{run_url}/events", run_url=run_url)
        token = tokens.issue(handle.run_id)
        return RunStarted(
            run_id=handle.run_id,
            events_url=f"{run_url}/events?token={token}",
            run_url=f"{run_url}?token={token}",
            token=token,
        )

    def stream_runs(subscription: Subscription, name: str) -> EventStreamResponse:
        check_stream_room()
        return EventStreamResponse(
            subscription, name, keepalive=settings.keepalive_seconds, streams=streams
        )

    router.include_router(  # before /runs/{run_id}: GET /runs, GET /runs/live
        runs_list_router(
            hub, dependencies=starting, stream=stream_runs, responses=_errors(422, 503)
        )
    )

    @router.get(
        "/runs/{run_id}/events",
        response_class=EventStreamResponse,
        status_code=200,
        responses={
            **_stream(),
            204: {"description": "The run is over and the client has every event."},
            **_errors(404, 503),
        },
        dependencies=watching,
    )
    async def run_events(
        run_id: str,
        last_event_id: Annotated[int, Query(ge=0, le=_MAX_SEQ)] = 0,
        last_event_id_header: Annotated[
            str, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$")
        ] = "",
    ) -> Response:
        """The run's events: first what the client missed, then live, until the run ends."""
        # What a browser's EventSource sends on reconnecting wins over the query parameter.
        after = int(last_event_id_header) if last_event_id_header else last_event_id
        position = await _position(run_id)
        if position.finished and after >= position.last_seq:
            return Response(status_code=204)
        check_stream_room()
        return subscribe(run_id, after)

    @router.get("/runs/{run_id}", dependencies=watching, responses=_errors(404, 503))
    async def get_run(run_id: str) -> dict[str, Any]:
        """The run's status, times and span tree."""
        run = await _get_run(run_id)
        run["events_url"] = f"{prefix}/runs/{run_id}/events"
        if settings.trace_url:
            run["trace_url"] = settings.trace_url.format(trace_id=run_id)
        return run

    @router.delete(
        "/runs/{run_id}", status_code=202, dependencies=watching, responses=_errors(404, 409, 503)
    )
    async def cancel_run(run_id: str) -> dict[str, str]:
        """Cancel a run, wherever it runs: it stops at its next span, `status: cancelled`."""
        if runner.cancel(run_id):
            return {"run_id": run_id, "status": "cancelling"}
        position = await _position(run_id)
        if position.finished:
            raise HTTPException(409, f"run {run_id} has already ended ({position.status})")
        if await hub.cancel(run_id):  # the worker that runs it hears it
            return {"run_id": run_id, "status": "cancelling"}
        raise HTTPException(409, f"run {run_id} is not run by a server of this hub")

    async def _position(run_id: str) -> RunPosition:
        position = await hub.position(run_id) if _RUN_ID.fullmatch(run_id) else None
        if position is None:
            raise HTTPException(404, f"unknown or expired run {run_id!r}")
        return position

    async def _get_run(run_id: str) -> dict[str, Any]:
        run = await hub.get_run(run_id) if _RUN_ID.fullmatch(run_id) else None
        if run is None:
            raise HTTPException(404, f"unknown or expired run {run_id!r}")
        return run

    return router


class ErrorDetail(BaseModel):
    detail: str


_ERRORS = {
    404: "Unknown pipeline, or unknown or expired run (or a wrong run token).",
    409: "The trace already has a run, or the run has ended.",
    413: "The request body is over `max_body_bytes`.",
    422: "A query parameter is malformed (such as a cursor this server never gave).",
    503: "Every worker, queue place or stream is taken, or the hub cannot be reached (Redis "
    "down): retry after `Retry-After` seconds.",
}


def _stream() -> dict[int | str, dict[str, Any]]:
    content = {"text/event-stream": {"schema": SSE_MESSAGE_SCHEMA}}
    return {200: {"description": "The run's events, as they happen.", "content": content}}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Errors are JSON even where the answer would be a stream, and documented so."""
    content = {"application/json": {"schema": ErrorDetail.model_json_schema()}}
    return {code: {"description": _ERRORS[code], "content": content} for code in codes}


def _summary(pipeline: Pipeline) -> str | None:
    func = getattr(pipeline, "func", pipeline)  # functools.partial
    doc = getattr(func, "__doc__", None)
    return doc.strip().splitlines()[0] if doc else None


__all__ = [
    "ErrorDetail",
    "PipelineInfo",
    "PipelineList",
    "RunRequest",
    "RunStarted",
    "create_router",
]
