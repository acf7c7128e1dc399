"""Part 1: what one span costs with otelstream beside the bare SDK, configurations interleaved.

Every configuration has its own TracerProvider in one process; each round runs
all of them in a shuffled order, and a configuration's ratio is taken to the
SDK's time *of the same round* (the median over rounds is the process's figure),
so that a noisy neighbour slows both sides of a ratio alike. The part runs in
three fresh processes (`python -m bench.spans --worker`) and reports the spread.

The subscriber is real: the measured process serves the run's stream with
`EventStreamResponse` on a uvicorn in a thread, to a socket read by another
process (`python -m bench._client`), so the process CPU counts the framing,
the response and uvicorn's writes, and none of the client's parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO

from bench._common import ROOT, BenchError, Goal, Section, python_path, spread, table

_PER_RUN = 400  # spans per streamed run: 802 events
CONFIGS = {
    "sdk": "SDK, no processor",
    "sdk-again": "SDK again, a second identical provider: the noise floor",
    "noop": "SDK + a no-op SpanProcessor (for scale)",
    "unstreamed": "+ EventStreamProcessor, trace not streamed",
    "record": "+ EventStreamProcessor, streamed run, a hub that keeps nothing: the record alone",
    "streamed-0": "+ EventStreamProcessor, streamed run, 0 subscribers",
    "streamed-sse": "+ EventStreamProcessor, streamed run, 1 real SSE subscriber",
    "batch": "SDK + BatchSpanProcessor (no-op exporter)",
}

try:
    import uvloop

    _new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
except ImportError:  # pragma: no cover - the server runs uvloop
    _new_loop = asyncio.new_event_loop


class _Readers:
    """An event loop in a thread whose subscribers read and frame every event (part 4 uses it)."""

    def __init__(self) -> None:
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-readers")
        self.thread.start()

    def start(self, hub: object, run_id: str, count: int) -> concurrent.futures.Future[list[int]]:
        coroutine = self._all(hub, run_id, count)
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        deadline = time.monotonic() + 10
        while hub.subscriber_count(run_id) < count:  # type: ignore[attr-defined]
            if time.monotonic() > deadline or future.done():
                raise BenchError(f"{count} subscribers did not attach to {run_id}")
            time.sleep(0.001)
        return future

    async def _all(self, hub: object, run_id: str, count: int) -> list[int]:
        return list(await asyncio.gather(*(_read(hub, run_id) for _ in range(count))))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def _read(hub: object, run_id: str) -> int:
    from otelstream.testing import next_batch

    last = 0
    async with hub.subscribe(run_id) as subscription:  # type: ignore[attr-defined]
        while (batch := await next_batch(subscription, 5.0)) is not None:
            for event in batch:
                if event.seq != last + 1:
                    raise BenchError(f"subscriber saw seq {event.seq} after {last}")
                last = event.seq
                _ = event.sse
    return last


@dataclass
class _Subscriber:
    """The real SSE subscriber: uvicorn in a thread here, the reader in a process of its own."""

    server: object
    reader: subprocess.Popen[str]

    def watch(self, hub: object, run_id: str, events: int) -> None:
        assert self.reader.stdin is not None
        self.reader.stdin.write(f"/runs/{run_id}/events {events}\n")
        self.reader.stdin.flush()
        deadline = time.monotonic() + 10
        while hub.subscriber_count(run_id) < 1:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise BenchError("the SSE subscriber did not attach")
            time.sleep(0.0005)

    def done(self, events: int) -> None:
        stdout: IO[str] | None = self.reader.stdout
        assert stdout is not None
        read = stdout.readline().strip()
        if read != str(events):
            raise BenchError(f"the SSE subscriber read {read!r} events, not {events}")


def _subscriber(hub: object) -> _Subscriber:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from otelstream._server.sse import EventStreamResponse
    from otelstream.testing import UvicornServer

    async def events(request: Request) -> EventStreamResponse:
        run_id = request.path_params["run_id"]
        subscription = hub.subscribe(run_id)  # type: ignore[attr-defined]
        return EventStreamResponse(subscription, run_id, keepalive=15)

    app = Starlette(routes=[Route("/runs/{run_id}/events", events)])
    server = UvicornServer(app, loop="uvloop", http="httptools").__enter__()
    port = server.url.rsplit(":", 1)[1]
    command = [sys.executable, "-P", "-m", "bench._client", port]
    env = {**os.environ, "PYTHONPATH": python_path()}
    reader = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    return _Subscriber(server, reader)


class _NullHub:
    """Takes every event and keeps none: what the processor's own record costs."""

    def __init__(self) -> None:
        from otelstream import Settings

        self.settings = Settings()

    def publish(self, run_id: str, event: object) -> None:
        pass


