"""Never break the host application: otelstream's own failures are logged and swallowed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("otelstream")


class _RateLimit:
    """At most one log line every few seconds, counting the ones held back."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.last = float("-inf")
        self.held_back = 0
        self._lock = threading.Lock()

    def admit(self) -> tuple[bool, int]:
        """(may log now, how many were held back since the last line)."""
        now = time.monotonic()
        with self._lock:
            if now - self.last < self.interval_s:
                self.held_back += 1
                return False, 0
            self.last, held_back, self.held_back = now, self.held_back, 0
        return True, held_back

    def reset(self) -> None:
        with self._lock:
            self.last, self.held_back = float("-inf"), 0


errors_limit = _RateLimit()
warnings_limit = _RateLimit()


def warn_limited(message: str, *args: object) -> None:
    """A warning about a bound reached on the hot path, rate limited like internal errors."""
    may, suppressed = warnings_limit.admit()
    if may:
        logger.warning(message + held_back(suppressed), *args)


def held_back(count: int) -> str:
    """What a rate-limited line says of the lines held back since the last one: nothing if none."""
    return f" ({count} more not logged)" if count else ""


@contextmanager
def internal_errors(where: str) -> Iterator[None]:
    """Catch, count and log (at most once every few seconds) what goes wrong inside otelstream.

    The test suite fails any test in which this logs, unless the test expects it,
    so bugs surface in tests while users never feel them.
    """
    try:
        yield
    except Exception:
        report(where)


def report(where: str) -> None:
    """What `internal_errors` does with the exception being handled, for hot paths.

    Call it in an `except`: a generator context manager costs about a microsecond
    each time it is entered, a `try` nothing.
    """
    may, suppressed = errors_limit.admit()
    if not may:
        return
    logger.exception(
        "otelstream: internal error in %s (the application goes on)" + held_back(suppressed),
        where,
    )
