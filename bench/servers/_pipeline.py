"""The pipelines every bench server runs, the same code for otelstream and for its peers.

They open spans with the global tracer (every server sets the global tracer
provider, as otelstream's README says to), in the server's pool of pipeline
threads, and wait for the harness's start signal (`Gate`) first, so that every
subscriber is attached before the first task starts.
"""

from __future__ import annotations

import threading
import time

from opentelemetry import trace

FANOUT_TASK = "task:fanout-step-of-a-pipeline-with-a-long-name"
"""Padded so that an event of the fan-out runs frames to ~250 bytes, as in otel-facts.md."""
END_NS = "bench.end_ns"
"""The latency pipelines' stamp: `time.monotonic_ns()` just before a span ends."""


class Gate:
    """The harness's start signals, counted: a pipeline of `wave` N waits for the Nth `go()`
    (it may start before or after it: runs queue for a free pipeline thread)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._opened = 0  # how many times go() was called

    def wait(self, wave: int, timeout: float = 600.0) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._opened >= wave, timeout)

    def go(self) -> None:
        with self._condition:
            self._opened += 1
            self._condition.notify_all()


gate = Gate()


def fanout(events: int = 1_000, interval_ms: float = 0.0, wave: int = 1) -> None:
    """`events` events in all (the root's start and end included): spans as fast as they go
    (burst), or one every `interval_ms` (trickle)."""
    tracer = trace.get_tracer("bench")
    interval = interval_ms / 1000
    gate.wait(wave)
    for _ in range((events - 2) // 2):
        with tracer.start_as_current_span(FANOUT_TASK):
            pass
        if interval:
            time.sleep(interval)


def latency(spans: int = 2_000, interval_ms: float = 2.0, wave: int = 1) -> None:
    """A short span every `interval_ms`, stamped on the monotonic clock as it ends."""
    tracer = trace.get_tracer("bench")
    interval = interval_ms / 1000
    gate.wait(wave)
    for _ in range(spans):
        with tracer.start_as_current_span("task:tick") as span:
            span.set_attribute(END_NS, time.monotonic_ns())
        time.sleep(interval)


def scale(wave: int = 1) -> None:
    """For many subscribers of one run: one task at the harness's `wave`th start signal, the
    run's end at the next one."""
    tracer = trace.get_tracer("bench")
    gate.wait(wave)
    with tracer.start_as_current_span("task:scale"):
        pass
    gate.wait(wave + 1)


PIPELINES = {"fanout": fanout, "latency": latency, "scale": scale}
