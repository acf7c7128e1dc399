"""A pipeline that dispatches to a Celery worker with no otelstream code (examples/celery-worker).

Registered only when `CELERY_BROKER` is set and Celery is installed. The task is sent by name
(the app does not import the worker's code) through Celery's instrumentation, which traces the
send (a PRODUCER span) and puts the context in the message headers: with
`OTEL_PROPAGATORS=tracecontext,baggage,otelstream_run` and the same `OTELSTREAM_HUB` (Redis) on
both sides, the worker's spans stream under the dispatching task. The run's end waits for the
worker's span under the send to end, so `.get()` returning first loses nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any

from opentelemetry import trace
from pydantic import Field

tracer = trace.get_tracer(__name__)
Images = Annotated[int, Field(ge=1, le=20, description="images the worker resizes")]


def thumbnails(app: Any, images: Images = 3) -> None:
    """resize `images` images on the Celery worker, then publish them."""
    with tracer.start_as_current_span("task:dispatch"):
        sent = [
            app.send_task("thumbnails.resize", args=[f"img{i}.png", 256]) for i in range(images)
        ]
        done = [result.get(timeout=60) for result in sent]
    with tracer.start_as_current_span("task:publish") as span:
        span.set_attribute("images", len(done))


def celery_pipelines() -> Mapping[str, Callable[..., Any]]:
    """`thumbnails` when `CELERY_BROKER` is set (and the hub is the worker's Redis)."""
    broker = os.environ.get("CELERY_BROKER")
    if not broker:
        return {}
    try:
        from celery import Celery
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
    except ImportError:  # the example runs without Celery: the pipeline is not offered
        return {}
    CeleryInstrumentor().instrument()
    app = Celery("thumbnails", broker=broker, backend=broker)
    pipeline = partial(thumbnails, app)
    pipeline.__doc__ = thumbnails.__doc__
    return {"thumbnails": pipeline}
