"""create_router: the runs API and the SSE streams, as a FastAPI router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response, params
from opentelemetry import trace
from pydantic import BaseModel

from otelstream._api import PipelineInfo, PipelineList, RunRequest, RunsAPI, RunStarted
from otelstream._limits import body_limited_route
from otelstream._parameters import run_request_type
from otelstream._runs_api import runs_list_router
from otelstream._shutdown import GracefulShutdown
from otelstream._sse import EventStreamResponse
from otelstream.events import SSE_MESSAGE_SCHEMA
from otelstream.hubs import Hub
from otelstream.runs import Pipeline, PipelineRunner
from otelstream.settings import Settings
from otelstream.ui import ui_router


def create_router(
    *,
    hub: Hub,
    pipelines: Mapping[str, Pipeline] | None = None,
    settings: Settings | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    prefix: str = "",
    start_dependencies: Sequence[params.Depends] = (),
    watch_dependencies: Sequence[params.Depends] = (),
    graceful_shutdown: bool = True,
) -> APIRouter:
    """The HTTP API of otelstream; pipelines run in a bounded pool closed by the app's lifespan.

    The tracer provider (default: the global one) must carry an
    `EventStreamProcessor` publishing to `hub`, or runs start but never stream.
    `start_dependencies` guard listing and starting pipelines, `watch_dependencies`
    reading and cancelling runs (they may take the `run_id` path parameter):
    FastAPI dependencies for your authentication and authorisation.
    `graceful_shutdown` chains a process-wide SIGTERM/SIGINT handler in front of the
    server's (see `otelstream._shutdown`); pass False when the app handles signals itself.
    """
    settings = settings or hub.settings
    runner = PipelineRunner(pipelines or {}, settings=settings, tracer_provider=tracer_provider)
    api = RunsAPI(hub, runner, settings, prefix)
    graceful = GracefulShutdown(runner, api.streams, settings.shutdown_grace_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.open()
        if graceful_shutdown:
            graceful.install()
        stop_listening = hub.on_cancel(runner.cancel)  # a DELETE on another worker reaches it
        yield
        stop_listening()
        graceful.end(runner.fail_running)
        runner.shutdown()

    router = APIRouter(
        prefix=prefix,
        tags=["otelstream"],
        lifespan=lifespan,
        route_class=body_limited_route(settings.max_body_bytes),
    )
    router.include_router(ui_router())  # the live page, at {prefix}/ui
    starting = list(start_dependencies)
    watching = [*watch_dependencies, Depends(api.authorize)]
    room = Depends(api.stream_room)
    # The body of the routes that start runs: a model per pipeline, from its signature.
    request_type = run_request_type(runner.pipelines)

    async def run_workflow(request: RunRequest) -> Response:
        return await api.run_workflow(request)

    async def start_run(request: RunRequest) -> RunStarted:
        return await api.start_run(request)

    for endpoint, method in ((run_workflow, api.run_workflow), (start_run, api.start_run)):
        endpoint.__annotations__["request"] = request_type
        endpoint.__doc__ = method.__doc__

    route = router.add_api_route
    route(
        "/run-workflow",
        run_workflow,
        methods=["POST"],
        status_code=200,
        response_class=EventStreamResponse,
        dependencies=[*starting, room],
        responses={**_stream(), **_errors(404, 409, 413, 503)},
    )
    route("/pipelines", api.list_pipelines, methods=["GET"], dependencies=starting)
    route(
        "/runs",
        start_run,
        methods=["POST"],
        status_code=202,
        dependencies=starting,
        response_model_exclude_none=True,
        responses=_errors(404, 409, 413, 503),
    )
    router.include_router(  # before /runs/{run_id}: GET /runs, GET /runs/live
        runs_list_router(
            hub, dependencies=starting, stream=api.stream_feed, responses=_errors(422, 503)
        )
    )
    route(
        "/runs/{run_id}/events",
        api.run_events,
        methods=["GET"],
        status_code=200,
        response_class=EventStreamResponse,
        dependencies=watching,
        responses={
            **_stream(),
            204: {"description": "The run is over and the client has every event."},
            **_errors(404, 503),
        },
    )
    route(
        "/runs/{run_id}",
        api.get_run,
        methods=["GET"],
        dependencies=watching,
        responses=_errors(404, 503),
    )
    route(
        "/runs/{run_id}",
        api.cancel_run,
        methods=["DELETE"],
        status_code=202,
        dependencies=watching,
        responses=_errors(404, 409, 503),
    )
    return router


def untraced_streams(scope: MutableMapping[str, Any]) -> bool:
    """`FastAPI(telemetry={"exclude": untraced_streams})`: leave the event streams out of
    FastAPI's own telemetry, every other route in.

    Once a global SDK tracer provider is set, FastAPI keeps a server span (and its
    request state, ~9 KiB) open for as long as a request lasts, and an event stream
    lasts as long as its run, which is traced already. True for `GET …/runs/{id}/events`
    and `GET …/runs/live`, the streams, under any prefix.
    """
    path = str(scope.get("path", ""))
    return scope.get("method") == "GET" and path.endswith(("/events", "/runs/live"))


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


__all__ = [
    "ErrorDetail",
    "PipelineInfo",
    "PipelineList",
    "RunRequest",
    "RunStarted",
    "create_router",
    "untraced_streams",
]
