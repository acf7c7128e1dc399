"""An app that set up its own global SDK tracer provider before calling setup_telemetry.

Run by tests/telemetry/test_telemetry.py in a process of its own (the global provider can
be set once per process). Prints what setup_telemetry did, as JSON.
"""

from __future__ import annotations

import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from otelstream import MemoryHub, streamed_run
from otelstream.telemetry import setup_telemetry

from .logfire_drop_in import events

provider = TracerProvider(sampler=ALWAYS_ON)
exporter = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

hub = MemoryHub()
telemetry = setup_telemetry(hub)  # OTEL_TRACES_EXPORTER=console is set: it must be ignored here
with streamed_run("etl") as run, trace.get_tracer("app").start_as_current_span("task:extract"):
    pass
telemetry.shutdown()
with trace.get_tracer("app").start_as_current_span("after shutdown"):
    pass

json.dump(
    {
        "same_provider": telemetry.provider is provider and trace.get_tracer_provider() is provider,
        "owns_provider": telemetry.owns_provider,
        "exporters": telemetry.exporters,
        "sampler": provider.sampler.get_description(),
        "events": [(e["type"], e["name"]) for e in events(hub, run.run_id)],
        "exported": [span.name for span in exporter.get_finished_spans()],
    },
    sys.stdout,
)
