"""Run metrics for operators, through the OpenTelemetry Metrics API (issue 31.6).

otelstream exports no metrics itself: it records them on the meter `otelstream` of the
global meter provider, which the application (or `setup_telemetry`, from
`OTEL_METRICS_EXPORTER`) sets up with the readers and exporters it wants. The meter is
taken on first use; the API's proxy meter binds it to a provider set later, so recording
before the provider exists is not lost work, only unexported. With no provider at all
every call costs a no-op.

Recording never raises into the caller, and nothing here is called per span: a run's end
(on the hub's sealing thread or the Redis writer's loop), a stream's open and close, an
OTLP request. Counts that happen on the span thread (a run admitted, an event refused by
the hub) go to plain tallies under a lock; asynchronous instruments read them when the
reader collects, so the span thread never reaches the SDK.

Every user may import this module (it imports nothing else of otelstream but the version).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from otelstream import __version__
from otelstream._errors import report

PIPELINE: Final = "otelstream.pipeline"
STATUS: Final = "otelstream.run.status"
REASON: Final = "otelstream.reason"
OUTCOME: Final = "otelstream.outcome"
KIND: Final = "otelstream.overdue.kind"
STREAM: Final = "otelstream.stream"

MAX_PIPELINES: Final = 1_000
"""Pipelines the active-runs tally keeps apart; beyond, runs count under `OTHER`."""
OTHER: Final = "_other"

DURATION_BUCKETS: Final = (
    *(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    *(120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0),
)
"""Seconds: a pipeline run takes from milliseconds to hours (the SDK's default is for ms)."""


class _Tally:
    """Counts by key, added to from any thread, read by an asynchronous instrument."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, key: tuple[str, str], amount: int = 1) -> None:
        with self._lock:
            counts = self.counts
            if key not in counts and len(counts) >= MAX_PIPELINES:
                key = (key[0], OTHER)
            counts[key] = counts.get(key, 0) + amount

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self.counts.items())
        return [Observation(count, {attribute: value}) for (attribute, value), count in counts]


_active = _Tally()  # (PIPELINE, name) -> runs started and not ended, by this process's hub
_dropped = _Tally()  # (REASON, why) -> events and log records never streamed
_cut = _Tally()  # (REASON, notice) -> streams ended early (their readers may resume)


class _Instruments:
    """The instruments on one meter (the global provider's, or a test's)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.run_duration = meter.create_histogram(
            "otelstream.run.duration",
            unit="s",
            description="How long runs took, by pipeline and status, recorded as they end.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.tasks_overdue = meter.create_counter(
            "otelstream.tasks.overdue",
            unit="{task}",
            description="Tasks and runs found running past their pipeline's usual duration.",
        )
        self.streams_open = meter.create_up_down_counter(
            "otelstream.streams.open",
            unit="{stream}",
            description="SSE streams open on this process (a run's, or the runs list).",
        )
        self.ingest_spans = meter.create_counter(
            "otelstream.ingest.spans",
            unit="{span}",
            description="Spans received over OTLP, accepted or rejected.",
        )
        self.ingest_log_records = meter.create_counter(
            "otelstream.ingest.log_records",
            unit="{log_record}",
            description="Log records received over OTLP, accepted or rejected.",
        )
        meter.create_observable_up_down_counter(
            "otelstream.runs.active",
            [_active.observe],
            unit="{run}",
            description="Runs this process's hub started and has not seen end.",
        )
        meter.create_observable_counter(
            "otelstream.events.dropped",
            [_dropped.observe],
            unit="{event}",
            description="Events and log records that never reached the streams, by reason.",
        )
        meter.create_observable_counter(
            "otelstream.streams.cut",
            [_cut.observe],
            unit="{stream}",
            description="Streams ended before their run (the reader may resume), by reason.",
        )


_instruments: _Instruments | None = None
_lock = threading.Lock()


def use(provider: metrics.MeterProvider | None = None) -> None:
    """Record on `provider`'s meter from now on (None: the global provider's, again).

    For tests and for apps that keep a meter provider of their own out of the global one.
    Tallies (active runs, drops, cuts) are the process's: a new provider reads them whole.
    """
    global _instruments
    with _lock:
        meter = (
            provider.get_meter("otelstream", __version__)
            if provider is not None
            else metrics.get_meter("otelstream", __version__)
        )
        _instruments = _Instruments(meter)


def _get() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments(metrics.get_meter("otelstream", __version__))
    return _instruments


def run_started(pipeline: str) -> None:
    """A hub admitted a run (from any thread, the span thread too: a tally, no SDK call)."""
    try:
        _active.add((PIPELINE, pipeline))
    except Exception:
        report("otelstream metrics")


def run_ended(pipeline: str, status: str, duration_s: float | None, started: bool = True) -> None:
    """A run's end as its hub stored it: its duration, and one active run less (`started`:
    the hub counted its start)."""
    try:
        if started:
            _active.add((PIPELINE, pipeline), -1)
        if duration_s is not None:
            _get().run_duration.record(duration_s, {PIPELINE: pipeline, STATUS: status})
    except Exception:
        report("otelstream metrics")


def dropped(reason: str, count: int = 1) -> None:
    """Events (or log records) that will never stream: a tally, safe on the span thread."""
    try:
        _dropped.add((REASON, reason), count)
    except Exception:
        report("otelstream metrics")


def stream_cut(reason: str) -> None:
    """A stream ended early (`stream_overflow`, `events_lost`, `send_timeout`)."""
    try:
        _cut.add((REASON, reason))
    except Exception:
        report("otelstream metrics")


def stream_opened(stream: str, change: int = 1) -> None:
    """An SSE stream opened (`change=-1`: closed); `stream` is `run` or `runs`."""
    try:
        _get().streams_open.add(change, {STREAM: stream})
    except Exception:
        report("otelstream metrics")


def ingested(signal: str, accepted: int, rejected: int) -> None:
    """One OTLP request's spans (`signal="spans"`) or log records (`"log_records"`)."""
    try:
        instruments = _get()
        counter = instruments.ingest_spans if signal == "spans" else instruments.ingest_log_records
        if accepted:
            counter.add(accepted, {OUTCOME: "accepted"})
        if rejected:
            counter.add(rejected, {OUTCOME: "rejected"})
    except Exception:
        report("otelstream metrics")


def overdue(kind: str, pipeline: str | None = None) -> None:
    """A task (`kind="task"`) or a run (`"pipeline"`) found running past its usual duration."""
    try:
        attributes: dict[str, Any] = {KIND: kind}
        if pipeline is not None:
            attributes[PIPELINE] = pipeline
        _get().tasks_overdue.add(1, attributes)
    except Exception:
        report("otelstream metrics")


__all__ = [
    "dropped",
    "ingested",
    "overdue",
    "run_ended",
    "run_started",
    "stream_cut",
    "stream_opened",
    "use",
]
