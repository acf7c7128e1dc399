"""setup_telemetry: one call that gives the app a tracer provider that exports and streams.

    telemetry = setup_telemetry(hub)      # at start-up, before the app handles requests
    ...
    telemetry.shutdown()                  # in the lifespan's shutdown: flushes the exporter

If the application, `opentelemetry-instrument` or logfire already set an SDK
tracer provider, otelstream adds its `EventStreamProcessor` to it and replaces
nothing: that provider's exporters, resource and sampler stay as they are (wrap
that sampler in `otelstream.sampling.RunSampler` yourself, or sampled-out runs
do not stream). Otherwise it builds one from the standard variables:

- resource: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` (read by the SDK);
- sampler: `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, wrapped in `RunSampler`;
- exporters, each behind a `BatchSpanProcessor`: `OTEL_TRACES_EXPORTER`, a comma
  separated list of `otlp`, `console`, `none`. Unlike the spec's default
  (`otlp`), an unset `OTEL_TRACES_EXPORTER` exports over OTLP only when
  `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set,
  so an app started with no variables streams without retrying a collector that
  is not there;
- OTLP protocol: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`,
  `grpc` (the Python SDK's default) or `http/protobuf`; the exporters read their
  endpoints, headers, timeouts and certificates from the `OTEL_EXPORTER_OTLP_*`
  variables themselves (HTTP appends `/v1/traces` to the generic endpoint).

Logs go the same way: an `EventLogProcessor` on the global SDK logger provider
(one is built if none is set), a `LoggingHandler` on the root logger so stdlib
`logging` reaches it, and, when `OTEL_LOGS_EXPORTER` names `otlp` (or
`console`), a `BatchLogRecordProcessor` with that exporter, so the records a
run streams reach the collector too. Unset, logs are streamed, not exported.

Metrics (otelstream's run metrics, `otelstream._metrics`) go to the global meter provider;
if none is set, one is built from `OTEL_METRICS_EXPORTER` as for spans (`_meters.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

from opentelemetry import _logs, trace
from opentelemetry.sdk._logs.export import (
    ConsoleLogRecordExporter,
    LogRecordExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from pydantic_settings import BaseSettings, SettingsConfigDict

from otelstream.hubs import Hub
from otelstream.hubs.memory import MemoryHub
from otelstream.processors import EventLogProcessor, EventStreamProcessor
from otelstream.runs._mark import STREAMED_MARK
from otelstream.sampling import sampler_from_env
from otelstream.settings import Settings
from otelstream.telemetry._logs import LogTelemetry, setup_logs
from otelstream.telemetry._meters import MetricTelemetry, setup_metrics
from otelstream.telemetry._otlp import otlp_exporter

__all__ = [
    "OtelEnvironment",
    "Telemetry",
    "log_exporters",
    "setup_telemetry",
    "span_exporters",
]

logger = logging.getLogger("otelstream.telemetry")


class OtelEnvironment(BaseSettings):
    """The standard `OTEL_*` variables that decide which exporters otelstream builds.

    The SDK and the exporters read the others (resource, sampler, endpoints,
    headers) themselves, as they would without otelstream.
    """

    model_config = SettingsConfigDict(
        env_prefix="OTEL_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    traces_exporter: str | None = None
    exporter_otlp_endpoint: str | None = None
    exporter_otlp_traces_endpoint: str | None = None
    exporter_otlp_protocol: str | None = None
    exporter_otlp_traces_protocol: str | None = None
    logs_exporter: str | None = None
    exporter_otlp_logs_protocol: str | None = None
    metrics_exporter: str | None = None
    exporter_otlp_metrics_endpoint: str | None = None
    exporter_otlp_metrics_protocol: str | None = None

    def exporter_names(self) -> list[str]:
        """`OTEL_TRACES_EXPORTER` as a list; unset means `otlp` only if an endpoint is set."""
        if self.traces_exporter is None:
            explicit = self.exporter_otlp_traces_endpoint or self.exporter_otlp_endpoint
            return ["otlp"] if explicit else []
        names = [name.strip().lower() for name in self.traces_exporter.split(",")]
        return [name for name in names if name and name != "none"]

    def otlp_protocol(self, signal: str = "traces") -> str:
        """The signal's own protocol, else the common one, else OTLP's default (gRPC)."""
        specific = {
            "logs": self.exporter_otlp_logs_protocol,
            "metrics": self.exporter_otlp_metrics_protocol,
        }.get(signal, self.exporter_otlp_traces_protocol)
        protocol = specific or self.exporter_otlp_protocol or "grpc"
        return protocol.strip().lower()

    def log_exporter_names(self) -> list[str]:
        """`OTEL_LOGS_EXPORTER` as a list; unset: none (logs are streamed, not exported)."""
        names = [name.strip().lower() for name in (self.logs_exporter or "").split(",")]
        return [name for name in names if name and name != "none"]


_CONSOLE: dict[str, Any] = {"traces": ConsoleSpanExporter, "logs": ConsoleLogRecordExporter}


def span_exporters(environment: OtelEnvironment | None = None) -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` asks for; raises ValueError for unsupported values."""
    return _exporters("traces", environment or OtelEnvironment())


def log_exporters(environment: OtelEnvironment | None = None) -> list[LogRecordExporter]:
    """The exporters `OTEL_LOGS_EXPORTER` asks for; raises ValueError for unsupported values."""
    return _exporters("logs", environment or OtelEnvironment())


