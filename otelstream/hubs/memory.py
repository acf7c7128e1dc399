"""The in-process hub: per-run sequence, bounded replay, subscribers woken on their own loops."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from otelstream import _metrics
from otelstream._errors import warn_limited
from otelstream.events import PIPELINE_COMPLETED, PIPELINE_STARTED, Event
from otelstream.hubs._contract import Outcome, RunPage, RunPosition, UnknownRun
from otelstream.hubs._fanout import FeedSubscription
from otelstream.hubs._feed import Feed
from otelstream.hubs._handoffs import Handoffs
from otelstream.hubs._history import MemoryHistory, outcome_of
from otelstream.hubs._memory_run import _Run
from otelstream.hubs._runs_list import RunEvent, RunsList
from otelstream.hubs._sealer import Sealer
from otelstream.settings import Settings

_SETTLE_UNREAD = 256
"""Events of a run nobody reads that may wait unprojected: each holds its span (~1.7 KB)."""


class MemoryHub:
    """Keeps runs in this process; publishing is O(1) and never waits for a subscriber.

    Subscribers do not own queues: each keeps a cursor into the run's replay
    buffer and is woken (at most once per loop turn) when events are added, so
    a run with a hundred readers costs the publisher a hundred flag checks and
    each event is framed once for all of them.
    """

    shared = False  # this process's runs only

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()  # run id -> monotonic end time
        self._cancel_listeners: list[Callable[[str], bool]] = []
        self.retained_bytes = 0
        """What finished runs keep (their frames and trees), against `max_retained_bytes`."""
        self.dropped_events = 0
        """Events refused: their run was unknown, over the active-run bound, or already ended."""
        self._runs_list = RunsList()  # one summary per run kept here
        self._sealer = Sealer("otelstream-seal")  # a run's end, off the thread that ended it
        self.started_ns = time.time_ns()
        """When this hub began keeping runs: those of an earlier process are gone."""
        # The runs stream's seqs start at this start's microsecond, an epoch: a restarted
        # server numbers above every id it gave before, so a page resuming with an old id
        # gets the whole stream again (a reset) instead of silence until the count catches up.
        self._lifecycle = Feed("runs", self.settings.replay_events, base=self.started_ns // 1000)
        self._handoffs = Handoffs()  # hand-offs to other threads (`otelstream.propagation`)
        self._history = MemoryHistory(self.settings.history_runs)  # what is usual, per pipeline

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
                        _metrics.dropped("refused")
                        return
                    run = self._runs[run_id] = _Run(run_id, self.settings)
                    started = self._runs_list.started(run_id, event)
                    _metrics.run_started(event.name)  # a tally: no SDK call on this thread
            if started is not None:
                self._announce(started)
        completed = event.type == PIPELINE_COMPLETED
        feed = run.feed
        with feed.lock:
            if feed.finished:  # also a run evicted since it was looked up: those are finished
                self.dropped_events += 1  # a racy count: this lock is not the hub's
                _metrics.dropped("refused")
                if event.type == PIPELINE_STARTED:
                    warn_limited(
                        "otelstream: trace %s already had a run, so this one is not streamed "
                        "(one run per trace: start it in a new trace)",
                        run_id,
                    )
                return
            if run.unfolded == feed.entries.maxlen:  # the oldest unfolded would be lost
                run.fold()
            elif run.unfolded >= _SETTLE_UNREAD and not feed.readers and not run.settling:
                run.settling = True  # nobody reads the spans it holds: let them go, not here
                self._sealer.put(run.settle)
            if completed:  # first the ends of the tasks it leaves open (one rule: RunTree's)
                for unfinished in run.fold().unfinished_ends(event):
                    feed.add(unfinished)
                    run.unfolded += 1
                feed.end(event, lambda: self._end(run, event))
            else:
                feed.add(event)
            run.unfolded += 1
        feed.wake()
        if completed:
            self._sealer.put(lambda: self._seal(run, event))  # not here: it ends a span

    def _end(self, run: _Run, event: Event) -> None:
        """Record the run's end wherever it is read (run lock held), before its readers can
        see the event (`Feed.end`): `GET /runs/{id}`, `GET /runs` and `/runs/live` all agree
        with the stream from the moment it carries `pipeline_completed`."""
        run.status = event.status or "success"
        with self._lock:
            if self._runs.get(run.run_id) is run:
                self._finished[run.run_id] = time.monotonic()
            self._evict()
        self._announce(self._runs_list.ended(run.run_id, event))

    def _seal(self, run: _Run, end: Event) -> None:
        retained = run.seal()
        took = end.duration_ns
        _metrics.run_ended(end.name, end.status or "success", None if took is None else took / 1e9)
        self._learn(run)
        with self._lock:
            if self._runs.get(run.run_id) is run:  # not evicted meanwhile
                run.retained = retained
                self.retained_bytes += retained
                self._evict()

    def _learn(self, run: _Run) -> None:
        """Fold the sealed run into its pipeline's history (on the sealing thread)."""
        with run.lock:
            snapshot = run.tree.snapshot(run.run_id, run.feed.last_seq)
        learnt = outcome_of(snapshot.to_dict())
        if learnt is not None:
            self._history.record(*learnt)

    async def record_history(self, pipeline: str, outcome: Outcome) -> None:
        self._history.record(pipeline, outcome)

    async def history(self, pipeline: str) -> dict[str, Any]:
        return self._history.get(pipeline)

    def _admit(self) -> bool:
        self._evict()
        return len(self._runs) - len(self._finished) < self.settings.max_active_runs

    def _evict(self) -> None:
        """Drop the oldest finished runs beyond the count, age or bytes bound (lock held)."""
        finished, settings = self._finished, self.settings
        deadline = time.monotonic() - settings.run_retention_seconds
        while finished:
            run_id, ended = next(iter(finished.items()))
            if (
                len(finished) <= settings.max_finished_runs
                and ended > deadline
                and self.retained_bytes <= settings.max_retained_bytes
            ):
                break
            del finished[run_id]
            run = self._runs.pop(run_id, None)
            if run is not None:
                self.retained_bytes -= run.retained
            self._runs_list.forget(run_id)

    def _find(self, run_id: str) -> _Run | None:
        with self._lock:
            self._evict()
            return self._runs.get(run_id)

    def _announce(self, event: RunEvent | None) -> None:
        """Add a lifecycle event to the runs stream (no lock of the hub's held)."""
        if event is not None:
            self._lifecycle.append(event)

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
        return RunPage(*self._runs_list.page(pipeline, status, limit, cursor))

    def subscribe_runs(self, after: int = 0) -> FeedSubscription:
        return FeedSubscription(self._lifecycle, min(after, self._lifecycle.last_seq))

    def subscribe(self, run_id: str, after: int = 0) -> FeedSubscription:
        run = self._find(run_id)
        if run is None:
            raise UnknownRun(run_id)
        return FeedSubscription(run.feed, min(after, run.feed.last_seq))  # beyond the head: at it

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        run = self._find(run_id)
        if run is None:
            return None
        with run.lock:
            snapshot = run.fold().snapshot(run_id, run.feed.last_seq)
        return snapshot.to_dict()  # built outside the lock: publishers never wait for it

    async def position(self, run_id: str) -> RunPosition | None:
        run = self._find(run_id)
        if run is None:
            return None
        with run.lock:
            return RunPosition(run.feed.last_seq, run.feed.finished, run.status)

    async def first_seen(self, run_id: str, keys: list[str]) -> set[str]:
        """A set per run, freed with it; past `max_open_spans` keys the oldest goes."""
        run = self._find(run_id)
        if run is None:
            return set(keys)
        fresh: set[str] = set()
        with run.lock:
            seen, limit = run.seen, self.settings.max_open_spans
            for key in keys:
                if key not in seen:
                    if len(seen) >= limit:
                        del seen[next(iter(seen))]
                    seen[key] = None
                    fresh.add(key)
        return fresh

    async def flush(self, timeout: float = 5.0) -> None:
        """A published event is seen at once; this waits (up to `timeout`) until the runs
        that ended before the call are sealed, so that what they keep is counted."""
        deadline = time.monotonic() + timeout
        while not self._sealer.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    def settle(self, timeout: float = 5.0) -> bool:
        """`flush`, from a thread that is not an event loop's (tests, benchmarks)."""
        return self._sealer.wait(timeout)

    async def cancel(self, run_id: str) -> bool:
        """The listeners of this process (several routers on one hub) decide."""
        return any([listener(run_id) for listener in list(self._cancel_listeners)])

    def on_cancel(self, listener: Callable[[str], bool]) -> Callable[[], None]:
        self._cancel_listeners.append(listener)
        return lambda: self._cancel_listeners.remove(listener)

    async def check(self) -> None:
        """Always available: the runs live in this process."""

    def handoff(self, run_id: str, handoff_id: str, done: bool) -> None:
        """A hand-off of the run began or finished (both in this process)."""
        if done:
            self._handoffs.finish(run_id, handoff_id)
        else:
            self._handoffs.begin(run_id, handoff_id)

    def wait_handoffs(self, run_id: str, timeout: float) -> int:
        """Up to `timeout` for the run's hand-offs; how many are still out."""
        return self._handoffs.wait(run_id, timeout)

    def close(self) -> None:
        """Nothing to deliver or let go of: every event is in place once published."""

    def subscriber_count(self, run_id: str | None = None) -> int:
        """Open subscriptions, of one run or of all; for tests and health checks."""
        with self._lock:
            runs = self._runs.values() if run_id is None else [self._runs.get(run_id)]
            return sum(run.feed.subscriber_count() for run in runs if run is not None)


MemorySubscription = FeedSubscription
"""The subscription type of this hub: the shared engine's (kept as a name for importers)."""

__all__ = ["MemoryHub", "MemorySubscription"]
