"""What a pipeline usually takes: the durations of its last successful runs and of their tasks,
and the outcomes of its last runs, kept by the hub (issue 31).

The rules live here once, for both hubs: a finished run (as `get_run` shows it) is folded
into one `Outcome` (`outcome_of`), off the span thread (the memory hub's sealing thread,
the Redis hub's writer loop); a hub keeps the last `history_runs` outcomes and the last
`history_runs` successful ones, and `view` turns what it kept into `history(pipeline)`'s
answer. A task is named by its path of names from the run's root, `parallel / fetch_shard_0`;
a path met more than once in a run counts its first successful occurrence. Cancelled and
failed runs are outcomes, never usual durations.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from typing import Any, Final

from otelstream.hubs._contract import Outcome

MAX_TASK_PATHS: Final = 200
"""Task paths a run's outcome keeps at most (the first met, in start order): a pipeline's
history is bounded in bytes however wide its runs are."""
MAX_PIPELINES: Final = 1_000
"""Pipelines the memory hub keeps a history for; the least recently ended go first."""
MIN_SAMPLES: Final = 3
"""Samples below which there is no expectation: a usual duration of one run is a guess."""
SEPARATOR: Final = " / "


def outcome_of(run: dict[str, Any]) -> tuple[str, Outcome] | None:
    """(pipeline name, outcome) of a finished run as `get_run` shows it; None for a run
    without a root or not finished."""
    tree = run.get("tree")
    name = run.get("name")
    status = run.get("status")
    if not tree or not name or status in (None, "running"):
        return None
    tasks: dict[str, float] = {}
    if status == "success":
        stack: list[tuple[str, dict[str, Any]]] = [("", kid) for kid in reversed(tree["children"])]
        while stack and len(tasks) < MAX_TASK_PATHS:
            above, node = stack.pop()
            path = f"{above}{SEPARATOR}{node['name']}" if above else str(node["name"])
            took = node.get("duration_ms")
            if (
                node.get("status") == "success"
                and took is not None
                and not node.get("placeholder")
                and path not in tasks
            ):
                tasks[path] = float(took)
            stack.extend((path, kid) for kid in reversed(node.get("children", ())))
    outcome = Outcome(
        run_id=str(run["run_id"]),
        status=str(status),
        started_at=run.get("started_at"),
        duration_ms=run.get("duration_ms"),
        tasks=tasks,
    )
    return str(name), outcome


def encode(outcome: Outcome) -> str:
    return json.dumps(outcome, separators=(",", ":"))


def decode(raw: str | bytes) -> Outcome:
    value: Outcome = json.loads(raw)
    return value


def expectation(samples: list[float]) -> tuple[float, float] | None:
    """(median, p90) of the samples, once there are `MIN_SAMPLES`; None before."""
    if len(samples) < MIN_SAMPLES:
        return None
    ordered = sorted(samples)
    n = len(ordered)
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    rank = 0.9 * (n - 1)  # linear between the closest ranks, as numpy's default
    low = int(rank)
    high = min(low + 1, n - 1)
    p90 = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return median, p90


def view(pipeline: str, outcomes: list[Outcome], successes: list[Outcome]) -> dict[str, Any]:
    """`history(pipeline)`'s answer from what a hub kept, newest first in both lists:
    the last runs (without their tasks), the successful runs' durations, each task's
    durations, and the expectations (absent below `MIN_SAMPLES`)."""
    durations = [o["duration_ms"] for o in successes if o["duration_ms"] is not None]
    tasks: dict[str, list[float]] = {}
    for outcome in successes:
        for path, took in outcome["tasks"].items():
            tasks.setdefault(path, []).append(took)
    runs = [{k: v for k, v in o.items() if k != "tasks"} for o in outcomes]
    ended = len(outcomes)
    answer: dict[str, Any] = {
        "pipeline": pipeline,
        "runs": runs,
        "durations_ms": durations,
        "tasks": {path: {"durations_ms": took} for path, took in tasks.items()},
        "success_rate": (
            sum(o["status"] == "success" for o in outcomes) / ended if ended else None
        ),
        "last_status": outcomes[0]["status"] if outcomes else None,
    }
    expected = expectation(durations)
    if expected is not None:
        answer["expected_duration_ms"], answer["expected_p90_ms"] = expected
    for entry in answer["tasks"].values():
        expected = expectation(entry["durations_ms"])
        if expected is not None:
            entry["expected_duration_ms"], entry["expected_p90_ms"] = expected
    return answer


Expectations = dict[str, tuple[float, float]]
"""(median, p90) in ms by task path; the run's own under `RUN_PATH`."""
RUN_PATH: Final = ""


def expectations(history: dict[str, Any]) -> Expectations | None:
    """What a run of the pipeline should expect, from `view`'s answer: None when nothing is
    known yet (no samples enough), so a pipeline without a history costs its spans nothing."""
    expected: Expectations = {}
    if "expected_duration_ms" in history:
        expected[RUN_PATH] = (history["expected_duration_ms"], history["expected_p90_ms"])
    for path, entry in (history.get("tasks") or {}).items():
        if "expected_duration_ms" in entry:
            expected[path] = (entry["expected_duration_ms"], entry["expected_p90_ms"])
    return expected or None


class _Pipeline:
    __slots__ = ("outcomes", "successes")

    def __init__(self, runs: int) -> None:
        self.outcomes: deque[Outcome] = deque(maxlen=runs)
        self.successes: deque[Outcome] = deque(maxlen=runs)


class MemoryHistory:
    """The memory hub's histories: `runs` outcomes and successes a pipeline, `MAX_PIPELINES`
    pipelines, the least recently ended evicted first; any thread."""

    def __init__(self, runs: int, max_pipelines: int = MAX_PIPELINES) -> None:
        self._runs = runs
        self._max = max_pipelines
        self._lock = threading.Lock()
        self._pipelines: OrderedDict[str, _Pipeline] = OrderedDict()

    def record(self, pipeline: str, outcome: Outcome) -> None:
        with self._lock:
            kept = self._pipelines.pop(pipeline, None) or _Pipeline(self._runs)
            self._pipelines[pipeline] = kept
            while len(self._pipelines) > self._max:
                self._pipelines.popitem(last=False)
            kept.outcomes.appendleft(outcome)
            if outcome["status"] == "success":
                kept.successes.appendleft(outcome)

    def get(self, pipeline: str) -> dict[str, Any]:
        with self._lock:
            kept = self._pipelines.get(pipeline)
            outcomes = [] if kept is None else list(kept.outcomes)
            successes = [] if kept is None else list(kept.successes)
        return view(pipeline, outcomes, successes)

    def pipelines(self) -> list[str]:
        with self._lock:
            return list(self._pipelines)
