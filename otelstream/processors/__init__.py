"""Span and log record processors: where spans and logs enter otelstream."""

from otelstream.processors._log_handlers import SafeLoggingHandler
from otelstream.processors.logs import EventLogProcessor
from otelstream.processors.stream import EventStreamProcessor

__all__ = ["EventLogProcessor", "EventStreamProcessor", "SafeLoggingHandler"]
