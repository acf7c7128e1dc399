"""The example's pipelines. Task code only opens spans: otelstream turns them into events.

Each builder returns an object with `execute()`, as the original example's
builders did; the registry maps names to `functools.partial` builders.

The parameters anyone can send are bounded in the signatures (`Seconds`,
`Width`): a NaN, a negative or hour-long sleep, or hundreds of threads are a 422
before any run starts. Long waits call `otelstream.check_cancelled()`, so a
cancelled run (or a server shutting down) stops them at once, not at the next span.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Annotated, Any

from opentelemetry import trace
from pydantic import Field

import otelstream
from otelstream import progress

tracer = trace.get_tracer(__name__)
log = logging.getLogger("example.ingest")

MAX_SECONDS = 60.0
MAX_WIDTH = 32
Seconds = Annotated[
    float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds each task takes")
]
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH, description="shards fetched, a thread each")]


def wait(seconds: float) -> None:
    """`time.sleep`, but a cancelled run stops it within 50 ms: it opens no span to stop at."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        otelstream.check_cancelled()
        time.sleep(min(left, 0.05))


class Pipeline:
    """What a builder returns: the steps of one run, executed in order by `execute()`."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self._run = run

    def execute(self) -> Any:
        return self._run()


# -- tasks: each one opens a span, and that is all it does for telemetry ----------------------


def compute(seconds: float) -> int:
    with tracer.start_as_current_span("task:compute"):
        wait(seconds)
        return 42


def finalize(result: int, seconds: float) -> dict[str, int]:
    with tracer.start_as_current_span("task:finalize"):
        wait(seconds)
        return {"final": result * 2}


def validate(result: int) -> None:
    with tracer.start_as_current_span("task:validate"):
        raise ValueError(f"result {result} is out of range")


def fetch_shard(index: int, seconds: float) -> list[int]:
    with tracer.start_as_current_span(f"task:fetch_shard_{index}"):
        wait(seconds)
        return [index] * 3


def merge(shards: list[list[int]]) -> int:
    with tracer.start_as_current_span("task:merge"):
        return sum(map(sum, shards))


def prepare(seconds: float) -> list[str]:
    with tracer.start_as_current_span("task:prepare"):
        with tracer.start_as_current_span("task:load"):
            wait(seconds)
            rows = ["a", " b ", "c "]
        with tracer.start_as_current_span("task:clean"):
            wait(seconds)
            return [row.strip() for row in rows]


def report(rows: list[str]) -> str:
    with tracer.start_as_current_span("task:report"):
        return ",".join(rows)


def read_files(files: int, seconds: float) -> list[str]:
    """Stdlib logging and `progress()` only: both stream live, as task_log and task_progress."""
    with tracer.start_as_current_span("task:read_files") as span:
        span.set_attribute("files", files)  # shown where OTELSTREAM_ATTRIBUTE_ALLOWLIST has it
        rows = []
        for index in range(1, files + 1):
            name = f"part-{index:03d}.csv"
            log.info("reading %s", name)
            wait(seconds)
            rows.append(name)
            progress(index, files, name)
        return rows


def index_rows(rows: list[str]) -> int:
    with tracer.start_as_current_span("task:index"):
        if len(rows) < 3:
            log.warning("only %d files: the index will be small", len(rows))
        log.info("indexed %d files", len(rows))
        return len(rows)


# -- builders -----------------------------------------------------------------------------------


def example_pipeline(seconds: Seconds = 1.0) -> Pipeline:
    """compute, then finalize: the original example."""
    return Pipeline(lambda: finalize(compute(seconds), seconds / 2))


def failing_pipeline(seconds: Seconds = 0.5) -> Pipeline:
    """compute, then validate, which raises: the run ends in error."""
    return Pipeline(lambda: validate(compute(seconds)))


def parallel_pipeline(width: Width = 4, seconds: Seconds = 0.5) -> Pipeline:
    """fetch `width` shards in parallel threads, then merge them."""

    def run() -> int:
        with ThreadPoolExecutor(width) as pool:
            # copy_context carries the run's span into each thread
            futures = [
                pool.submit(contextvars.copy_context().run, fetch_shard, index, seconds)
                for index in range(width)
            ]
            shards = [future.result() for future in futures]
        return merge(shards)

    return Pipeline(run)


def nested_pipeline(seconds: Seconds = 0.25) -> Pipeline:
    """prepare (load, then clean, as sub-tasks), then report."""
    return Pipeline(lambda: report(prepare(seconds)))


def ingest_pipeline(
    files: Annotated[int, Field(ge=0, le=100)] = 5, seconds: Seconds = 0.2
) -> Pipeline:
    """read files one by one (logging each, reporting progress), then index them."""
    return Pipeline(lambda: index_rows(read_files(files, seconds)))


PIPELINE_REGISTRY = {
    "example": partial(example_pipeline),
    "failing": partial(failing_pipeline),
    "parallel": partial(parallel_pipeline),
    "nested": partial(nested_pipeline),
    "ingest": partial(ingest_pipeline),
}
