"""One app, wired as each documented set-up wires otelstream, for the set-up x feature matrix
(tests/house/test_setups_matrix.py). `MATRIX_SETUP` names the set-up:

- `drop-in`: the README's lines, a provider of the app's own, `MemoryHub()`, the processor built
  before the router, and the logs guide's own log set-up; the receiver on by the router's
  argument (`create_router(..., otlp_ingest=True)`); `drop-in-grpc` the same with only the
  gRPC receiver, by `create_router(..., otlp_grpc_endpoint=MATRIX_GRPC)`.
- `setup_telemetry`: `setup_telemetry(hub)` on a Redis hub built with `Settings(...)`, which
  turn the receiver on and name the spans to hide.
- `zero-code`: started by `opentelemetry-instrument` with `OTELSTREAM_HUB`: no processor of the
  app's own; the router's hub is `hub_from_settings()`, the receiver on by the router's argument.
- `logfire`: `logfire.configure(...)` with `EventStreamProcessor(hub)` among its span processors
  and `EventLogProcessor(hub)` among its log record processors (for `progress()`), stdlib
  logging through logfire's handler; the receiver on by `OTELSTREAM_OTLP_INGEST=true`.

Every set-up serves the same pipelines: `calling` calls the service at `SERVICE_URL` (a CLIENT
span whose context travels as `traceparent`), `logging` logs and reports progress in a task,
`handing_off` hands work to a thread (memory hub) or a worker process (Redis) and does not wait
for it, `filtered` nests `task:hidden_step` (hidden by the span filter) between two tasks.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from otelstream import EventStreamProcessor, MemoryHub, Settings, progress, propagation
from otelstream.fastapi import create_router
from otelstream.hubs import Hub, from_url, hub_from_settings

SETUP = os.environ["MATRIX_SETUP"]
_ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("matrix")
closing: list[Callable[[], object]] = []


def drop_in() -> tuple[Hub, Any, dict[str, Any]]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider

    from otelstream import EventLogProcessor
    from otelstream.processors import SafeLoggingHandler

    hub = MemoryHub()
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(EventLogProcessor(hub))
    logging.getLogger().addHandler(SafeLoggingHandler(logger_provider=logger_provider))
    logging.getLogger().setLevel(logging.INFO)
    closing.extend([provider.shutdown, logger_provider.shutdown])
    return hub, provider.get_tracer("matrix"), {"tracer_provider": provider, "otlp_ingest": True}


def drop_in_grpc() -> tuple[Hub, Any, dict[str, Any]]:
    """The drop-in, its receiver the gRPC one alone, turned on by the router's argument."""
    hub, tracer, arguments = drop_in()
    del arguments["otlp_ingest"]
    return hub, tracer, {**arguments, "otlp_grpc_endpoint": os.environ["MATRIX_GRPC"]}


def with_setup_telemetry() -> tuple[Hub, Any, dict[str, Any]]:
    from otelstream.telemetry import setup_telemetry

    settings = Settings(otlp_ingest=True, span_exclude=("task:hidden*",))
    hub = from_url(os.environ["MATRIX_HUB"], settings)
    telemetry = setup_telemetry(hub)
    closing.extend([telemetry.shutdown, hub.close])
    return hub, telemetry.provider.get_tracer("matrix"), {"tracer_provider": telemetry.provider}


def zero_code() -> tuple[Hub, Any, dict[str, Any]]:
    hub = hub_from_settings()  # the processors are the entry point's, on a hub of their own
    closing.append(hub.close)
    return hub, trace.get_tracer("matrix"), {"otlp_ingest": True}


def with_logfire() -> tuple[Hub, Any, dict[str, Any]]:
    import logfire

    from otelstream import EventLogProcessor

    hub = MemoryHub()
    logfire.configure(
        send_to_logfire=False,
        console=False,
        additional_span_processors=[EventStreamProcessor(hub)],
        advanced=logfire.AdvancedOptions(log_record_processors=[EventLogProcessor(hub)]),
    )
    logging.basicConfig(handlers=[logfire.LogfireLoggingHandler()], level=logging.INFO)
    return hub, None, {}


SETUPS = {
    "drop-in": drop_in,
    "drop-in-grpc": drop_in_grpc,
    "setup_telemetry": with_setup_telemetry,
    "zero-code": zero_code,
    "logfire": with_logfire,
}
hub, tracer, router_arguments = SETUPS[SETUP]()


def task(name: str) -> AbstractContextManager[Any]:
    """A task span as the set-up opens one: a tracer's `task:NAME`, or logfire's span."""
    if tracer is None:
        import logfire

        return logfire.span(f"task:{name}")
    return tracer.start_as_current_span(f"task:{name}")  # type: ignore[no-any-return]


def calling() -> None:
    calls = tracer or trace.get_tracer("matrix")
    with task("quote"), calls.start_as_current_span("POST /price", kind=SpanKind.CLIENT):
        headers: dict[str, str] = {}
        propagate.inject(headers)  # the run's traceparent, as HTTP instrumentation sends it
        httpx.post(os.environ["SERVICE_URL"], headers=headers, timeout=10).raise_for_status()


def logging_pipeline() -> None:
    with task("work"):
        log.warning("working on %d rows", 2)
        progress(1, 2, "first row")
        progress(2, 2, "second row")


def crunch(carrier: dict[str, str]) -> None:
    """The thread a memory hub's run hands work to: it ends after the task that started it."""
    time.sleep(0.3)  # the work: the run's end comes first unless it waits for the hand-off
    with propagation.attached(carrier), task("crunch"):
        for part in (1, 2):
            with task(f"crunch_part_{part}"):
                pass


def handing_off() -> None:
    with task("dispatch"):
        carrier = propagation.inject({})
        if isinstance(hub, MemoryHub):
            threading.Thread(target=crunch, args=(carrier,)).start()
        else:  # a worker process on the shared hub, left running
            worker = [sys.executable, "-m", "tests.apps.handoff_worker", json.dumps(carrier)]
            subprocess.Popen([*worker, "False"], cwd=_ROOT)


def filtered() -> None:
    with task("shown"), task("hidden_step"), task("inner"):
        pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    for close in closing:
        close()


app = FastAPI(lifespan=lifespan)
app.include_router(
    create_router(
        hub=hub,
        pipelines={
            "calling": calling,
            "logging": logging_pipeline,
            "handing_off": handing_off,
            "filtered": filtered,
        },
        **router_arguments,
    )
)
