"""The metric side of `setup_telemetry`: a meter provider from `OTEL_METRICS_EXPORTER`.

otelstream records its run metrics (`otelstream._metrics`) on the global meter provider.
If the app, `opentelemetry-instrument` or logfire set one, it is used as it is and nothing
is built here. Otherwise, as for spans, the variables decide:

- `OTEL_METRICS_EXPORTER`, a comma separated list of `otlp`, `console`, `prometheus`,
  `none`. Unset, it is `otlp` only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set (the spec's default is `otlp`: an app started
  with no variables would retry a collector that is not there), else nothing is built;
- OTLP over `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`
  (`grpc`, the default, or `http/protobuf`); the exporter reads its endpoint, headers and
  temporality preference (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`) itself;
- each push exporter behind a `PeriodicExportingMetricReader`, which reads
  `OTEL_METRIC_EXPORT_INTERVAL` (60 s by default) itself; `prometheus` is the pull reader of
  `opentelemetry-exporter-prometheus` on `OTEL_EXPORTER_PROMETHEUS_HOST`:`_PORT`
  (localhost:9464), or a warning when that package is not installed.

The provider built is made the global one (`set_global`), else otelstream's instruments
are bound to it directly; `shutdown` exports what is left.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import metrics
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from otelstream import _metrics
from otelstream.telemetry._otlp import otlp_exporter

if TYPE_CHECKING:
    from otelstream.telemetry._setup import OtelEnvironment

logger = logging.getLogger("otelstream.telemetry")


@dataclass
class MetricTelemetry:
    """The meter provider `setup_telemetry` built, and its readers."""

    provider: MeterProvider
    readers: list[MetricReader] = field(default_factory=list)
    set_global: bool = True

    def shutdown(self) -> None:
        """Collect and export once more, then stop the readers."""
        if not self.set_global:
            _metrics.use(None)  # otelstream's instruments: back to the global provider
        self.provider.shutdown()


def metric_exporter_names(environment: OtelEnvironment) -> list[str]:
    """`OTEL_METRICS_EXPORTER` as a list; unset means `otlp` only if an endpoint is set."""
    if environment.metrics_exporter is None:
        endpoint = environment.exporter_otlp_metrics_endpoint or environment.exporter_otlp_endpoint
        return ["otlp"] if endpoint else []
    names = [name.strip().lower() for name in environment.metrics_exporter.split(",")]
    return [name for name in names if name and name != "none"]


def metric_readers(names: list[str], protocol: str) -> list[MetricReader]:
    """A reader for each exporter named; raises ValueError for unsupported values."""
    readers: list[MetricReader] = []
    for name in names:
        if name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        elif name == "otlp":
            readers.append(PeriodicExportingMetricReader(otlp_exporter(protocol, "metrics")))
        elif name == "prometheus":
            reader = _prometheus_reader()
            if reader is not None:
                readers.append(reader)
        else:
            raise ValueError(
                f"OTEL_METRICS_EXPORTER={name!r}: otelstream builds otlp, console, prometheus "
                "or none; set up other exporters on your own meter provider"
            )
    return readers


def _prometheus_reader() -> MetricReader | None:
    """The Prometheus reader, its scrape endpoint started; None (warned) if not installed."""
    try:
        prometheus = importlib.import_module("opentelemetry.exporter.prometheus")
        client = importlib.import_module("prometheus_client")
    except ImportError:
        logger.warning(
            "otelstream: OTEL_METRICS_EXPORTER=prometheus needs opentelemetry-exporter-prometheus"
            " (pip install opentelemetry-exporter-prometheus); metrics are not exported there"
        )
        return None
    host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST") or "localhost"
    port = int(os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT") or 9464)
    client.start_http_server(port, addr=host)
    reader: MetricReader = prometheus.PrometheusMetricReader()
    return reader


def setup_metrics(
    resource: Resource, environment: OtelEnvironment, set_global: bool = True
) -> MetricTelemetry | None:
    """A meter provider with the readers the variables ask for, unless a global one is set
    already (otelstream records there) or none is asked for (nothing to build)."""
    if not isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
        return None  # the app's (or opentelemetry-instrument's): otelstream's metrics go there
    names = metric_exporter_names(environment)
    readers = metric_readers(names, environment.otlp_protocol("metrics"))
    if not readers:
        return None
    provider = MeterProvider(metric_readers=readers, resource=resource)
    if set_global:
        metrics.set_meter_provider(provider)  # the proxy meter binds otelstream's instruments
    else:
        _metrics.use(provider)
    logger.info(
        "otelstream: meter provider exporting to %s",
        ", ".join(type(getattr(r, "_exporter", r)).__name__ for r in readers),
    )
    return MetricTelemetry(provider, readers, set_global)


__all__ = ["MetricTelemetry", "metric_exporter_names", "metric_readers", "setup_metrics"]
