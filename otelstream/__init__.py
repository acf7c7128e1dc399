"""otelstream: live Server-Sent Events of your pipelines, from the OpenTelemetry spans they make.

The names below load on first use (PEP 562), so `import otelstream.client` pulls in
neither the OpenTelemetry SDK nor the server side.
"""

import importlib as _importlib
import importlib.metadata as _metadata
import typing as _typing

__version__ = _metadata.version("otelstream")  # one place: pyproject.toml's [project] version

if _typing.TYPE_CHECKING:
    from otelstream.events import Event
    from otelstream.hubs import Hub, UnknownRun
    from otelstream.hubs.memory import MemoryHub
    from otelstream.processors import EventLogProcessor, EventStreamProcessor
    from otelstream.processors._progress import progress
    from otelstream.runs import PipelineRunner, RunHandle, streamed_run
    from otelstream.runs._mark import RunCancelled, check_cancelled, is_cancelled
    from otelstream.sampling import RunSampler
    from otelstream.settings import Settings
    from otelstream.telemetry import Telemetry, setup_telemetry

_WHERE = {
    "Event": "otelstream.events",
    "EventLogProcessor": "otelstream.processors",
    "EventStreamProcessor": "otelstream.processors",
    "Hub": "otelstream.hubs",
    "MemoryHub": "otelstream.hubs.memory",
    "PipelineRunner": "otelstream.runs",
    "RunCancelled": "otelstream.runs._mark",
    "RunHandle": "otelstream.runs",
    "RunSampler": "otelstream.sampling",
    "Settings": "otelstream.settings",
    "Telemetry": "otelstream.telemetry",
    "UnknownRun": "otelstream.hubs",
    "check_cancelled": "otelstream.runs._mark",
    "is_cancelled": "otelstream.runs._mark",
    "progress": "otelstream.processors._progress",
    "setup_telemetry": "otelstream.telemetry",
    "streamed_run": "otelstream.runs",
}


def __getattr__(name: str) -> _typing.Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'otelstream' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # once: later reads are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Event",
    "EventLogProcessor",
    "EventStreamProcessor",
    "Hub",
    "MemoryHub",
    "PipelineRunner",
    "RunCancelled",
    "RunHandle",
    "RunSampler",
    "Settings",
    "Telemetry",
    "UnknownRun",
    "check_cancelled",
    "is_cancelled",
    "progress",
    "setup_telemetry",
    "streamed_run",
]
