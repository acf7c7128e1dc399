"""Part 1: what one span costs with otelstream beside the bare SDK, configurations interleaved.

Every configuration has its own TracerProvider in this one process; each round
runs all of them in a shuffled order, and a configuration's ratio is taken to
the SDK's time *of the same round*, then the median over rounds is reported, so
a noisy neighbour slows both sides of a ratio alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench._common import BenchError, Goal, Section, table
from otelstream import EventStreamProcessor, MemoryHub, RunHandle, Settings, streamed_run

try:
    import uvloop

    _new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
except ImportError:  # the server runs uvloop; without it the readers use asyncio's loop
    _new_loop = asyncio.new_event_loop


_PER_RUN = 400  # spans per streamed run: 802 events, under the default subscriber_max_lag


class _NullExporter(SpanExporter):
    """Exports nothing: the batch processor's own cost, not a network's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _Readers:
    """An event loop in a thread whose subscribers read and frame every event, as a server does.

    Their work takes the GIL from the span thread, so it is part of what a
    span costs in a process that also serves the stream.
    """

    def __init__(self) -> None:
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-readers")
        self.thread.start()

    def start(
        self, hub: MemoryHub, run_id: str, count: int
    ) -> concurrent.futures.Future[list[int]]:
        coroutine = self._all(hub, run_id, count)
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        deadline = time.monotonic() + 10
        while hub.subscriber_count(run_id) < count:
            if time.monotonic() > deadline or future.done():
                raise BenchError(f"{count} subscribers did not attach to {run_id}")
            time.sleep(0.001)
        return future

    async def _all(self, hub: MemoryHub, run_id: str, count: int) -> list[int]:
        return list(await asyncio.gather(*(_read(hub, run_id) for _ in range(count))))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def _read(hub: MemoryHub, run_id: str) -> int:
    """Reads the run to its end, checking that seqs have no gap; returns the last seq."""
    last = 0
    async with hub.subscribe(run_id) as subscription:
        while (batch := await subscription.next_batch(5.0)) is not None:
            for event in batch:
                if event.seq != last + 1:
                    raise BenchError(f"subscriber saw seq {event.seq} after {last}")
                last = event.seq
                _ = event.sse  # framed once, shared: what the SSE response would send
    return last


@dataclass
class _Config:
    key: str
    label: str
    provider: TracerProvider
    hub: MemoryHub | None = None
    subscribers: int | None = None  # None: spans outside any streamed run


def _configs() -> list[_Config]:
    # Few finished runs kept: the runs of earlier rounds must not make the GC's full
    # collections slower for the rounds after them.
    settings = Settings(max_finished_runs=2)
    configs = [_Config("sdk", "SDK, no processor", TracerProvider())]
    label = "SDK again, a second identical provider: the noise floor"
    configs.append(_Config("sdk-again", label, TracerProvider()))
    noop = TracerProvider()
    noop.add_span_processor(SpanProcessor())  # the SDK's cost of calling any processor at all
    configs.append(_Config("noop", "SDK + a no-op SpanProcessor (for scale)", noop))
    hub = MemoryHub(settings)
    unstreamed = TracerProvider()
    unstreamed.add_span_processor(EventStreamProcessor(hub))
    configs.append(_Config("unstreamed", "+ EventStreamProcessor, trace not streamed", unstreamed))
    for count in (0, 1, 100):
        hub = MemoryHub(settings)
        provider = TracerProvider()
        provider.add_span_processor(EventStreamProcessor(hub))
        label = f"+ EventStreamProcessor, streamed run, {count} subscriber{'s' * (count != 1)}"
        configs.append(_Config(f"streamed-{count}", label, provider, hub, count))
    batch = TracerProvider()
    # a queue that holds a whole round: the default (2,048) drops spans at this rate
    batch.add_span_processor(BatchSpanProcessor(_NullExporter(), max_queue_size=16_384))
    configs.append(_Config("batch", "SDK + BatchSpanProcessor (no-op exporter)", batch))
    return configs