@dataclass
class _Config:
    key: str
    provider: object
    hub: object | None = None  # streamed runs: their hub


def _configs() -> list[_Config]:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from otelstream import EventStreamProcessor, MemoryHub, Settings

    class NullExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    def provider(*processors: SpanProcessor) -> TracerProvider:
        made = TracerProvider()
        for processor in processors:
            made.add_span_processor(processor)
        return made

    # few finished runs kept: earlier rounds' runs must not slow the GC for later ones
    hubs = {key: MemoryHub(Settings(max_finished_runs=2)) for key in ("streamed-0", "sse")}
    null = _NullHub()
    return [
        _Config("sdk", provider()),
        _Config("sdk-again", provider()),
        _Config("noop", provider(SpanProcessor())),
        _Config("unstreamed", provider(EventStreamProcessor(MemoryHub()))),
        _Config("record", provider(EventStreamProcessor(null)), null),  # type: ignore[arg-type]
        _Config(
            "streamed-0", provider(EventStreamProcessor(hubs["streamed-0"])), hubs["streamed-0"]
        ),
        _Config("streamed-sse", provider(EventStreamProcessor(hubs["sse"])), hubs["sse"]),
        # a queue that holds a whole round: the default (2,048) drops spans at this rate
        _Config("batch", provider(BatchSpanProcessor(NullExporter(), max_queue_size=16_384))),
    ]


def _measure(config: _Config, spans: int, subscriber: _Subscriber) -> tuple[float, float]:
    """(the span thread's CPU seconds in its span loops, the process's CPU seconds until the
    subscriber had read every event, or the batch processor had flushed).

    CPU time, not wall time: a busy machine deschedules the process, which CPU
    time does not count.
    """
    from otelstream import streamed_run

    tracer = config.provider.get_tracer("bench")  # type: ignore[attr-defined]
    thread_s = process_s = 0.0
    gc.collect()
    for offset in range(0, spans, _PER_RUN):
        count = min(_PER_RUN, spans - offset)
        # every configuration opens child spans under a `pipeline:` span, as a pipeline does
        run: AbstractContextManager[object] = tracer.start_as_current_span("pipeline:bench")
        if config.hub is not None:
            run = streamed_run("bench", tracer_provider=config.provider)  # type: ignore[arg-type]
        watched = config.key == "streamed-sse"
        with run as handle:
            if watched:
                subscriber.watch(config.hub, handle.run_id, 2 * count + 2)  # type: ignore[attr-defined]
            process_start, thread_start = time.process_time(), time.thread_time()
            for _ in range(count):
                with tracer.start_as_current_span("task:step"):
                    pass
            thread_s += time.thread_time() - thread_start
        if watched:
            subscriber.done(2 * count + 2)
        if config.key == "batch":
            config.provider.force_flush()  # type: ignore[attr-defined]
        process_s += time.process_time() - process_start
    return thread_s, process_s


def _worker(spans: int, rounds: int, seed: int) -> None:
    """Prints one JSON line: per configuration, the median over rounds of µs/span and of the
    ratio to the SDK's time in the same round, for the span thread and for the process."""
    configs = _configs()
    hub = next(c.hub for c in configs if c.key == "streamed-sse")
    subscriber = _subscriber(hub)
    shuffle = random.Random(seed)
    figures: dict[str, list[tuple[float, float, float, float]]] = {c.key: [] for c in configs}
    try:
        for _ in range(2):  # warm-up: imports, caches, first allocations
            for config in configs:
                _measure(config, spans, subscriber)
        for _ in range(rounds):
            order = configs[:]
            shuffle.shuffle(order)
            this_round = {c.key: _measure(c, spans, subscriber) for c in order}
            sdk_thread, sdk_process = this_round["sdk"]
            for key, (thread_s, process_s) in this_round.items():
                figures[key].append(
                    (
                        thread_s / spans * 1e6,
                        thread_s / sdk_thread,
                        process_s / spans * 1e6,
                        process_s / sdk_process,
                    )
                )
    finally:
        assert subscriber.reader.stdin is not None
        subscriber.reader.stdin.close()
        subscriber.reader.wait(timeout=10)
        subscriber.server.__exit__(None, None, None)  # type: ignore[attr-defined]
        for config in configs:
            config.provider.shutdown()  # type: ignore[attr-defined]
    medians = {
        key: [statistics.median(values[i] for values in rows) for i in range(4)]
        for key, rows in figures.items()
    }
    print(json.dumps(medians), flush=True)


