"""What the runs API's endpoints share: its state (the hub, the runner, the open streams, the
token signer) and the steps that several endpoints take: starting a run, a run's position or
its 404, a subscription answered as the SSE response.

`RunsAPI` (`api.py`) is built on it, so that each endpoint there reads as what it does, and
what they have in common is written once, here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import HTTPException
from opentelemetry import trace

from otelstream._server.access import RunTokens
from otelstream._server.models import RUN_ID, RunRequest, shown_id
from otelstream._server.parameters import call_arguments
from otelstream._server.sse import EventStreamResponse, OpenStreams
from otelstream.events import format_time
from otelstream.hubs import Hub, HubUnavailable, RunPosition, Subscription, UnknownRun
from otelstream.hubs._history import Expectations, expectations
from otelstream.runs import PipelineRunner, RunHandle, RunsFull
from otelstream.settings import Settings

if TYPE_CHECKING:
    from otelstream._ingest import OtlpReceiver


class RunsBase:
    """What the routes share: the hub, the runner, the open streams, the token signer."""

    def __init__(
        self,
        hub: Hub,
        runner: PipelineRunner,
        settings: Settings,
        prefix: str = "",
        receiver: OtlpReceiver | None = None,
    ) -> None:
        self.hub = hub
        self.receiver = receiver
        self.runner = runner
        self.settings = settings
        self.prefix = prefix
        secret = settings.run_token_secret
        self.tokens = RunTokens(secret.get_secret_value() if secret else None)
        self.streams = OpenStreams(settings.max_streams)

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
        expected = await self.expectations(request.pipeline_name)
        try:
            handle = self.runner.start(request.pipeline_name, parameters, expected=expected)
        except RunsFull as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        await self.hub.flush()  # its start is stored: every worker knows the run from now on
        return handle

    async def expectations(self, name: str) -> Expectations | None:
        """What the pipeline's history says is usual; none when the hub is slow to say (a run
        is not held up for it: its events then carry no expectation)."""
        try:
            async with asyncio.timeout(EXPECTATIONS_WAIT_S):
                return expectations(await self.hub.history(name))
        except (HubUnavailable, TimeoutError):
            return None

    async def position(self, run_id: str) -> RunPosition:
        position = await self.hub.position(run_id) if RUN_ID.fullmatch(run_id) else None
        if position is None:
            raise self.unknown_run(run_id)
        return position

    def unknown_run(self, run_id: str) -> HTTPException:
        """The 404 of a run the hub does not know; a hub that keeps runs in this process alone
        (`started_ns`) says since when, as a run of a server before a restart is gone."""
        detail = f"unknown or expired run {shown_id(run_id)}"
        started = getattr(self.hub, "started_ns", None)
        if isinstance(started, int):
            detail += (
                f": runs are kept in memory, since the server started at {format_time(started)}"
            )
        return HTTPException(404, detail)

    def stream(self, run_id: str, after: int = 0) -> EventStreamResponse:
        try:
            subscription = self.hub.subscribe(run_id, after)
        except UnknownRun:
            raise self.unknown_run(run_id) from None
        return self.respond(subscription, run_id)

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


EXPECTATIONS_WAIT_S = 0.25
"""How long a run's start waits for its pipeline's history (the hub answered a moment ago)."""


__all__ = ["RunsBase"]
