"""An app for what people meet: text that tries to drive a terminal, a long error, a run that
logs ERROR and still succeeds, and a slow run to cancel, with typed, bounded, described
parameters for the page's form. Set up as a user would (`setup_telemetry`: spans and logs)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated, Literal

from fastapi import FastAPI
from opentelemetry import context, trace
from pydantic import Field

import otelstream
from otelstream import MemoryHub, Settings
from otelstream.fastapi import create_router
from otelstream.telemetry import setup_telemetry

hub = MemoryHub()
telemetry = setup_telemetry(hub)
tracer = trace.get_tracer(__name__, tracer_provider=telemetry.provider)
log = logging.getLogger("people")

LONG_ERROR = "the upstream answered: " + "a very long line of detail " * 230  # about 6 KB


def hostile(label: str = "") -> None:
    """a task named `label` logs it, reports it as progress, then raises it."""
    with tracer.start_as_current_span(f"task:{label}"):
        log.error("log: %s", label)
        otelstream.progress(1, 2, label)
        raise RuntimeError(f"error: {label}")


def long_error() -> None:
    """fails with a 6 KB message."""
    with tracer.start_as_current_span("task:fetch"):
        raise ConnectionError(LONG_ERROR)


def gives_up() -> None:
    """a task succeeds, then the pipeline itself raises (no task did)."""
    with tracer.start_as_current_span("task:try"):
        pass
    raise TimeoutError("gave up after 3 tries")


def logs_errors() -> None:
    """logs two ERROR records and still succeeds."""
    with tracer.start_as_current_span("task:check"):
        log.error("3 rows could not be parsed")
        log.error("the checksum did not match")


def chatty(lines: int = 30) -> None:
    """logs `lines` lines, a few of them long."""
    with tracer.start_as_current_span("task:talk"):
        for n in range(lines):
            log.info("line %d %s", n, "and more " * (40 if n % 7 == 0 else 1))


def slow(
    seconds: Annotated[
        float, Field(ge=0, le=120, description="how long the one task takes", allow_inf_nan=False)
    ] = 30.0,
    rows: Annotated[int, Field(ge=1, le=1000, description="rows to make")] = 10,
    mode: Literal["fast", "careful"] = "fast",
    dry_run: bool = False,
    label: str = "nightly",
    tags: list[str] | None = None,
) -> None:
    """one task that waits `seconds` (cancellable), under a parent task."""
    with tracer.start_as_current_span("task:prepare"):
        with tracer.start_as_current_span("task:wait"):
            for _ in range(int(seconds * 20)):
                otelstream.check_cancelled()
                time.sleep(0.05)


def leaves_a_task(seconds: float = 5.0) -> None:
    """hands a task to a thread of its own and ends without waiting for it (as a run whose
    worker died does): the run's end ends the task, Unfinished."""
    began = threading.Event()
    parent = context.get_current()

    def straggle() -> None:
        token = context.attach(parent)
        try:
            with tracer.start_as_current_span("task:straggler"):
                began.set()
                time.sleep(seconds)
        finally:
            context.detach(token)

    threading.Thread(target=straggle, daemon=True).start()
    began.wait(10)


app = FastAPI(title="people")
# the same runs behind run tokens, under /locked: reading or cancelling one needs its token
app.include_router(
    create_router(
        hub=hub,
        pipelines={"slow": slow},
        tracer_provider=telemetry.provider,
        settings=Settings(require_run_token=True),
        prefix="/locked",
    )
)
app.include_router(
    create_router(
        hub=hub,
        pipelines={
            "hostile": hostile,
            "long_error": long_error,
            "gives_up": gives_up,
            "logs_errors": logs_errors,
            "slow": slow,
            "chatty": chatty,
            "leaves_a_task": leaves_a_task,
        },
        tracer_provider=telemetry.provider,
    )
)
