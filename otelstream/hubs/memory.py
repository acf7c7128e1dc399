"""The in-process hub: per-run sequence, bounded replay, subscribers woken on their own loops."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Self

from otelstream._errors import warn_limited
from otelstream.events import PIPELINE_COMPLETED, PIPELINE_STARTED, Event
from otelstream.hubs import RunPage, RunPosition, SubscriberLagged, UnknownRun
from otelstream.hubs._index import RunEvent, RunIndex
from otelstream.hubs._runs import RunTree
from otelstream.hubs._wake import LoopWaker, Subscriber
from otelstream.settings import Settings


class _Run:
    __slots__ = (
        "events",
        "finished",
        "last_seq",
        "lock",
        "run_id",
        "subscribers",
        "tree",
        "unfolded",
        "wakers",
    )

    def __init__(self, run_id: str, settings: Settings) -> None:
        self.run_id = run_id
        self.events: deque[Event] = deque(maxlen=settings.replay_events)
        self.last_seq = 0
        self.finished = False
        self.subscribers: tuple[Subscriber, ...] = ()
        self.tree = RunTree(max_spans=settings.replay_events)
        self.lock = threading.Lock()  # the run's state; taken before the hub's lock, never after
        self.unfolded = 0
        """The newest events of `events` not applied to `tree` yet: it is folded when read."""
        self.wakers: tuple[LoopWaker, ...] = ()  # one per event loop that has subscribers

    def fold(self) -> RunTree:
        """Apply what the tree has not seen (run lock held): once per read, not per event."""
        events, count, apply = self.events, self.unfolded, self.tree.apply
        for i in range(len(events) - count, len(events)):
            apply(events[i])
        self.unfolded = 0
        return self.tree


class MemoryHub:
    """Keeps runs in this process; publishing is O(1) and never waits for a subscriber.

    Subscribers do not own queues: each keeps a cursor into the run's replay
    buffer and is woken (at most once per loop turn) when events are added, so
    a run with a hundred readers costs the publisher a hundred flag checks and
    each event is framed once for all of them.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()  # run id -> monotonic end time
        self._cancel_listeners: list[Callable[[str], bool]] = []
        self.dropped_events = 0
        """Events refused: their run was unknown, over the active-run bound, or already ended."""
        self._index = RunIndex()  # the runs list: one summary per run kept here
        self._lifecycle = _Run("runs", self.settings)  # the runs stream, read as a run is

    # -- the hot path -------------------------------------------------------------------------

    def publish(self, run_id: str, event: Event) -> None:
        run = self._runs.get(run_id)  # one dict read, atomic: the hub's lock is for changes
        if run is None:
            started = None
            with self._lock:
                run = self._runs.get(run_id)
                if run is None:
                    if event.type != PIPELINE_STARTED or not self._admit():
                        self.dropped_events += 1
                        return
                    run = self._runs[run_id] = _Run(run_id, self.settings)
                    started = self._index.started(run_id, event)
            if started is not None:
                self._announce(started)
        completed = event.type == PIPELINE_COMPLETED
        with run.lock:
            if run.finished:  # also a run evicted since it was looked up: those are finished
                with self._lock:
                    self.dropped_events += 1
                if event.type == PIPELINE_STARTED:
                    warn_limited(
                        "otelstream: trace %s already had a run, so this one is not streamed "
                        "(one run per trace: start it in a new trace)",
                        run_id,
                    )
                return
            run.last_seq = event.seq = run.last_seq + 1
            if run.unfolded == run.events.maxlen:  # the oldest unfolded event would be lost
                run.fold()
            run.events.append(event)
            run.unfolded += 1
            if completed:
                run.finished = True
            wakers = run.wakers
        if completed:
            with self._lock:
                self._finished[run_id] = time.monotonic()
                self._evict()
            self._announce(self._index.ended(run_id, event))
        for waker in wakers:  # one per loop, however many subscribers it has
            waker.notify()

    def _admit(self) -> bool:
        self._evict()
        return len(self._runs) - len(self._finished) < self.settings.max_active_runs

    def _evict(self) -> None:
        """Drop finished runs beyond the count bound or older than the retention (lock held)."""
        finished, settings = self._finished, self.settings
        deadline = time.monotonic() - settings.run_retention_seconds
        while finished:
            run_id, ended = next(iter(finished.items()))
            if len(finished) <= settings.max_finished_runs and ended > deadline:
                break
            del finished[run_id]
            self._runs.pop(run_id, None)
            self._index.forget(run_id)

    def _announce(self, event: RunEvent | None) -> None:
        """Add a lifecycle event to the runs stream (no lock of the hub's held)."""
        if event is None:
            return
        feed = self._lifecycle
        with feed.lock:
            feed.last_seq = event.seq = feed.last_seq + 1
            feed.events.append(event)
            wakers = feed.wakers
        for waker in wakers:
            waker.notify()

    # -- readers ------------------------------------------------------------------------------

    async def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        with self._lock:
            self._evict()
        return RunPage(*self._index.page(pipeline, status, limit, cursor))

    def subscribe_runs(self, after: int = 0) -> MemorySubscription:
        return MemorySubscription(self, self._lifecycle, after)

    def subscribe(self, run_id: str, after: int = 0) -> MemorySubscription:
        with self._lock:
            self._evict()
            run = self._runs.get(run_id)
        if run is None:
            raise UnknownRun(run_id)
        return MemorySubscription(self, run, after)

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._evict()
            run = self._runs.get(run_id)
        if run is None:
            return None
        with run.lock:
            snapshot = run.fold().snapshot(run_id, run.last_seq)
        return snapshot.to_dict()  # built outside the lock: publishers never wait for it

    async def position(self, run_id: str) -> RunPosition | None:
        with self._lock:
            self._evict()
            run = self._runs.get(run_id)
        if run is None:
            return None
        with run.lock:
            last_seq, finished = run.last_seq, run.finished
            status = (run.events[-1].status or "success") if finished else "running"
        return RunPosition(last_seq, finished, status)

    async def flush(self, timeout: float = 5.0) -> None:
        """Nothing to wait for: a published event is seen at once."""

    async def cancel(self, run_id: str) -> bool:
        """The listeners of this process (several routers on one hub) decide."""
        return any([listener(run_id) for listener in list(self._cancel_listeners)])

    def on_cancel(self, listener: Callable[[str], bool]) -> Callable[[], None]:
        self._cancel_listeners.append(listener)
        return lambda: self._cancel_listeners.remove(listener)

    async def check(self) -> None:
        """Always available: the runs live in this process."""

    def close(self) -> None:
        """Nothing to deliver or let go of: every event is in place once published."""

    def subscriber_count(self, run_id: str | None = None) -> int:
        """Open subscriptions, of one run or of all; for tests and health checks."""
        with self._lock:
            runs = self._runs.values() if run_id is None else [self._runs.get(run_id)]
            return sum(len(run.subscribers) for run in runs if run is not None)

    def _read(self, run: _Run, after: int, first: bool) -> tuple[list[Event], bool]:
        with run.lock:
            pending = run.last_seq - after
            if pending > 0:
                if not first and pending > self.settings.subscriber_max_lag:
                    raise SubscriberLagged(after)
                # Past the replay bound the oldest are gone: send what is kept.
                count = min(pending, len(run.events))
                if not first and count < pending:
                    raise SubscriberLagged(after)
                batch = list(itertools.islice(reversed(run.events), count))
                batch.reverse()
                return batch, run.finished
            return [], run.finished

    def _attach(self, run: _Run, subscriber: Subscriber) -> None:
        with run.lock:
            run.subscribers = (*run.subscribers, subscriber)
            _regroup(run)

    def _detach(self, run: _Run, subscriber: Subscriber) -> None:
        with run.lock:
            run.subscribers = tuple(s for s in run.subscribers if s is not subscriber)
            _regroup(run)


