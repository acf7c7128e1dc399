"""A run's end waits, briefly, for the spans of the services and workers it called.

Services export a span when it ends, through a batch processor that waits up to
5 s by default, so a run that called one ends before that service's spans reach
the OTLP receiver. With the receiver on, a run that made a call (a CLIENT or
PRODUCER span) holds its `pipeline_completed` until every such call has a child
in the run (the called service's span, on whichever worker received it), and each
such child has ended, or `otlp_linger_seconds` have passed. A run that made no call
ends at once.

On a hub other processes publish into (`Hub.shared`: Redis), the same holds for a run's
PRODUCER spans with no receiver at all: a message to a worker on the hub (a Celery
`delay()`) is answered by the worker's span under it, which streams live. A run that ends
as `.get()` returns would otherwise end before it: the worker stores the result before its
task's span ends.

One daemon thread, while runs are held, reads each held run's events as they arrive (a
subscription of the hub's, so either hub and any worker's receiver count), a few times a
second: it asks only for what is new, never for the run's whole tree again.

Whether a receiver is on is one rule, in one place (`Linger.on`): the settings say so
(`OTELSTREAM_OTLP_INGEST`, `OTELSTREAM_OTLP_GRPC_ENDPOINT`), or a router serving a receiver
for the same hub said so (`receiver_feeds`), whichever was built first: a processor the user
built before the router waits as one built by `setup_telemetry` does.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable

from opentelemetry.trace import SpanKind

from otelstream._errors import report
from otelstream.events import ENDED_TYPES, STARTED_TYPES
from otelstream.hubs import Hub, Subscription
from otelstream.hubs._entries import decode_chunk

_POLL_SECONDS = 0.1
CALLS: frozenset[SpanKind] = frozenset({SpanKind.CLIENT, SpanKind.PRODUCER})
"""The spans a receiver answers: calls to services, messages to queues."""
MESSAGES: frozenset[SpanKind] = frozenset({SpanKind.PRODUCER})
"""The spans a shared hub answers with no receiver: messages to its workers."""


class _Held:
    __slots__ = ("answers", "calls", "deadline", "made", "reader", "release", "run_id")

    def __init__(
        self, run_id: str, calls: set[int], deadline: float, release: Callable[[], None]
    ) -> None:
        self.run_id = run_id
        self.made = frozenset(calls)  # every call the run made
        self.calls = calls  # those not answered yet
        self.answers: set[int] = set()  # the answers (a call's children) still open
        self.deadline = deadline
        self.release = release
        self.reader: Subscription | None = None  # the run's events, from the first on


_FED: weakref.WeakSet[Hub] = weakref.WeakSet()
"""The hubs an OTLP receiver of this process feeds."""
_LINGERS: weakref.WeakSet[Linger] = weakref.WeakSet()


def receiver_feeds(hub: Hub) -> None:
    """An OTLP receiver feeds `hub`: from now on, runs published to it wait for their calls."""
    _FED.add(hub)
    for linger in list(_LINGERS):
        if linger.hub is hub:
            linger.on, linger.kinds = True, CALLS


class Linger:
    """Holds runs' ends (`hold`) until their calls have children or their time is up.

    `on`: whether a receiver is on; `kinds`: the spans whose answer a run's end waits for,
    read at each span's start (CLIENT and PRODUCER with a receiver, PRODUCER on a shared hub
    without one, none else)."""

    def __init__(self, hub: Hub, seconds: float, *, receiving: bool = False) -> None:
        self.hub = hub
        self.seconds = seconds
        self.on = receiving or hub in _FED
        shared = bool(getattr(hub, "shared", False))
        self.kinds = CALLS if self.on else MESSAGES if shared else frozenset()
        _LINGERS.add(self)
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, run_id: str, calls: set[int], release: Callable[[], None]) -> None:
        """Call `release` (which publishes the run's end) once every span id in `calls` has a
        child in the run, or after the linger time; from another thread."""
        held = _Held(run_id, set(calls), time.monotonic() + self.seconds, release)
        with self._lock:
            self._held[run_id] = held
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="otelstream-linger", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait, up to `timeout` seconds, until no run's end is held (each answered or past its
        own deadline): a process that exits as its run ends (a script that dispatched a Celery
        task) still publishes its run with the answers in it. True when none is held."""
        until = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._held:
                    return True
                latest = max(run.deadline for run in self._held.values())
            now = time.monotonic()
            if now >= min(until, latest + _POLL_SECONDS * 5):
                return False
            time.sleep(_POLL_SECONDS / 4)

    def release_all(self) -> None:
        """At shutdown, after `flush`: every end still held is published now."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for run in held:
            _release(run)

    def _watch(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        """Until no run is held (the next `hold` starts another thread)."""
        held: list[_Held] = []
        while True:
            await asyncio.sleep(_POLL_SECONDS)
            before = held
            with self._lock:
                held = list(self._held.values())
                if not held:
                    self._thread = None
            for gone in before:  # released by release_all meanwhile: its reader goes too
                if gone.reader is not None and gone not in held:
                    await _close(gone)
            if not held:
                return
            for run in held:
                if time.monotonic() < run.deadline and not await self._answered(run):
                    continue
                with self._lock:
                    released = self._held.get(run.run_id) is not run  # by release_all
                    if not released:
                        del self._held[run.run_id]
                await _close(run)
                if not released:
                    _release(run)

    async def _answered(self, run: _Held) -> bool:
        """Whether every call of the run has a child among the run's events read so far, and
        every such child has ended."""
        try:
            if run.reader is None:  # from the first event: a call may be answered already
                run.reader = await self.hub.subscribe(run.run_id, 0).__aenter__()
            chunk = await run.reader.next_frames(0)
        except Exception:  # Redis down, or the run not known yet: wait on, up to the deadline
            await _close(run)
            return False
        if chunk is None:  # cut (fell behind the replay buffer): read again from the start
            await _close(run)
            run.answers.clear()
            return False
        for event in decode_chunk(chunk):
            if event.type in STARTED_TYPES:
                if event.parent_span_id in run.made:
                    run.calls.discard(event.parent_span_id)
                    run.answers.add(event.span_id)
            elif event.type in ENDED_TYPES:
                run.answers.discard(event.span_id)
        return not run.calls and not run.answers


async def _close(run: _Held) -> None:
    reader, run.reader = run.reader, None
    if reader is not None:
        try:
            await reader.__aexit__(None, None, None)
        except Exception:  # closing: nothing left to tell
            report("Linger._close")


def _forked() -> None:
    """In a forked child (Celery prefork, gunicorn --preload): the parent's thread and held
    runs are not the child's; the next `hold` starts a thread of its own."""
    for linger in list(_LINGERS):
        linger._lock = threading.Lock()
        linger._held = {}
        linger._thread = None


os.register_at_fork(after_in_child=_forked)


def _release(run: _Held) -> None:
    try:
        run.release()
    except Exception:
        report("otelstream linger")


__all__ = ["Linger"]