def _exporters(signal: str, environment: OtelEnvironment) -> list[Any]:
    """One rule for both signals: `console`, `otlp` (over `OTEL_EXPORTER_OTLP_*_PROTOCOL`) or
    none; anything else is the app's to set up on a provider of its own."""
    if signal == "traces":
        names, asked, owner = environment.exporter_names(), environment.traces_exporter, "tracer"
    else:
        names, asked, owner = environment.log_exporter_names(), environment.logs_exporter, "logger"
    exporters: list[Any] = []
    for name in names:
        if name == "console":
            exporters.append(_CONSOLE[signal]())
        elif name == "otlp":
            exporters.append(otlp_exporter(environment.otlp_protocol(signal), signal))
        else:
            raise ValueError(
                f"OTEL_{signal.upper()}_EXPORTER={asked!r}: otelstream builds "
                f"otlp, console or none; set up other exporters on your own {owner} provider"
            )
    return exporters


@dataclass
class Telemetry:
    """What `setup_telemetry` set up, and how to flush it."""

    provider: trace.TracerProvider
    """The provider that carries the stream processor (also the global one, normally)."""
    hub: Hub
    processor: EventStreamProcessor
    owns_provider: bool
    """True when otelstream built the provider; False when it extended an existing one."""
    exporters: list[SpanExporter] = field(default_factory=list)
    """The exporters otelstream added; none when it extended an existing provider."""
    sampler: Sampler | None = None
    """The sampler of the provider otelstream built (a `RunSampler`)."""
    logs: LogTelemetry | None = None
    """The log side: processor, handler, logger provider and exporters."""
    metrics: MetricTelemetry | None = None
    """The meter provider built from `OTEL_METRICS_EXPORTER`; None when one was set already
    (or none was asked for)."""
    _closed: bool = field(default=False, repr=False)

    def shutdown(self) -> None:
        """Flush spans still queued for export; close the provider only if otelstream built it.
        On a provider that lives on, the stream processor it added is shut down (it stays on
        the provider, which cannot remove it, and streams no more)."""
        if self._closed:
            return
        self._closed = True
        if self.logs is not None:
            self.logs.shutdown()
        if self.metrics is not None:
            self.metrics.shutdown()
        if self.owns_provider:
            cast(TracerProvider, self.provider).shutdown()
            return
        force_flush = getattr(self.provider, "force_flush", None)
        if callable(force_flush):
            force_flush()
        self.processor.shutdown()


def setup_telemetry(
    hub: Hub | None = None,
    *,
    settings: Settings | None = None,
    environment: OtelEnvironment | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    set_global: bool = True,
    logger_provider: _logs.LoggerProvider | None = None,
    logs: bool = True,
) -> Telemetry:
    """Stream runs to `hub` (default: a new `MemoryHub`) and export spans as the variables say.

    `tracer_provider`, if given, is extended instead of the global one; with
    `set_global=False` a provider built here is not made the global one (tests).
    Call it once per provider: every call adds another processor. `logger_provider` is
    extended likewise for logs; `logs=False` leaves logging alone.
    """
    settings = settings or (hub.settings if hub is not None else Settings())
    hub = hub if hub is not None else MemoryHub(settings)
    processor = EventStreamProcessor(hub, settings)

    def with_logs_and_metrics(telemetry: Telemetry) -> Telemetry:
        resource = getattr(telemetry.provider, "resource", None) or Resource.create()
        telemetry.metrics = setup_metrics(resource, environment or OtelEnvironment(), set_global)
        if logs:
            telemetry.logs = setup_logs(
                EventLogProcessor(hub, settings),
                settings,
                resource,
                lambda: log_exporters(environment),
                logger_provider,
                set_global,
            )
        return telemetry

    existing = tracer_provider
    if existing is None:
        current = trace.get_tracer_provider()
        if not isinstance(current, trace.ProxyTracerProvider):  # someone set one already
            existing = current
    if existing is not None:
        add = getattr(existing, "add_span_processor", None)
        if callable(add):
            add(processor)
            return with_logs_and_metrics(Telemetry(existing, hub, processor, owns_provider=False))
        if tracer_provider is not None:
            raise TypeError(f"{type(existing).__name__} takes no span processors: use the SDK's")
        logger.warning(
            "otelstream: the global tracer provider (%s) takes no span processors; runs stream "
            "only through the provider returned by setup_telemetry",
            type(existing).__name__,
        )
        set_global = False

    exporters = span_exporters(environment)
    sampler = sampler_from_env()
    # marked: its spans, sent on to otelstream's OTLP receiver by a collector, stream once
    provider = TracerProvider(resource=Resource.create({STREAMED_MARK: True}), sampler=sampler)
    # Streaming first: events reach subscribers before the span is queued for export.
    processors: list[SpanProcessor] = [processor]
    processors.extend(BatchSpanProcessor(exporter) for exporter in exporters)
    for span_processor in processors:
        provider.add_span_processor(span_processor)
    if set_global:
        trace.set_tracer_provider(provider)
    logger.info(
        "otelstream: tracer provider with %s, exporting to %s",
        sampler.get_description(),
        ", ".join(type(exporter).__name__ for exporter in exporters) or "nothing",
    )
    return with_logs_and_metrics(Telemetry(provider, hub, processor, True, exporters, sampler))