def run(smoke: bool) -> Section:
    spans, rounds, workers = (400, 1, 1) if smoke else (1_200, 20, 3)
    results: list[dict[str, list[float]]] = []
    for seed in range(workers):
        command = [sys.executable, "-P", "-m", "bench.spans", "--worker"]
        command += [str(spans), str(rounds), str(seed)]
        env = {**os.environ, "PYTHONPATH": python_path()}
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise BenchError(f"spans worker failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return _section(results, spans, rounds)


def _section(results: list[dict[str, list[float]]], spans: int, rounds: int) -> Section:
    def values(key: str, i: int) -> list[float]:
        return [result[key][i] for result in results]

    def added(key: str, i: int) -> str:
        return spread([(v - 1) * 100 for v in values(key, i)], "{:+.1f}%")

    rows = [
        [label, spread(values(key, 0), "{:.2f}"), added(key, 1)] for key, label in CONFIGS.items()
    ]
    for row, key in zip(rows, CONFIGS, strict=True):
        row += [spread(values(key, 2), "{:.2f}"), added(key, 3)]
    header = ["configuration", "span thread CPU µs/span", "added", "process CPU µs/span", "added"]

    def median(key: str, i: int) -> float:
        return statistics.median(values(key, i))

    parts = [
        ("the SDK's own span", median("sdk", 0), median("sdk", 2)),
        (
            "the processor's record: context lookup, start and end events made, open-span map",
            median("record", 0) - median("sdk", 0),
            median("record", 2) - median("sdk", 2),
        ),
        (
            "+ the memory hub, no reader: the two events numbered and kept, and the fold that "
            "projects and frames unread events to let go of their spans",
            median("streamed-0", 0) - median("record", 0),
            median("streamed-0", 2) - median("record", 2),
        ),
        (
            "+ the memory hub, one real subscriber instead: numbered, kept, wake-ups (span "
            "thread); projection, framing, EventStreamResponse, uvicorn (process)",
            median("streamed-sse", 0) - median("record", 0),
            median("streamed-sse", 2) - median("record", 2),
        ),
    ]
    profile = table(
        [
            "part of a streamed span (differences of the rows' medians)",
            "span thread µs",
            "process µs",
        ],
        [[what, f"{thread:+.2f}", f"{process:+.2f}"] for what, thread, process in parts],
    )
    section = Section(
        "1. Span overhead",
        [*table(header, rows), "", *profile],
        [
            f"{spans:,} spans of `with tracer.start_as_current_span('task:step'): pass` per "
            f"configuration per round (streamed: in runs of {_PER_RUN}; only the span loops are "
            f"timed), {rounds} rounds in a shuffled order in each of {len(results)} fresh "
            "processes; a process's figure is the median over its rounds (added: of each round's "
            "ratio to the SDK's time in that round), and each cell is the median (min-max) over "
            "the processes. CPU times, which a busy machine does not inflate as it does wall "
            "time (the second SDK row shows what noise is left): the span thread's own "
            "(`time.thread_time()`: what the code opening spans pays) and the whole process's "
            "until the subscriber has read every event (`time.process_time()`; for the batch "
            "processor, until it has flushed).",
            "The real subscriber: the run's stream served by `EventStreamResponse` on a uvicorn "
            "(uvloop, httptools) in a thread of the measured process, to a socket read by "
            "another process. The second table splits a streamed span by difference of the "
            "rows' medians: a span thread records each event (`SpanEvent`: the kind, the span, "
            "the run) and the hub numbers and keeps it; the projection and the framing happen "
            "on the subscriber's loop, on first read.",
        ],
    )

    def worst(key: str, i: int) -> float:
        return max(values(key, i))

    section.goals = [
        Goal(
            "span overhead, trace not streamed",
            "≤ +2.5%, whole spread",
            added("unstreamed", 1),
            worst("unstreamed", 1) <= 1.025,
        ),
        Goal(
            "span overhead, streamed run, 1 real subscriber: span thread CPU",
            "≤ +25%, whole spread",
            added("streamed-sse", 1),
            worst("streamed-sse", 1) <= 1.25,
        ),
        Goal(
            "the same, whole process CPU (uvicorn and the response included)",
            "≤ +80%, whole spread",
            added("streamed-sse", 3),
            worst("streamed-sse", 3) <= 1.80,
        ),
    ]
    section.summary = [
        f"a span of a trace nobody streams costs {added('unstreamed', 1)} span-thread CPU over "
        f"the SDK alone ({median('sdk', 0):.1f} µs); a span of a streamed run with one real SSE "
        f"subscriber {added('streamed-sse', 1)} on its thread and "
        f"{added('streamed-sse', 3)} for the whole process, subscriber included."
    ]
    return section


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=3, type=int, required=True)
    _worker(*parser.parse_args().worker)
