"""`otelstream.progress(done, total, message)`: a task's progress, as an OpenTelemetry log record.

The record goes through the Logs API in the current span, so it is exported
like any other log record, and `EventLogProcessor` streams it as
`task_progress`. It goes to the global logger provider if one is set, else to the
provider of the `SafeLoggingHandler` on the root logger (a set-up that never calls
`set_logger_provider`); a record that reaches no `EventLogProcessor` inside a run
is said once, in a rate-limited warning that says what to do (see `_reach`).
Calls are coalesced per span, here, before any record is made: at most one record every
`INTERVAL_SECONDS` per span, so a tight loop costs a clock read and a dict lookup a call.
The latest value is never lost:
a value held back is emitted by a timer thread once its interval has passed,
or when its span ends (before the span's end is streamed), whichever is first.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context

from otelstream._errors import report
from otelstream.processors import _reach, _span_end
from otelstream.processors._sink import DONE, MESSAGE, PROGRESS_EVENT, TOTAL
from otelstream.runs._mark import current_context

INTERVAL_SECONDS = 0.1
"""One progress record per span at most this often (so ~10 events a second per task)."""
MAX_SPANS = 10_000
"""Spans whose progress is tracked at once; past it, progress is emitted without coalescing."""


class _Slot:
    __slots__ = ("pending", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.pending: tuple[Context, float, float | None, str | None] | None = None


_slots: dict[int, _Slot] = {}
_lock = threading.Condition()
_timer: threading.Thread | None = None


def progress(done: float, total: float | None = None, message: str | None = None) -> None:
    """Report how far the current task is: `done` of `total` (None: unknown), with a message.

    Cheap enough for a tight loop; never raises into the task.
    """
    try:
        context = current_context()
        span_id = trace.get_current_span(context).get_span_context().span_id
        now = time.monotonic()
        with _lock:
            slot = _slots.get(span_id)
            if slot is None:
                if len(_slots) < MAX_SPANS and (
                    span_id == 0 or _span_end.add(span_id, lambda: _ended(span_id))
                ):
                    _slots[span_id] = _Slot(now)
            elif now - slot.sent_at < INTERVAL_SECONDS:
                if slot.pending is None:
                    _lock.notify()
                slot.pending = (context, done, total, message)
                _start_timer()
                return
            else:
                slot.sent_at, slot.pending = now, None
        _emit(context, done, total, message)
    except Exception:
        report("otelstream.progress")


def _emit(context: Context, done: float, total: float | None, message: str | None) -> None:
    attributes: dict[str, Any] = {DONE: done}
    if total is not None:
        attributes[TOTAL] = total
    if message is not None:
        attributes[MESSAGE] = message
    body = message if message is not None else f"{done}/{total}" if total is not None else str(done)
    logger, seen = _reach.logger(), _reach.received
    logger.emit(
        context=context,
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body=body,
        attributes=attributes,
        event_name=PROGRESS_EVENT,
    )
    if _reach.received == seen:  # no EventLogProcessor took it: say so if it was in a run
        _reach.unreached(context)


def _ended(span_id: int) -> None:
    """The span ends: its held-back value goes out now, and it is forgotten."""
    with _lock:
        slot = _slots.pop(span_id, None)
    if slot is not None and slot.pending is not None:
        # in the task's context, as when it was held back: not in the one its span ends in,
        # where logfire's processor wrapper suppresses instrumentation (and so the record)
        token = otel_context.attach(slot.pending[0])
        try:
            _emit(*slot.pending)
        finally:
            otel_context.detach(token)


def _start_timer() -> None:
    """(lock held) The one thread that sends held-back values whose interval has passed."""
    global _timer
    if _timer is None:
        _timer = threading.Thread(target=_flush_forever, name="otelstream-progress", daemon=True)
        _timer.start()


def _flush_forever() -> None:
    while True:
        due: list[tuple[Context, float, float | None, str | None]] = []
        with _lock:
            now = time.monotonic()
            wait: float | None = None
            for slot in _slots.values():
                if slot.pending is None:
                    continue
                left = slot.sent_at + INTERVAL_SECONDS - now
                if left <= 0:
                    due.append(slot.pending)
                    slot.sent_at, slot.pending = now, None
                else:
                    wait = left if wait is None else min(wait, left)
            if not due:
                _lock.wait(wait)
        for pending in due:
            try:
                _emit(*pending)
            except Exception:
                report("otelstream.progress (held-back value)")


__all__ = ["INTERVAL_SECONDS", "progress"]
