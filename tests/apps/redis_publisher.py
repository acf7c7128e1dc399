"""Publishes task events into runs from a process of its own, for the multi-process Redis tests.

    python -m tests.apps.redis_publisher URL INDEX COUNT START_AT RUN_ID...

Waits until the wall-clock time START_AT so that the processes publish at once.
"""

from __future__ import annotations

import sys
import time

from otelstream.events import Event
from otelstream.hubs.redis import RedisHub


def main(url: str, index: int, count: int, start_at: float, runs: list[str]) -> None:
    hub = RedisHub(url)
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(count):
        for run_id in runs:
            span_id = (index + 1) * 1_000_000 + i
            ended = Event("task_completed", f"p{index}", run_id, span_id, 1, time.time_ns())
            hub.publish(run_id, ended)  # a task's end: the run's end adds none for it
    hub.close()
    assert hub.lost_events == 0, hub.lost_events


if __name__ == "__main__":
    url, index, count, start_at, *runs = sys.argv[1:]
    main(url, int(index), int(count), float(start_at), runs)
