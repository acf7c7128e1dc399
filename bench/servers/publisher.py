"""Part 5's second process: the latency pipeline's spans published to a RedisHub from outside
the uvicorn worker that streams them.

    python -P -m bench.servers.publisher REDIS_URL INTERVAL_MS COUNT [COUNT ...]

For each COUNT: opens a run (`streamed_run`), waits until its start is in Redis,
prints the run id, waits for a line on stdin (the harness's go, sent once its
client's subscription is open in the uvicorn worker), then opens COUNT spans one
every INTERVAL_MS, stamped as in `otelstream_app.latency`, and ends the run. An
empty stdin (the harness is gone) ends it at once. Exits after flushing the hub.
"""

from __future__ import annotations

import asyncio
import sys
import time

from opentelemetry.sdk.trace import TracerProvider

from bench.servers._pipeline import END_NS
from otelstream import EventStreamProcessor, Settings, streamed_run
from otelstream.hubs.redis import RedisHub


def main(argv: list[str]) -> int:
    url, interval = argv[0], float(argv[1]) / 1000
    counts = [int(count) for count in argv[2:]]
    hub = RedisHub(url, Settings(attribute_allowlist=frozenset({END_NS})))
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    tracer = provider.get_tracer("bench")
    try:
        for count in counts:
            with streamed_run("latency", tracer_provider=provider, new_trace=True) as run:
                asyncio.run(hub.flush(10))  # the run exists in Redis before anyone subscribes
                print(run.run_id, flush=True)
                if not sys.stdin.readline():
                    return 1
                for _ in range(count):
                    with tracer.start_as_current_span("task:tick") as span:
                        span.set_attribute(END_NS, time.monotonic_ns())
                    time.sleep(interval)
    finally:
        hub.close(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
