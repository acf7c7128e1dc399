"""What finished runs keep is bounded in bytes, and each event is kept once, as its frame."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from opentelemetry.sdk.trace import TracerProvider

from otelstream import EventStreamProcessor, MemoryHub, Settings, streamed_run


def _streaming(settings: Settings) -> tuple[MemoryHub, TracerProvider]:
    hub = MemoryHub(settings)
    provider = TracerProvider()
    provider.add_span_processor(EventStreamProcessor(hub))
    return hub, provider


def _run(provider: TracerProvider, spans: int) -> str:
    tracer = provider.get_tracer("test")
    with streamed_run("big", tracer_provider=provider) as run:
        for _ in range(spans):
            with tracer.start_as_current_span("task:step"):
                pass
    return run.run_id


def _frames(hub: MemoryHub, run_id: str) -> bytes:
    async def read() -> bytes:
        chunks = b""
        async with hub.subscribe(run_id) as subscription:
            while (chunk := await subscription.next_frames(timeout=5)) is not None:
                chunks += chunk
        return chunks

    return asyncio.run(read())


def test_a_finished_run_costs_at_most_one_and_a_half_times_its_sse_bytes() -> None:
    hub, provider = _streaming(Settings(replay_events=20_000))
    _run(provider, 100)  # warm up caches that are not the run's
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run_id = _run(provider, 5_000)
        assert hub.settle()  # a run's end is sealed off the thread that ended it
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    sse = len(_frames(hub, run_id))
    assert sse > 1_000_000
    assert kept <= 1.5 * sse, f"{kept} bytes kept for {sse} bytes of SSE"
    assert abs(hub.retained_bytes - kept) / kept < 0.25  # what the bound counts is what is kept


def test_the_oldest_finished_runs_go_first_past_the_bytes_bound() -> None:
    hub, provider = _streaming(Settings(max_retained_bytes=300_000))
    runs = [_run(provider, 200) for _ in range(10)]  # ~100 KB each
    assert hub.settle()
    kept = [run_id for run_id in runs if asyncio.run(hub.position(run_id)) is not None]
    assert 1 <= len(kept) < len(runs)
    assert kept == runs[-len(kept) :]  # the newest are kept
    assert hub.retained_bytes <= 300_000


def test_a_finished_run_reads_the_same_after_it_is_kept_compactly() -> None:
    hub, provider = _streaming(Settings())
    tracer = provider.get_tracer("test")
    with streamed_run("tree", tracer_provider=provider) as run:
        with tracer.start_as_current_span("task:outer"):
            try:
                with tracer.start_as_current_span("task:inner"):
                    raise ValueError("boom")
            except ValueError:
                pass
    tree = asyncio.run(hub.get_run(run.run_id))
    assert tree is not None and tree["status"] == "success"
    (outer,) = tree["tree"]["children"]
    (inner,) = outer["children"]
    assert (outer["name"], outer["status"]) == ("outer", "success")
    assert (inner["name"], inner["status"], inner["error"]) == ("inner", "error", "boom")
    assert inner["error_type"] == "ValueError" and inner["duration_ms"] >= 0
    frames = _frames(hub, run.run_id)
    assert frames.count(b"\n\n") == 6 and frames.startswith(b"id: 1\ndata: ")


def test_a_running_run_nobody_reads_does_not_hold_its_spans() -> None:
    """Events are projected where they are first read; unread, they are settled in batches."""
    _, provider = _streaming(Settings(replay_events=20_000))
    tracer = provider.get_tracer("test")
    _run(provider, 100)
    gc.collect()
    tracemalloc.start()
    try:
        with streamed_run("unread", tracer_provider=provider):
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(5_000):
                with tracer.start_as_current_span("task:step", attributes={"k": "v"}):
                    pass
            gc.collect()
            per_span = (tracemalloc.get_traced_memory()[0] - before) / 5_000
    finally:
        tracemalloc.stop()
    assert per_span < 1_500, f"{per_span:.0f} bytes held per span of a running run"
