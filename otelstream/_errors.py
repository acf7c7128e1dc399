"""Never break the host application: otelstream's own failures are logged and swallowed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("otelstream")

_INTERVAL_S = 10.0
_lock = threading.Lock()
_last_logged = 0.0
_suppressed = 0


@contextmanager
def internal_errors(where: str) -> Iterator[None]:
    """Catch, count and log (at most once every few seconds) what goes wrong inside otelstream.

    The test suite fails any test in which this logs, unless the test expects it,
    so bugs surface in tests while users never feel them.
    """
    try:
        yield
    except Exception:
        global _last_logged, _suppressed
        now = time.monotonic()
        with _lock:
            if now - _last_logged < _INTERVAL_S:
                _suppressed += 1
                return
            _last_logged, suppressed, _suppressed = now, _suppressed, 0
        logger.exception(
            "otelstream: internal error in %s (the application goes on; %d more not logged)",
            where,
            suppressed,
        )
