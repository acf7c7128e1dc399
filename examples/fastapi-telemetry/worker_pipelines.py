"""A pipeline whose task hands work to another process, as a Celery or RQ worker would get it.

What travels with the job is a carrier of text headers, `traceparent` and
`otelstream-run` (`otelstream.propagation.inject`). The worker process builds
its own tracer provider with an `EventStreamProcessor` publishing to the same
Redis, so its spans join the run's stream under the task that dispatched them.
Registered only when the hub is a `RedisHub`: a `MemoryHub` cannot see another
process's events.

    python -m examples.fastapi-telemetry.worker_pipelines '<carrier JSON>' 0.1   # the worker
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from opentelemetry import trace

from otelstream import propagation
from otelstream.hubs import Hub

from .pipelines import Pipeline, Seconds

tracer = trace.get_tracer(__name__)
_ROOT = Path(__file__).resolve().parents[2]
_WORKER = f"{__package__}.worker_pipelines"


# -- in the app's process ---------------------------------------------------------------------


def dispatch(seconds: float) -> None:
    """Hand a job to a worker process and wait for it; the carrier goes along as text."""
    with tracer.start_as_current_span("task:dispatch"):
        carrier = propagation.inject({})
        subprocess.run(
            [sys.executable, "-m", _WORKER, json.dumps(carrier), str(seconds)],
            cwd=_ROOT,
            check=True,
            timeout=60,
        )


def summarize() -> str:
    with tracer.start_as_current_span("task:summarize"):
        return "done"


def remote_pipeline(seconds: Seconds = 0.1) -> Pipeline:
    """dispatch a job to a worker process (crunch, in two parts), then summarize."""

    def run() -> str:
        dispatch(seconds)
        return summarize()

    return Pipeline(run)


WORKER_PIPELINES = {"remote": partial(remote_pipeline)}


def worker_pipelines(hub: Hub) -> Mapping[str, Any]:
    """The pipelines above when `hub` reaches other processes (a RedisHub), none otherwise."""
    from otelstream.hubs.memory import MemoryHub

    return {} if isinstance(hub, MemoryHub) else WORKER_PIPELINES


# -- in the worker process --------------------------------------------------------------------


def work(carrier: Mapping[str, str], seconds: float) -> None:
    """The job: its spans are tasks of the run the carrier names, streamed through Redis."""
    from otelstream.hubs.redis import RedisHub
    from otelstream.settings import Settings
    from otelstream.telemetry import setup_telemetry

    hub = RedisHub(os.environ["OTELSTREAM_HUB"], Settings())
    telemetry = setup_telemetry(hub)  # exports too, as the OTEL_* variables say
    worker_tracer = telemetry.provider.get_tracer(__name__)
    try:
        with (
            propagation.attached(dict(carrier)),
            worker_tracer.start_as_current_span("task:crunch"),
        ):
            for part in (1, 2):
                with worker_tracer.start_as_current_span(f"task:crunch_part_{part}"):
                    time.sleep(seconds / 2)
    finally:
        telemetry.shutdown()
        hub.close()  # a worker must write what is buffered before it exits


if __name__ == "__main__":
    work(json.loads(sys.argv[1]), float(sys.argv[2]))
