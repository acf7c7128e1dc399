"""The hub contract: where the span processor publishes events and where streams subscribe."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self, TypedDict

from otelstream.events import Event

if TYPE_CHECKING:
    from otelstream.settings import Settings


class UnknownRun(LookupError):
    """No such run: never started here, or already evicted by the retention bounds."""


class HubUnavailable(RuntimeError):
    """The hub's store cannot be reached (Redis down): answer 503 with Retry-After, never 404."""

    def __init__(self, message: str = "the hub cannot be reached", retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def advice(self) -> str:
        """What a 503 says: the fault, then when to ask again (one sentence, one full stop)."""
        return f"{str(self).rstrip(' .')}; retry in {self.retry_after} s"


class RunPosition(NamedTuple):
    """Where a run stands, known in O(1) of its length: what opening a stream needs."""

    last_seq: int
    """The seq of the run's newest event."""
    finished: bool
    """Whether `pipeline_completed` has been published."""
    status: str
    """`running`, or the run's end: `success`, `error`, `cancelled`."""


class RunPage(NamedTuple):
    """One page of `Hub.list_runs`: newest first."""

    runs: list[dict[str, Any]]
    """Summaries: `run_id`, `name`, `status`, `started_at`, `duration_ms`, `error_type`."""
    next_cursor: str | None
    """Pass it as `cursor` for the next (older) page; None on the last page."""


class SubscriberLagged(Exception):
    """The subscriber's position fell out of the run's replay buffer; it may resume later
    (from what is still kept). Raised by the events reader tests use
    (`otelstream.testing.next_batch`); a stream's `next_frames` sends `stream_overflow` instead."""

    def __init__(self, last_seq: int) -> None:
        super().__init__(f"events after {last_seq} are no longer in the replay buffer")
        self.last_seq = last_seq


class Outcome(TypedDict):
    """One finished run, as a pipeline's history keeps it (`hubs/_history.py`)."""

    run_id: str
    status: str
    started_at: str | None
    duration_ms: float | None
    tasks: dict[str, float]
    """Successful tasks' durations by path (empty for a run that did not succeed)."""


class Subscription(Protocol):
    """One reader of one run, used on the event loop it was opened on."""

    last_seq: int
    """The seq of the last event handed out (or the `after` it was opened with)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def next_frames(self, timeout: float) -> bytes | None:
        """Every event after `last_seq` that is there, as its SSE frames joined in one chunk,
        waiting up to `timeout` seconds for one: `b""` when the time ran out, None when the
        stream is over. A reader that is cut gets the notice's frame, then None."""
        ...


class Hub(Protocol):
    """Sequences, keeps and fans out the events of runs; the run id is the trace id."""

    settings: Settings
    """The settings the hub was built with; the router and processor default to them."""
    shared: bool
    """Whether other processes publish into its runs (workers on the same Redis): a run's end
    then waits for the workers its messages went to (`processors._linger`)."""

    def publish(self, run_id: str, event: Event) -> None:
        """Called on the span hot path from any thread: must not block, wait or do I/O."""
        ...

    def subscribe(self, run_id: str, after: int = 0) -> Subscription:
        """Events come from `after + 1` on; raises `UnknownRun` at once, or on entering the
        subscription where knowing takes I/O (RedisHub, for a run not started in this process)."""
        ...

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run as JSON (name, status, times, span tree), or None; may raise HubUnavailable."""
        ...

    async def position(self, run_id: str) -> RunPosition | None:
        """Where the run stands (None: unknown or expired), O(1) in its length; may raise
        HubUnavailable."""
        ...

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout` seconds) until what was published before the call is seen by
        every process sharing the hub: the router answers a run's start only then, so another
        worker knows the run at once."""
        ...

    async def cancel(self, run_id: str) -> bool:
        """Ask whichever process runs `run_id` to cancel it (its `on_cancel` listeners);
        False when it is not running. May raise HubUnavailable."""
        ...

    def on_cancel(self, listener: Callable[[str], bool]) -> Callable[[], None]:
        """Call `listener(run_id)`, from any thread, when a cancel is asked for anywhere the
        hub reaches; returns the function that removes it. The router's runner listens."""
        ...

    async def check(self) -> None:
        """Raise HubUnavailable when a run started now could not be streamed (its store cannot
        be reached); cheap: the router asks it before every start."""
        ...

    async def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Recent and running runs the hub keeps, newest first, filtered by pipeline name and
        status (`running`, `success`, `error`, `cancelled`); raises ValueError for a cursor it
        never gave, may raise HubUnavailable."""
        ...

    def subscribe_runs(self, after: int = 0) -> Subscription:
        """The runs stream: `run_started` / `run_ended` events (the summary fields of
        `list_runs`), numbered by their own seq, so `after` resumes as `Last-Event-ID` does."""
        ...

    async def first_seen(self, run_id: str, keys: list[str]) -> set[str]:
        """Which of `keys` (spans of a batch the OTLP receiver took) are new for the run, once
        for every process sharing the hub: an exporter's retry may reach another worker. Those
        returned are remembered (bounded, freed with the run); a run the hub does not know
        remembers nothing and every key is new. May raise HubUnavailable."""
        ...

    async def record_history(self, pipeline: str, outcome: Outcome) -> None:
        """Add a finished run to its pipeline's history (the hub does it itself when a run
        ends, off the span thread; see `hubs/_history.py`). May raise HubUnavailable."""
        ...

    async def history(self, pipeline: str) -> dict[str, Any]:
        """The pipeline's history (`hubs._history.view`): its last runs, newest first, the
        durations of its last successful runs and of their tasks by path, with the median
        and p90 once there are 3 samples; empty for a pipeline that has not run. May raise
        HubUnavailable."""
        ...

    def subscriber_count(self, run_id: str | None = None) -> int:
        """Open subscriptions in this process, of one run or of all."""
        ...

    def handoff(self, run_id: str, handoff_id: str, done: bool) -> None:
        """A hand-off of the run (work given to another process or thread through
        `otelstream.propagation`) began in this process, or finished here; any thread, never
        blocks."""
        ...

    def wait_handoffs(self, run_id: str, timeout: float) -> int:
        """Block the calling thread (the runner's, before the run's root span ends) up to
        `timeout` seconds until the hand-offs this process began for the run are finished;
        returns how many are still out."""
        ...

    def close(self) -> None:
        """Deliver what is buffered and let go of connections (at the app's shutdown)."""
        ...


__all__ = [
    "Hub",
    "HubUnavailable",
    "Outcome",
    "RunPage",
    "RunPosition",
    "SubscriberLagged",
    "Subscription",
    "UnknownRun",
]
