"""Where `otelstream.progress` sends its records, and saying so when they reach no stream.

`progress()` has no logger provider of its own: it uses the global one. A set-up that
builds a `LoggerProvider`, adds `EventLogProcessor` to it and routes `logging` through a
`SafeLoggingHandler` (the README's) never sets the global provider, so `log.info` streams
while progress would go nowhere. So: the global provider if one is set, else the provider
of the `SafeLoggingHandler` on the root logger. `EventLogProcessor` counts the progress
records it receives (`received`); one emitted inside a run that no processor counted is
reported in a rate-limited warning that says what to do, never in silence.
"""

from __future__ import annotations

import logging

from opentelemetry import _logs
from opentelemetry.context import Context

from otelstream._errors import warn_limited
from otelstream.processors._log_handlers import SafeLoggingHandler
from otelstream.processors._sink import PROGRESS_EVENT
from otelstream.runs._mark import RUN_KEY, RunMark

received = 0
"""Progress records `EventLogProcessor` has received (compared, never reset)."""

_GLOBAL = _logs.get_logger(PROGRESS_EVENT)  # a proxy: follows the global logger provider
_cached: tuple[_logs.LoggerProvider, _logs.Logger] | None = None


def _global_is_set() -> bool:
    """False while the global provider is the API's proxy (or its no-op): nobody set one."""
    return not type(_logs.get_logger_provider()).__module__.startswith("opentelemetry._logs")


def _handler_provider() -> _logs.LoggerProvider | None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, SafeLoggingHandler) and handler.provider is not None:
            return handler.provider
    return None


def logger() -> _logs.Logger:
    """The logger progress records go to (called at most ~10 times a second per task)."""
    global _cached
    if _global_is_set():
        return _GLOBAL
    provider = _handler_provider()
    if provider is None:
        return _GLOBAL
    cached = _cached
    if cached is None or cached[0] is not provider:
        cached = _cached = (provider, provider.get_logger(PROGRESS_EVENT))
    return cached[1]


def count() -> None:
    """`EventLogProcessor` received a progress record."""
    global received
    received += 1


def unreached(context: Context) -> None:
    """A progress record reached no `EventLogProcessor`: warn (rate limited) if in a run."""
    mark = context.get(RUN_KEY)
    if not isinstance(mark, RunMark):
        return  # outside a run, nothing is streamed anyway
    warn_limited(
        "otelstream.progress() in run %s reached no EventLogProcessor, so no task_progress "
        "streams: add EventLogProcessor(hub) to your LoggerProvider and either call "
        "opentelemetry._logs.set_logger_provider(logger_provider) or put "
        "SafeLoggingHandler(logger_provider=logger_provider) on the root logger; "
        "otelstream.setup_telemetry() does all of it",
        mark.run_id or mark.name,
    )


__all__ = ["count", "logger", "received", "unreached"]
