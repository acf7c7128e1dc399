"""The hub contract: where the span processor publishes events and where streams subscribe."""

from __future__ import annotations

from typing import Any, Protocol, Self

from otelstream.events import Event


class UnknownRun(LookupError):
    """No such run: never started here, or already evicted by the retention bounds."""


class SubscriberLagged(Exception):
    """The subscriber fell over `subscriber_max_lag` events behind; it may resume later."""

    def __init__(self, last_seq: int) -> None:
        super().__init__(f"subscriber fell behind after event {last_seq}")
        self.last_seq = last_seq


class Subscription(Protocol):
    """One reader of one run, used on the event loop it was opened on."""

    last_seq: int
    """The seq of the last event handed out (or the `after` it was opened with)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def next_batch(self, timeout: float) -> list[Event] | None:
        """Every event after `last_seq` that is there, waiting up to `timeout` seconds for one.

        Returns `[]` when the time ran out and `None` when the run has ended and
        everything was handed out; raises `SubscriberLagged`.
        """
        ...


class Hub(Protocol):
    """Sequences, keeps and fans out the events of runs; the run id is the trace id."""

    def publish(self, run_id: str, event: Event) -> None:
        """Called on the span hot path from any thread: must not block, wait or do I/O."""
        ...

    def subscribe(self, run_id: str, after: int = 0) -> Subscription:
        """Raises `UnknownRun` at once; events come from `after + 1` on."""
        ...

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run as JSON (name, status, times, span tree), or None."""
        ...


__all__ = ["Hub", "SubscriberLagged", "Subscription", "UnknownRun"]
