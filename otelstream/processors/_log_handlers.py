"""The two `logging` handlers `setup_telemetry` installs: one that cannot fail the caller, one
that keeps otelstream's own lines on the console.

OpenTelemetry's `LoggingHandler.emit` formats the record with no guard, so a malformed call
(`log.warning("n=%d", "abc")`, an argument whose `__str__` raises) raises into the code that
logged, inside a run or not. Every stdlib handler reports such a record with `handleError`
(a traceback on stderr) and goes on: `SafeLoggingHandler` does the same.

With that handler on the root logger, Python's last-resort handler never fires, and in an app
whose root logger has no other handler (uvicorn configures only its own loggers) otelstream's
warnings ("run … failed", "shutting down; N run(s) have 10.0 s to finish") would reach no console.
`ConsoleFallback` writes them to stderr exactly then, and stands aside as soon as the app
configures a handler of its own for them.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from opentelemetry import _logs
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggingHandler as SdkLoggingHandler

__all__ = [
    "OTELSTREAM_LOGGER",
    "ConsoleFallback",
    "SafeLoggingHandler",
    "install_console_fallback",
]

OTELSTREAM_LOGGER = "otelstream"


class SafeLoggingHandler(LoggingHandler):
    """OpenTelemetry's `LoggingHandler`, reporting a record that fails the stdlib way.

    Use it in place of `LoggingHandler` in a set-up of your own; `setup_telemetry` does.
    `provider` is the logger provider it was given: `otelstream.progress` sends its records
    there while no global logger provider is set.
    """

    def __init__(
        self,
        level: int = logging.NOTSET,
        logger_provider: _logs.LoggerProvider | None = None,
        log_code_attributes: bool = False,
    ) -> None:
        super().__init__(
            level=level, logger_provider=logger_provider, log_code_attributes=log_code_attributes
        )
        self.provider = logger_provider

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except RecursionError:  # as the stdlib's StreamHandler does
            raise
        except Exception:
            self.handleError(record)


class _OwnLineFormat(logging.Formatter):
    """`INFO:     otelstream._server.shutdown: shutting down …`: the logger's name already says
    otelstream, so the message's own `otelstream: ` (there for the app's handlers) is dropped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.removeprefix("otelstream: ")
        return super().formatMessage(record)


class ConsoleFallback(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes otelstream's own records to stderr when no other handler would show them.

    A handler on the `otelstream` logger: for each record it walks the loggers the record
    propagates through, and if any handler there is the app's (not OpenTelemetry's, not a
    `NullHandler`; the SDK's `LoggingHandler` is the one `opentelemetry-instrument` adds), the
    app has chosen what to show and this one does nothing.
    Only otelstream's own (rare) lines pay for the walk.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.INFO)  # no stream of its own: see `stream`
        self.setFormatter(_OwnLineFormat("%(levelname)s:     %(name)s: %(message)s"))

    @property
    def stream(self) -> TextIO:
        """The current `sys.stderr` (redirected, or a test's capture), as Python's lastResort."""
        return sys.stderr

    def handle(self, record: logging.LogRecord) -> bool:
        if self._shown_elsewhere(record):
            return False
        return super().handle(record)

    def _shown_elsewhere(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for handler in logger.handlers:
                if handler is not self and not isinstance(
                    handler, LoggingHandler | SdkLoggingHandler | logging.NullHandler
                ):
                    return True  # the app's: it shows what its level lets through
            logger = logger.parent if logger.propagate else None
        return False


def install_console_fallback() -> ConsoleFallback | None:
    """Put a `ConsoleFallback` on the `otelstream` logger unless it has one; the one added."""
    logger = logging.getLogger(OTELSTREAM_LOGGER)
    if any(isinstance(handler, ConsoleFallback) for handler in logger.handlers):
        return None
    fallback = ConsoleFallback()
    logger.addHandler(fallback)
    return fallback
