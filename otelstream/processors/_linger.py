"""A run's end waits, briefly, for the spans of the services it called.

Services export a span when it ends, through a batch processor that waits up to
5 s by default, so a run that called one ends before that service's spans reach
the OTLP receiver. With the receiver on, a run that made a call (a CLIENT or
PRODUCER span) holds its `pipeline_completed` until every such call has a child
in the run (the called service's span, on whichever worker received it) or
`otlp_linger_seconds` have passed. A run that made no call ends at once.

One daemon thread, while runs are held, looks at the held runs' trees
through the hub (`get_run`: either hub, any worker) a few times a second.

Whether a receiver is on is one rule, in one place (`Linger.on`): the settings say so
(`OTELSTREAM_OTLP_INGEST`, `OTELSTREAM_OTLP_GRPC_ENDPOINT`), or a router serving a receiver
for the same hub said so (`receiver_feeds`), whichever was built first: a processor the user
built before the router waits as one built by `setup_telemetry` does.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from otelstream._errors import report
from otelstream.hubs import Hub

_POLL_SECONDS = 0.1


class _Held:
    __slots__ = ("calls", "deadline", "release", "run_id")

    def __init__(
        self, run_id: str, calls: set[int], deadline: float, release: Callable[[], None]
    ) -> None:
        self.run_id = run_id
        self.calls = calls
        self.deadline = deadline
        self.release = release


_FED: weakref.WeakSet[Hub] = weakref.WeakSet()
"""The hubs an OTLP receiver of this process feeds."""
_LINGERS: weakref.WeakSet[Linger] = weakref.WeakSet()


def receiver_feeds(hub: Hub) -> None:
    """An OTLP receiver feeds `hub`: from now on, runs published to it wait for their calls."""
    _FED.add(hub)
    for linger in list(_LINGERS):
        if linger.hub is hub:
            linger.on = True


class Linger:
    """Holds runs' ends (`hold`) until their calls have children or their time is up.

    `on`: whether runs wait at all (a receiver is on); read once a CLIENT or PRODUCER span."""

    def __init__(self, hub: Hub, seconds: float, *, receiving: bool = False) -> None:
        self.hub = hub
        self.seconds = seconds
        self.on = receiving or hub in _FED
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

    def release_all(self) -> None:
        """At shutdown: every held end is published now."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for run in held:
            _release(run)

    def _watch(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        """Until no run is held (the next `hold` starts another thread)."""
        while True:
            await asyncio.sleep(_POLL_SECONDS)
            with self._lock:
                held = list(self._held.values())
                if not held:
                    self._thread = None
                    return
            for run in held:
                if time.monotonic() < run.deadline and not await self._answered(run):
                    continue
                with self._lock:
                    if self._held.get(run.run_id) is not run:
                        continue  # released by release_all
                    del self._held[run.run_id]
                _release(run)

    async def _answered(self, run: _Held) -> bool:
        """Whether every call of the run has a child in the hub's tree of it."""
        try:
            tree = await self.hub.get_run(run.run_id)
        except Exception:  # Redis down: wait on, up to the deadline
            return False
        root = (tree or {}).get("tree")
        if root is None:
            return False
        parents = {
            node.get("parent_span_id") for node in _nodes(root) if not node.get("placeholder")
        }
        run.calls -= {call for call in run.calls if format(call, "016x") in parents}
        return not run.calls


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children", ()):
        yield from _nodes(child)


def _release(run: _Held) -> None:
    try:
        run.release()
    except Exception:
        report("otelstream linger")


__all__ = ["Linger"]
