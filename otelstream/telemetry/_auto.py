"""Zero-code enablement: `opentelemetry-instrument` with `OTELSTREAM_HUB` set streams runs.

`opentelemetry-instrument` loads every `opentelemetry_post_instrument` entry point after the
distro and its configurator built the providers; otelstream's (`post_instrument`) adds its span
processor and its log processor to them. An entry point of that group composes with any distro
and configurator (a second `opentelemetry_configurator` would silently not load).

Exactly once: the processors added here stand by while their provider holds another of
otelstream's processors, so an app that also calls `setup_telemetry` or adds
`EventStreamProcessor` itself, before or after, streams each span once. The check is one tuple
read and an identity compare per span (the SDK's processor tuple only changes when one is added).

Across forks (Celery prefork, gunicorn `--preload`): the Redis hub remakes its I/O thread and
connections in a child on first use (`hubs/redis/_loop.py`); the linger does likewise
(`processors/_linger.py`).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan, Span, TracerProvider

from otelstream.hubs import Hub, from_url
from otelstream.hubs._select import stream_to
from otelstream.processors import EventLogProcessor, EventStreamProcessor
from otelstream.processors._log_handlers import install_console_fallback
from otelstream.runs._mark import RUN_KEY
from otelstream.settings import Settings

logger = logging.getLogger("otelstream.telemetry")

__all__ = ["AutoLogProcessor", "AutoSpanProcessor", "post_instrument"]


class _Standby:
    """Whether another of otelstream's processors sits on the same provider (then this one
    stands by); cached on the identity of the SDK's processor tuple."""

    def __init__(self, holder: Any, field: str, kind: type, besides: type | None = None) -> None:
        self._holder, self._field, self._kind, self._besides = holder, field, kind, besides
        self._seen: object = None
        self._standing_by = False
        self.other: Any = None
        """The other processor, if any: the one that streams instead."""

    def __call__(self, me: object) -> bool:
        current = getattr(self._holder, self._field, ())
        if current is not self._seen:
            self._seen = current
            others = [
                other
                for other in current
                if isinstance(other, self._kind)
                and other is not me
                and not (self._besides is not None and isinstance(other, self._besides))
            ]
            self.other = others[0] if others else None
            self._standing_by = bool(others)
        return self._standing_by


class AutoSpanProcessor(EventStreamProcessor):
    """The span processor `post_instrument` adds: silent while the provider holds another."""

    def __init__(self, hub: Hub, settings: Settings, provider: TracerProvider) -> None:
        super().__init__(hub, settings)
        self._standby = _Standby(
            getattr(provider, "_active_span_processor", None),
            "_span_processors",
            EventStreamProcessor,
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self._standby(self):
            super().on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._standby(self):
            super().on_end(span)

    def shutdown(self) -> None:
        """At the provider's shutdown (the SDK's at-exit hook): the hub it built writes what is
        buffered and closes."""
        super().shutdown()
        self.hub.close()


class AutoLogProcessor(EventLogProcessor):
    """The log processor `post_instrument` adds: silent while the provider holds another."""

    def __init__(
        self,
        hub: Hub,
        settings: Settings,
        provider: LoggerProvider,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        super().__init__(hub, settings)
        self._standby = _Standby(
            getattr(provider, "_multi_log_record_processor", None),
            "_log_record_processors",
            EventLogProcessor,
        )
        # A span processor of the app's own streams the runs, to its own hub: the records go
        # there too, or they could reach the run after its end (two hubs, two writers).
        self._streamer = _Standby(
            getattr(tracer_provider, "_active_span_processor", None),
            "_span_processors",
            EventStreamProcessor,
            besides=AutoSpanProcessor,
        )
        self._own_sink = self._sink

    def on_emit(self, log_record: ReadWriteLogRecord, _key: str = RUN_KEY) -> None:
        if self._standby(self):
            return
        self._streamer(self)
        other = self._streamer.other
        self._sink = self._own_sink if other is None else other._logs
        super().on_emit(log_record, _key)


def post_instrument(settings: Settings | None = None) -> Hub | None:
    """The `opentelemetry_post_instrument` entry point; returns the hub it streams to, if any.

    Does nothing unless `OTELSTREAM_HUB` is set and `OTELSTREAM_AUTO_INSTRUMENT` is not false;
    never raises into the instrumented program's start-up."""
    try:
        settings = settings or Settings()
        if not settings.auto_instrument or "hub" not in settings.model_fields_set:
            return None
        return _install(settings)
    except Exception:
        logger.exception("otelstream: zero-code set-up failed; runs of this process do not stream")
        return None


def _install(settings: Settings) -> Hub | None:
    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, TracerProvider):
        logger.warning(
            "otelstream: OTELSTREAM_HUB is set but the tracer provider (%s) is not the SDK's; "
            "set OTEL_TRACES_EXPORTER (or use opentelemetry-distro) so one is built",
            type(tracer_provider).__name__,
        )
        return None
    hub = from_url(settings.hub, settings)
    stream_to(hub, settings)  # the app's `hub_from_settings()` is this hub: one hub, one writer
    tracer_provider.add_span_processor(AutoSpanProcessor(hub, settings, tracer_provider))
    logger_provider = _logs.get_logger_provider()
    logs = isinstance(logger_provider, LoggerProvider)
    if isinstance(logger_provider, LoggerProvider):
        logger_provider.add_log_record_processor(
            AutoLogProcessor(hub, settings, logger_provider, tracer_provider)
        )
    install_console_fallback()
    # shown whatever the logger's level: the one line that says this process streams, and where
    logger.handle(
        logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            "otelstream: zero-code streaming on, to hub %s (spans%s)",
            (_shown(settings.hub), ", logs" if logs else ""),
            None,
        )
    )
    return hub


def _shown(url: str) -> str:
    """The hub's URL without a password."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest
