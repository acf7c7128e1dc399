"""The log side of `setup_telemetry`: stdlib `logging` -> LoggingHandler -> the Logs SDK -> events.

The processor goes on the global SDK logger provider if the app (or
`opentelemetry-instrument`, or logfire) set one; else a provider is built with
it first and the exporters `OTEL_LOGS_EXPORTER` asks for after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from opentelemetry import _logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource

from otelstream.events._levels import severity
from otelstream.processors import EventLogProcessor
from otelstream.processors._log_handlers import (
    OTELSTREAM_LOGGER,
    ConsoleFallback,
    SafeLoggingHandler,
    install_console_fallback,
)
from otelstream.settings import Settings


@dataclass
class LogTelemetry:
    """What `setup_telemetry` set up for logs: stdlib `logging` -> handler -> provider."""

    provider: _logs.LoggerProvider
    processor: EventLogProcessor
    handler: SafeLoggingHandler
    owns_provider: bool
    exporters: list[LogRecordExporter] = field(default_factory=list)
    console: ConsoleFallback | None = None
    """The console handler for otelstream's own lines, if this set-up added it."""

    def shutdown(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        if self.console is not None:
            logging.getLogger(OTELSTREAM_LOGGER).removeHandler(self.console)
        if self.owns_provider:
            cast(LoggerProvider, self.provider).shutdown()
        else:  # the provider is the app's (or the global one) and lives on: ours stops
            self.processor.shutdown()


def setup_logs(
    processor: EventLogProcessor,
    settings: Settings,
    resource: Resource,
    exporters: Callable[[], list[LogRecordExporter]],
    logger_provider: _logs.LoggerProvider | None = None,
    set_global: bool = True,
) -> LogTelemetry:
    """Add `processor` to the SDK logger provider (built if none is set) and route `logging` to it.

    The handler reports a record that fails to format (`handleError`) instead of raising into
    the caller, and otelstream's own lines get a console of their own while the app configures
    none (see `otelstream.processors._log_handlers`).
    The root logger is lowered to `OTELSTREAM_LOG_LEVEL` if it is still at Python's default
    (WARNING), or `logger.info` inside a task would never reach any handler.
    """
    existing = logger_provider
    if existing is None:
        current = _logs.get_logger_provider()
        if isinstance(current, LoggerProvider):
            existing = current
    exported: list[LogRecordExporter] = []
    if existing is not None and callable(getattr(existing, "add_log_record_processor", None)):
        cast(LoggerProvider, existing).add_log_record_processor(processor)
        provider, owns = existing, False
    else:
        exported = exporters()
        built = LoggerProvider(resource=resource)
        built.add_log_record_processor(processor)  # streaming first, as for spans
        for exporter in exported:
            built.add_log_record_processor(BatchLogRecordProcessor(exporter))
        if set_global:
            _logs.set_logger_provider(built)
        provider, owns = built, True
    handler = SafeLoggingHandler(logger_provider=provider)
    root = logging.getLogger()
    level = severity_to_logging(settings.log_level)
    if root.level == logging.WARNING and level < logging.WARNING:
        root.setLevel(level)
    if not any(getattr(other, "_logger_provider", None) is provider for other in root.handlers):
        root.addHandler(handler)  # not when one already feeds it (`opentelemetry-instrument`'s)
    return LogTelemetry(provider, processor, handler, owns, exported, install_console_fallback())


def severity_to_logging(level: str) -> int:
    """`OTELSTREAM_LOG_LEVEL` as a stdlib `logging` level."""
    number = severity(level)
    return {1: 5, 5: logging.DEBUG, 9: logging.INFO, 13: logging.WARNING}.get(number, logging.ERROR)


__all__ = ["LogTelemetry", "setup_logs", "severity_to_logging"]
