"""otelstream: live Server-Sent Events of your pipelines, from the OpenTelemetry spans they make."""

from otelstream._context import RunCancelled
from otelstream.events import Event
from otelstream.hubs import Hub, UnknownRun
from otelstream.hubs.memory import MemoryHub
from otelstream.processors import EventStreamProcessor
from otelstream.runs import PipelineRunner, RunHandle, streamed_run
from otelstream.sampling import RunSampler
from otelstream.settings import Settings
from otelstream.telemetry import Telemetry, setup_telemetry

__all__ = [
    "Event",
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
    "setup_telemetry",
    "streamed_run",
]
