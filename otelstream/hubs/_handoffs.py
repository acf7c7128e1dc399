"""Hand-offs: work a run hands to another process or thread through `otelstream.propagation`,
counted so that the run's end can wait for it instead of ending before it.

`propagation.inject` begins a hand-off (its id travels in the carrier), `propagation.attached`
finishes it when its block exits, wherever that is; the runner, in the run's own thread and
before the root span ends (never in `on_end`), waits for the hand-offs this process began, up
to `handoff_wait_seconds`, and says what is still out. Every hub a span processor publishes
to hears of both (`register`): the memory hub keeps them in this process, the Redis hub
stores finished ones in the run's slot, where the process that began them reads them.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from typing import Protocol


class _HandoffHub(Protocol):
    def handoff(self, run_id: str, handoff_id: str, done: bool) -> None: ...

    def wait_handoffs(self, run_id: str, timeout: float) -> int: ...


_hubs: weakref.WeakSet[_HandoffHub] = weakref.WeakSet()
_KEEP = 10_000
"""Runs whose hand-offs are remembered at most (a run that never asks is forgotten)."""


def register(hub: object) -> None:
    """A span processor publishes to `hub`: it hears of this process's hand-offs (a hub of
    an older protocol, without `handoff`, does not)."""
    if hasattr(hub, "handoff") and hasattr(hub, "wait_handoffs"):
        with contextlib.suppress(TypeError):  # no weak reference to it: it cannot take part
            _hubs.add(hub)


def begin(run_id: str) -> str:
    """A new hand-off of `run_id`; returns its id, for the carrier."""
    handoff_id = secrets.token_hex(8)
    for hub in list(_hubs):
        hub.handoff(run_id, handoff_id, False)
    return handoff_id


def finish(run_id: str, handoff_id: str) -> None:
    """The work a carrier brought is over (its `attached` block exited)."""
    for hub in list(_hubs):
        hub.handoff(run_id, handoff_id, True)


def wait(run_id: str, timeout: float) -> int:
    """Wait (up to `timeout` seconds in all) for the hand-offs this process began for the run;
    returns how many are still out. Never raises: a hub that cannot tell counts none."""
    deadline = time.monotonic() + timeout
    out = 0
    for hub in list(_hubs):
        try:
            out = max(out, hub.wait_handoffs(run_id, max(0.0, deadline - time.monotonic())))
        except Exception:  # a hub that cannot be reached: the run ends, as it would have
            continue
    return out


class Handoffs:
    """A hub's book of the hand-offs begun in this process and those known finished, bounded;
    `wait` blocks the runner's thread until none is out or the time is up."""

    def __init__(self) -> None:
        self._began: OrderedDict[str, set[str]] = OrderedDict()
        self._done: dict[str, set[str]] = {}
        self._changed = threading.Condition()

    def begin(self, run_id: str, handoff_id: str) -> None:
        with self._changed:
            self._began.setdefault(run_id, set()).add(handoff_id)
            while len(self._began) > _KEEP:
                forgotten, _ = self._began.popitem(last=False)
                self._done.pop(forgotten, None)

    def finish(self, run_id: str, handoff_id: str) -> None:
        with self._changed:
            if run_id in self._began:
                self._done.setdefault(run_id, set()).add(handoff_id)
                self._changed.notify_all()

    def began(self, run_id: str) -> set[str]:
        with self._changed:
            return set(self._began.get(run_id, ()))

    def forget(self, run_id: str) -> None:
        with self._changed:
            self._began.pop(run_id, None)
            self._done.pop(run_id, None)

    def wait(self, run_id: str, timeout: float) -> int:
        """For hand-offs finished in this process: how many are out after up to `timeout`."""
        with self._changed:
            began = self._began.get(run_id)
            if not began:
                return 0
            self._changed.wait_for(lambda: began <= self._done.get(run_id, set()), timeout)
            out = len(began - self._done.get(run_id, set()))
        self.forget(run_id)
        return out
