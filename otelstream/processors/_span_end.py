"""Work due just before a span's end is streamed: a trailing progress value, a run's notice.

The stream processor runs these on the thread that ends the span, before it
publishes the span's end, so a task's last progress value precedes its
`task_completed` and a run's `logs_dropped` precedes `pipeline_completed`.
Spans without hooks cost one truthiness check of `hooks`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from otelstream._errors import report, warn_limited

MAX_HOOKED_SPANS = 100_000
"""Spans with pending hooks at once (spans that never end must not grow this forever)."""

hooks: dict[int, list[Callable[[], None]]] = {}
"""Span id -> what to run when it ends; read without the lock for the cheap check."""
_lock = threading.Lock()


def add(span_id: int, hook: Callable[[], None]) -> bool:
    """Run `hook` when span `span_id` ends; False (and not kept) past `MAX_HOOKED_SPANS`."""
    with _lock:
        pending = hooks.get(span_id)
        if pending is None:
            if len(hooks) >= MAX_HOOKED_SPANS:
                warn_limited("otelstream: %d spans wait for their end hooks", MAX_HOOKED_SPANS)
                return False
            pending = hooks[span_id] = []
        pending.append(hook)
    return True


def run(span_id: int) -> None:
    """Run and forget the hooks of a span that ends; never raises."""
    if span_id not in hooks:
        return
    with _lock:
        pending = hooks.pop(span_id, None)
    for hook in pending or ():
        try:
            hook()
        except Exception:
            report("a span end hook")
