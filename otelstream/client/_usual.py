"""What is usual, read from a run's events (issue 31): typed access to the fields a run whose
pipeline has a history carries, so code that follows a run need not spell their names.

The client yields each event as its JSON object (a dict, so a field a newer server adds is
never lost); these read the expectation fields of `pipeline_started` and `task_started`
(`expected_duration_ms`, `expected_p90_ms`) and the `task_overdue` / `pipeline_overdue`
events (`running_ms` too). A value of the wrong type reads as absent: a run's events are
data, never trusted to be well formed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from otelstream.events import PIPELINE_OVERDUE, TASK_OVERDUE

OVERDUE_TYPES: Final = frozenset({TASK_OVERDUE, PIPELINE_OVERDUE})
"""The events that say a task (`task_overdue`) or the run (`pipeline_overdue`) has run well
past its usual time, while it still runs: once each."""


def _ms(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number >= 0 and number != float("inf") else None


@dataclass(frozen=True)
class Usual:
    """How long a run or a task usually takes: the median and the 90th percentile of its
    pipeline's last successful runs, in milliseconds."""

    duration_ms: float
    """`expected_duration_ms`: the median."""
    p90_ms: float | None
    """`expected_p90_ms`: the 90th percentile (None if the event did not say)."""


@dataclass(frozen=True)
class Overdue:
    """A `task_overdue` or `pipeline_overdue` event: what has run well past its usual time."""

    type: str
    """`task_overdue` (a task) or `pipeline_overdue` (the run as a whole)."""
    name: str
    """The task's name (the pipeline's, for the run)."""
    span_id: str
    """The task's span (the root span, for the run): the one its `task_started` named."""
    running_ms: float | None
    """How long it had run when it was flagged."""
    usual: Usual | None
    """What is usual for it (the event carries it: an overdue always has a history)."""

    @property
    def is_run(self) -> bool:
        """True for the run as a whole (`pipeline_overdue`)."""
        return self.type == PIPELINE_OVERDUE


def usual(event: Mapping[str, Any]) -> Usual | None:
    """What is usual for the run or task an event is about: from `pipeline_started`,
    `task_started` and the overdue events; None when its pipeline has no history yet
    (fewer than 3 successful runs) or the event says nothing of it."""
    duration = _ms(event.get("expected_duration_ms"))
    if duration is None:
        return None
    return Usual(duration, _ms(event.get("expected_p90_ms")))


def overdue(event: Mapping[str, Any]) -> Overdue | None:
    """The event as an `Overdue` when it is a `task_overdue` or `pipeline_overdue`; None for
    any other event."""
    kind = event.get("type")
    if kind not in OVERDUE_TYPES:
        return None
    return Overdue(
        type=str(kind),
        name=str(event.get("name") or ""),
        span_id=str(event.get("span_id") or ""),
        running_ms=_ms(event.get("running_ms")),
        usual=usual(event),
    )


__all__ = [
    "OVERDUE_TYPES",
    "PIPELINE_OVERDUE",
    "TASK_OVERDUE",
    "Overdue",
    "Usual",
    "overdue",
    "usual",
]
