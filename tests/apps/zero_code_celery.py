"""A Celery app with no otelstream code, for the zero-code worker test.

    opentelemetry-instrument celery -A tests.apps.zero_code_celery worker --pool=prefork
    opentelemetry-instrument python -m tests.apps.zero_code_celery    # dispatches one run
    opentelemetry-instrument python -m tests.apps.zero_code_celery --at-once

Both run under `opentelemetry-instrument` with `OTELSTREAM_HUB` and
`OTEL_PROPAGATORS=tracecontext,baggage,otelstream_run`: the worker's task spans stream under the
dispatching task. The dispatcher prints its run's id and ends the run when a line comes on stdin.
The broker is `CELERY_BROKER` (a Redis database of its own).
"""

from __future__ import annotations

import os
import sys

from celery import Celery
from opentelemetry import trace

app = Celery(
    "zero_code_celery",
    broker=os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6379/1"),
    backend=os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6379/1"),
)
app.conf.broker_connection_retry_on_startup = True
tracer = trace.get_tracer("zero_code_celery")


@app.task(name="zero_code_celery.resize")
def resize(size: int) -> int:
    with tracer.start_as_current_span("resize-image"):
        return size * 2


def dispatch() -> None:
    from otelstream.runs import streamed_run  # the app's side: it starts the run

    with streamed_run("thumbnails") as run:
        print(run.run_id, flush=True)
        with tracer.start_as_current_span("dispatch"):
            assert resize.delay(21).get(timeout=30) == 42
            # the live test holds the run open until it has seen the worker's spans; with
            # --at-once the run ends as `.get()` returns, as most code does: its end waits for
            # the worker's span under the dispatch (its PRODUCER span) to end
            if "--at-once" not in sys.argv:
                sys.stdin.readline()
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]


if __name__ == "__main__":
    dispatch()
