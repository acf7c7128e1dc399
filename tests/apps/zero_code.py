"""A program run under `opentelemetry-instrument` with `OTELSTREAM_HUB` set (the zero-code tests).

    opentelemetry-instrument python -m tests.apps.zero_code ORDER

ORDER is how the program also wires otelstream itself, if at all: `none` (zero-code only),
`setup_telemetry` or `processor` (adds `EventStreamProcessor` to the global provider). It runs
one pipeline with one task and one log line, and prints the run's id.
"""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace

from otelstream.hubs import from_url
from otelstream.processors import EventStreamProcessor
from otelstream.runs import streamed_run
from otelstream.settings import Settings
from otelstream.telemetry import setup_telemetry


def main(order: str) -> None:
    hub = from_url(Settings().hub)
    if order == "setup_telemetry":
        setup_telemetry(hub)
    elif order == "processor":
        trace.get_tracer_provider().add_span_processor(EventStreamProcessor(hub))  # type: ignore[attr-defined]
    tracer = trace.get_tracer("zero_code")
    with streamed_run("zero_code") as run:
        with tracer.start_as_current_span("work"):
            logging.getLogger("zero_code").warning("working")
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    hub.close()
    print(run.run_id, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
