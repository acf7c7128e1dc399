"""create_router: the runs API (`otelstream._server.api` its endpoints, `routes` its route table)
wired into a FastAPI router, with the lifespan that opens and closes the pipelines' pool."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, params
from fastapi.datastructures import Default
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from opentelemetry import trace

from otelstream._server.api import RunsAPI
from otelstream._server.models import (
    ErrorDetail,
    PipelineInfo,
    PipelineList,
    RunList,
    RunRequest,
    RunStarted,
    RunSummary,
)
from otelstream._server.parameters import run_request_type
from otelstream._server.routes import ROUTES
from otelstream._server.routing import body_limited_route
from otelstream._server.shutdown import GracefulShutdown
from otelstream._server.sse import EventStreamResponse
from otelstream._server.ui import ui_router
from otelstream.hubs import Hub
from otelstream.processors._linger import receiver_feeds
from otelstream.runs import Pipeline, PipelineRunner
from otelstream.settings import Settings

if TYPE_CHECKING:
    from otelstream._ingest import OtlpReceiver
    from otelstream._ingest.grpc_server import GrpcReceiver


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
    otlp_ingest: bool | None = None,
    otlp_grpc_endpoint: str | None = None,
) -> APIRouter:
    """The HTTP API of otelstream; pipelines run in a bounded pool closed by the app's lifespan.

    The tracer provider (default: the global one) must carry an
    `EventStreamProcessor` publishing to `hub`, or runs start but never stream.
    `start_dependencies` guard listing and starting pipelines, `watch_dependencies`
    reading and cancelling runs (they may take the `run_id` path parameter):
    FastAPI dependencies for your authentication and authorisation.
    `graceful_shutdown` chains a process-wide SIGTERM/SIGINT handler in front of the
    server's (see `otelstream._server.shutdown`); pass False when the app handles signals itself.
    `otlp_ingest` (default: `OTELSTREAM_OTLP_INGEST`) serves the OTLP/HTTP receiver at
    `{prefix}/v1/traces`: spans of other services join the runs of their trace.
    `otlp_grpc_endpoint` (default: `OTELSTREAM_OTLP_GRPC_ENDPOINT`), `host:port` as
    `0.0.0.0:4317`, serves OTLP over gRPC there too, on the app's loop, for the lifespan.
    """
    settings = settings or hub.settings
    runner = PipelineRunner(pipelines or {}, settings=settings, tracer_provider=tracer_provider)
    http_ingest = _on(otlp_ingest, settings.otlp_ingest)
    grpc_endpoint = otlp_grpc_endpoint or settings.otlp_grpc_endpoint
    # one core for both front ends: a span sent over both is streamed once
    receiver = _receiver(hub, settings) if http_ingest or grpc_endpoint else None
    if receiver is not None:
        receiver_feeds(hub)  # the hub's runs wait for the services they call, whoever built them
    grpc_receiver = (
        _grpc_receiver(receiver, grpc_endpoint, settings)
        if receiver is not None and grpc_endpoint
        else None
    )
    api = RunsAPI(hub, runner, settings, prefix, receiver if http_ingest else None)
    graceful = GracefulShutdown(runner, api.streams, settings.shutdown_grace_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if grpc_receiver is not None:  # first: a port that cannot be bound stops the start
            await grpc_receiver.start()
        runner.open()
        if receiver is not None and http_ingest:
            receiver.warn_if_open(f"{prefix}/v1/traces")
        if graceful_shutdown:
            graceful.install()
        stop_listening = hub.on_cancel(runner.cancel)  # a DELETE on another worker reaches it
        try:
            yield
        finally:
            stop_listening()
            graceful.end(runner.fail_running)
            runner.shutdown()
            if grpc_receiver is not None:  # last: spans of the runs' last calls still land
                await grpc_receiver.stop()

    router = APIRouter(
        prefix=prefix,
        tags=["otelstream"],
        lifespan=lifespan,
        route_class=body_limited_route(settings.max_body_bytes),
    )
    router.include_router(ui_router())  # the live page, at {prefix}/ui
    guards = {
        "start": list(start_dependencies),
        "watch": [*watch_dependencies, Depends(api.authorize)],
        "otlp": [],
    }
    request_type = run_request_type(runner.pipelines)  # a body model per pipeline
    for route in ROUTES:
        if route.guard == "otlp" and receiver is None:
            continue
        method = getattr(api, route.endpoint)
        answer = EventStreamResponse if route.stream is not None else Default(JSONResponse)
        router.add_api_route(
            route.path,
            _with_body(method, request_type) if route.typed_body else method,
            methods=[route.method],
            status_code=route.status_code,
            dependencies=[
                *guards[route.guard],
                *(Depends(getattr(api, name)) for name in route.dependencies),
            ],
            responses=route.responses(),
            response_class=answer,
            response_model_exclude_none=route.exclude_none,
            route_class_override=APIRoute if route.guard == "otlp" else None,
        )
    return router


def _on(asked: bool | None, setting: bool) -> bool:
    return setting if asked is None else asked


def _receiver(hub: Hub, settings: Settings) -> OtlpReceiver:
    try:
        from otelstream._ingest import OtlpReceiver
    except ImportError as exc:
        raise ImportError("the OTLP receiver needs the `ingest` extra of otelstream") from exc
    return OtlpReceiver(hub, settings)


def _grpc_receiver(receiver: OtlpReceiver, endpoint: str, settings: Settings) -> GrpcReceiver:
    try:
        from otelstream._ingest.grpc_server import GrpcReceiver
    except ImportError as exc:
        raise ImportError("the OTLP/gRPC receiver needs the `ingest` extra of otelstream") from exc
    return GrpcReceiver(receiver, endpoint, settings)


def _with_body(method: Callable[..., Awaitable[Any]], body: Any) -> Callable[..., Awaitable[Any]]:
    """`method` as an endpoint whose `request` body is `body`: the pipelines' own models, which
    only the router knows. FastAPI reads an endpoint's parameters from its signature, so the
    endpoint says so in its `__signature__` (the standard way, `inspect.signature` honours it)."""

    async def endpoint(**arguments: Any) -> Any:
        return await method(**arguments)

    signature = inspect.signature(method, eval_str=True)
    parameters = [
        parameter.replace(annotation=body) if parameter.name == "request" else parameter
        for parameter in signature.parameters.values()
    ]
    functools.update_wrapper(endpoint, method)  # its name and docstring, for OpenAPI
    endpoint.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return endpoint


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


__all__ = [
    "ErrorDetail",
    "PipelineInfo",
    "PipelineList",
    "RunList",
    "RunRequest",
    "RunStarted",
    "RunSummary",
    "create_router",
    "untraced_streams",
]