def _measure(config: _Config, spans: int, readers: _Readers) -> tuple[float, float]:
    """(the span thread's CPU seconds in its span loops, the process's CPU seconds until every
    subscriber had read every event).

    CPU time, not wall time: a busy machine deschedules the process, which CPU
    time does not count. The first is what the code opening spans pays itself;
    the second adds what the readers' thread spent on the same events (and for
    the batch processor, its worker's export until flushed, so that it does not
    run on the time of the configuration measured next).

    A streamed configuration opens its spans in runs of `_PER_RUN`, so that no run
    outgrows the default `subscriber_max_lag` (1,000 events): the readers' loop
    gets the GIL only at the span thread's switch interval, and a reader more than
    1,000 events behind is cut off by design.
    """
    tracer = config.provider.get_tracer("bench")
    thread_s = process_s = 0.0
    gc.collect()
    for offset in range(0, spans, _PER_RUN):
        count = min(_PER_RUN, spans - offset)
        # every configuration opens child spans under a `pipeline:` span, as a pipeline does
        run: AbstractContextManager[object] = tracer.start_as_current_span("pipeline:bench")
        if config.hub is not None:
            run = streamed_run("bench", tracer_provider=config.provider)
        with run as handle:
            future = None
            if config.hub is not None and config.subscribers and isinstance(handle, RunHandle):
                future = readers.start(config.hub, handle.run_id, config.subscribers)
            process_start, thread_start = time.process_time(), time.thread_time()
            for _ in range(count):
                with tracer.start_as_current_span("task:step"):
                    pass
            thread_s += time.thread_time() - thread_start
        if future is not None:
            lasts = future.result(timeout=60)
            if any(last != 2 * count + 2 for last in lasts):
                raise BenchError(
                    f"{config.key}: readers ended at {set(lasts)}, not {2 * count + 2}"
                )
        if config.key == "batch":
            config.provider.force_flush()
        process_s += time.process_time() - process_start
    return thread_s, process_s


def run(smoke: bool) -> Section:
    spans, rounds = (200, 2) if smoke else (1_200, 60)
    configs = _configs()
    readers = _Readers()
    shuffle = random.Random(9)
    thread_times: dict[str, list[float]] = {c.key: [] for c in configs}
    process_times: dict[str, list[float]] = {c.key: [] for c in configs}
    ratios: dict[str, list[float]] = {c.key: [] for c in configs}
    process_ratios: dict[str, list[float]] = {c.key: [] for c in configs}
    try:
        for _ in range(1 if smoke else 2):  # warm-up: imports, caches, first allocations
            for config in configs:
                _measure(config, spans, readers)
        for _ in range(rounds):
            order = configs[:]
            shuffle.shuffle(order)
            this_round = {c.key: _measure(c, spans, readers) for c in order}
            sdk_thread, sdk_process = this_round["sdk"]
            for key, (thread_s, process_s) in this_round.items():
                thread_times[key].append(thread_s / spans * 1e6)
                process_times[key].append(process_s / spans * 1e6)
                ratios[key].append(thread_s / sdk_thread)
                process_ratios[key].append(process_s / sdk_process)
    finally:
        readers.close()
        for config in configs:
            config.provider.shutdown()

    ratio = {key: statistics.median(values) for key, values in ratios.items()}
    process_ratio = {key: statistics.median(values) for key, values in process_ratios.items()}
    rows = []
    for config in configs:
        rows.append(
            [
                config.label,
                f"{statistics.median(thread_times[config.key]):.2f}",
                f"{ratio[config.key]:.3f}",
                f"{(ratio[config.key] - 1) * 100:+.1f}%",
                f"{statistics.median(process_times[config.key]):.2f}",
                f"{(process_ratio[config.key] - 1) * 100:+.1f}%",
            ]
        )
    header = ["configuration", "span thread CPU µs/span", "x SDK", "added"]
    header += ["process CPU µs/span, readers included", "added"]
    section = Section(
        "1. Span overhead",
        table(header, rows),
        [
            f"{spans:,} spans of `with tracer.start_as_current_span('task:step'): pass` per "
            f"configuration per round (streamed: in runs of {_PER_RUN}; only the span loops are "
            f"timed), {rounds} rounds in a shuffled order; µs/span is the median "
            "over rounds, x SDK the median of each round's ratio to the SDK's time in that round. "
            "Times are CPU times, which a busy machine does not inflate as it does wall time (the "
            "second SDK row shows what noise is left): the span thread's own "
            "(`time.thread_time()`, what the code that opens spans pays, and what the goals "
            "judge) and the whole process's until every subscriber has read every event "
            "(`time.process_time()`; for the batch processor, until it has flushed).",
            "Subscribers run on a uvloop event loop in a thread of the same process and frame "
            "every event (`Event.sse`), as the SSE endpoint does; in wall time their work "
            "competes with the span thread for the GIL, which the last column counts.",
        ],
    )
    section.goals = [
        Goal(
            "span overhead, trace not streamed",
            "≤ +2%",
            f"{(ratio['unstreamed'] - 1) * 100:+.1f}%",
            ratio["unstreamed"] <= 1.02,
        ),
        Goal(
            "span overhead, streamed run, 1 subscriber",
            "≤ +30%",
            f"{(ratio['streamed-1'] - 1) * 100:+.1f}%",
            ratio["streamed-1"] <= 1.30,
        ),
        Goal(
            "the same, counting the subscriber's CPU too (a stricter reading)",
            "≤ +30%",
            f"{(process_ratio['streamed-1'] - 1) * 100:+.1f}%",
            process_ratio["streamed-1"] <= 1.30,
        ),
    ]
    return section
