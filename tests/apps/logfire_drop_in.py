"""logfire as the owner of the tracer provider, otelstream as one more processor (the drop-in).

Run by tests/processors/test_logfire.py in a process of its own, because `logfire.configure`
sets the global tracer provider. Prints one JSON line per scenario: its events.
"""

from __future__ import annotations

import asyncio
import json
import sys

import logfire

from otelstream import EventStreamProcessor, MemoryHub, streamed_run
from otelstream.hubs import Hub
from otelstream.testing import next_batch


def events(hub: Hub, run_id: str) -> list[dict[str, object]]:
    async def drain() -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        async with hub.subscribe(run_id) as subscription:
            while (batch := await next_batch(subscription, timeout=5)) is not None:
                found.extend(event.to_dict() for event in batch)
        return found

    return asyncio.run(drain())


def main() -> None:
    hub = MemoryHub()
    logfire.configure(
        send_to_logfire=False, console=False, additional_span_processors=[EventStreamProcessor(hub)]
    )
    results: dict[str, list[dict[str, object]]] = {}

    with streamed_run("rendered") as run:
        for name in ("extract", "load"):
            with logfire.span("task:{name}", name=name):
                pass
    results["rendered"] = events(hub, run.run_id)

    with streamed_run("logs") as run:
        with logfire.span("task:{name}", name="compute"):
            logfire.info("progress {done}/{total}", done=1, total=2)
            logfire.error("row {row} is malformed", row=7)
        logfire.warn("between tasks")
    results["logs"] = events(hub, run.run_id)

    try:
        with streamed_run("failing") as run:
            with logfire.span("task:{name}", name="validate"):
                raise ValueError("row 7 is malformed")
    except ValueError:
        pass
    results["failing"] = events(hub, run.run_id)

    with logfire.span("task:{name}", name="not streamed"):
        pass  # outside any run: no events, nothing published
    results["hub"] = [{"dropped_events": hub.dropped_events}]

    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
