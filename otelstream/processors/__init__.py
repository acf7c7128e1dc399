"""Span processors: where spans enter otelstream."""

from otelstream.processors.stream import EventStreamProcessor

__all__ = ["EventStreamProcessor"]