def _regroup(run: _Run) -> None:
    """One waker per loop of the run's subscribers (run lock held); a pending one carries over."""
    old = {waker.loop: waker for waker in run.wakers}
    by_loop: dict[asyncio.AbstractEventLoop, list[Subscriber]] = {}
    for subscriber in run.subscribers:
        by_loop.setdefault(subscriber.loop, []).append(subscriber)
    wakers = []
    for loop, subscribers in by_loop.items():
        waker = old.get(loop) or LoopWaker(loop)
        waker.subscribers = tuple(subscribers)
        wakers.append(waker)
    run.wakers = tuple(wakers)


class MemorySubscription:
    def __init__(self, hub: MemoryHub, run: _Run, after: int) -> None:
        self._hub = hub
        self._run = run
        self.last_seq = after
        self._first = True
        self._subscriber: Subscriber | None = None

    async def __aenter__(self) -> Self:
        self._subscriber = Subscriber(asyncio.get_running_loop())
        self._hub._attach(self._run, self._subscriber)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._subscriber is not None:
            self._hub._detach(self._run, self._subscriber)
            self._subscriber = None

    async def next_batch(self, timeout: float) -> list[Event] | None:
        subscriber = self._subscriber
        if subscriber is None:
            raise RuntimeError("use the subscription as `async with hub.subscribe(...)`")
        waited = False
        while True:
            events, finished = self._hub._read(self._run, self.last_seq, self._first)
            self._first = False
            if events:
                self.last_seq = events[-1].seq
                return events
            if finished:
                return None
            if waited:
                return []
            waited = not await subscriber.wait(timeout)


__all__ = ["MemoryHub", "MemorySubscription"]
