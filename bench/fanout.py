"""Part 3: 1,000 SSE subscribers on one uvicorn worker, every server fed the same spans.

Every server runs the same pipeline code (`bench.servers._pipeline.fanout`) in a
pool of 8 pipeline threads under a global `TracerProvider`, and turns the spans
into SSE its own way: otelstream through `EventStreamProcessor` and its router,
the peers through one hand-written processor (`bench.servers.peers`). Two
inputs: *burst*, the threads opening spans as fast as they go, and *trickle*,
one span per thread every few milliseconds. Each measurement is a fresh uvicorn
process; servers take turns in alternating order, three times over.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._client import Client
from bench._common import (
    BenchError,
    Goal,
    Section,
    Server,
    alternating,
    cpu_seconds,
    rss_bytes,
    servers,
    spread,
    table,
)

OURS = "otelstream"
SPANS = "otelstream-spans"
LEAN = "otelstream-lean"
APP = "bench.servers.otelstream_app:app"
SERVERS: list[tuple[str, str, str, dict[str, str]]] = [
    (OURS, "otelstream, documented set-up (`untraced_streams`)", APP, {}),
    (
        SPANS,
        "otelstream, FastAPI telemetry as it comes (a span per stream)",
        APP,
        {"BENCH_FASTAPI_TELEMETRY": "as-it-comes"},
    ),
    (LEAN, "otelstream, FastAPI tracing off", APP, {"BENCH_FASTAPI_TELEMETRY": "off"}),
    ("joined", "hand-rolled, pending joined into one chunk", "bench.servers.peers:joined", {}),
    ("per-event", "hand-rolled, one chunk per event", "bench.servers.peers:per_event", {}),
    ("sse-starlette", "sse-starlette", "bench.servers.peers:sse_starlette_app", {}),
    ("fastapi-sse", "FastAPI `fastapi.sse`", "bench.servers.peers:fastapi_sse", {}),
]
PEERS = [key for key, *_ in SERVERS if not key.startswith(OURS)]
_WARM = 10  # subscribers connected before the memory baseline: first-use costs are not theirs


@dataclass
class Size:
    runs: int
    per_run: int
    events: int  # per run, its root's start and end included
    interval_ms: float  # between a thread's spans: 0 is a burst
    reps: int


@dataclass
class Result:
    rate: float  # events delivered per second, start signal to the last stream's end
    cpu_per_k: float  # server CPU seconds per 1,000 events delivered
    idle_kib: float
    reads: float  # recv calls per stream
    kib: float  # bytes per stream


def sizes(smoke: bool) -> dict[str, Size]:
    if smoke:
        return {"burst": Size(4, 3, 50, 0.0, 1), "trickle": Size(4, 3, 20, 2.0, 1)}
    return {"burst": Size(100, 10, 120, 0.0, 3), "trickle": Size(100, 10, 60, 5.0, 3)}


def attach(running: Server, client: Client, paths: list[str], size: Size) -> float:
    """Opens every stream (`size.per_run` on each run), waits until all are attached; returns
    the RSS growth per subscriber from the first `_WARM` to all of them."""
    settle = 0.5 if size.reps > 1 else 0.05

    def attached(count: int) -> bool:
        time.sleep(0.05)
        return client.all_heads() and running.stats()["subscribers"] >= count

    warm = min(_WARM, len(paths) // 2)
    for path in paths[:warm]:
        client.open(path, last=size.events)
    client.pump(lambda: attached(warm), 30, f"{warm} subscribers")
    time.sleep(settle)
    baseline = rss_bytes(running.pid)
    for path in paths[warm:]:
        client.open(path, last=size.events)
    client.pump(lambda: attached(len(paths)), 60, f"{len(paths)} subscribers")
    time.sleep(settle)
    return (rss_bytes(running.pid) - baseline) / (len(paths) - warm)


def measure(
    running: Server,
    size: Size,
    wave: int = 1,
    timeout: float = 400,
    on_go: Callable[[], None] | None = None,
) -> Result:
    """One measurement; `wave`: how many start signals the server has had, this one included;
    `on_go` is called just before the start signal (part 5 reads redis-server's CPU then)."""
    parameters = {"events": size.events, "interval_ms": size.interval_ms, "wave": wave}
    body = {"pipeline_name": "fanout", "parameters": parameters}
    urls = [running.post("/runs", body).json()["events_url"] for _ in range(size.runs)]
    client = Client(running.port)
    try:
        idle = attach(running, client, [url for _ in range(size.per_run) for url in urls], size)
        client.counted = client.counted_bytes = 0  # the clock starts now: count from here
        if on_go is not None:
            on_go()
        cpu_start, start = cpu_seconds(running.pid), time.monotonic()
        running.post("/bench/go")
        client.pump(client.all_closed, timeout, "every stream to end")
        seconds = time.monotonic() - start
        cpu = cpu_seconds(running.pid) - cpu_start
        streams = client.streams
        if any(s.notices or s.status != 200 for s in streams):
            raise BenchError(f"a stream was cut: {[s.notices for s in streams if s.notices][:3]}")
        delivered = client.counted
        return Result(
            delivered / seconds,
            cpu / delivered * 1000,
            idle / 1024,
            statistics.mean(s.reads for s in streams),
            statistics.mean(s.bytes for s in streams) / 1024,
        )
    finally:
        client.close()


def run(smoke: bool) -> Section:
    results: dict[tuple[str, str], list[Result]] = {}
    if smoke:  # every server once, started side by side, both inputs in the same process
        with servers(*(Server(app, env) for _, _, app, env in SERVERS)) as running:
            for (key, *_), each in zip(SERVERS, running, strict=True):
                for wave, (mode, size) in enumerate(sizes(smoke).items(), 1):
                    results[mode, key] = [measure(each, size, wave)]
        return _section(results, sizes(smoke))
    for mode, size in sizes(smoke).items():
        # FastAPI's defaults cost memory per stream: measured in the burst only
        chosen = [server for server in SERVERS if mode == "burst" or server[0] != SPANS]
        for rep, (key, _, app, env) in alternating(chosen, size.reps):
            started = time.monotonic()
            with servers(Server(app, env)) as (each,):
                results.setdefault((mode, key), []).append(measure(each, size))
            seconds = time.monotonic() - started
            print(f"   fanout {mode} {key} #{rep + 1}: {seconds:.0f} s", file=sys.stderr)
    return _section(results, sizes(smoke))


def _why(results: dict[tuple[str, str], list[Result]]) -> str:
    def ratio(mode: str, key: str) -> float:
        ours = statistics.median(r.rate for r in results[mode, OURS])
        return ours / statistics.median(r.rate for r in results[mode, key])

    def cpu(mode: str, key: str) -> float:
        return statistics.median(r.cpu_per_k for r in results[mode, key])

    return (
        "Where otelstream leads, it is for two reasons: each event is framed once for all "
        "its subscribers, and a stream writes everything pending as one chunk, so a burst "
        "costs a stream a few writes (the reads column), not one per event: in the burst "
        f"it delivers {ratio('burst', 'sse-starlette'):.1f}x sse-starlette's rate and "
        f"{ratio('burst', 'fastapi-sse'):.0f}x `fastapi.sse`'s, "
        f"{ratio('burst', 'per-event'):.2f}x the hand-rolled design writing one chunk per event. "
        "Where it does not: the hand-rolled design that joins pending events does both "
        f"too, and otelstream is at {ratio('burst', 'joined'):.2f}x its rate in the burst and "
        f"{ratio('trickle', 'joined'):.2f}x in the trickle, spending "
        f"{cpu('burst', OURS) / cpu('burst', 'joined'):.2f}x and "
        f"{cpu('trickle', OURS) / cpu('trickle', 'joined'):.2f}x its CPU per event: what a "
        "hand-rolled list append does not pay (the hub's sequence, replay buffer and run tree, "
        "the projection on first read, a send timeout around every write, the router's "
        "limits and notices). In the trickle every server writes each event as a chunk of its "
        "own, so only the cost per event is left."
    )


def _telemetry_note(results: dict[tuple[str, str], list[Result]]) -> str:
    def idle(key: str) -> float:
        return statistics.median(r.idle_kib for r in results["burst", key])

    def rate(key: str) -> float:
        return statistics.median(r.rate for r in results["burst", key])

    return (
        "The set-ups: every server sets the global tracer provider, so FastAPI's own telemetry "
        "is on in FastAPI apps (otelstream's and `fastapi.sse`). As it comes, it keeps a server "
        "span and its request state open for as long as a stream lasts: "
        f"{idle(SPANS) - idle(LEAN):+.1f} KiB per idle subscriber over FastAPI tracing off, "
        f"{rate(SPANS) / rate(LEAN) - 1:+.0%} in burst rate. The README's set-up leaves the "
        "streams out of it (`FastAPI(telemetry={'exclude': untraced_streams})`) and every other "
        f"route in: {idle(OURS) - idle(LEAN):+.1f} KiB, {rate(OURS) / rate(LEAN) - 1:+.0%}."
    )


def _section(results: dict[tuple[str, str], list[Result]], size: dict[str, Size]) -> Section:
    rows = []
    for mode in size:
        best = max(statistics.median(r.rate for r in results[mode, key]) for key in PEERS)
        for key, label, _, _ in SERVERS:
            found = results.get((mode, key))
            if not found:
                continue
            rates = [r.rate for r in found]
            rows.append(
                [
                    mode,
                    label,
                    spread(rates),
                    f"{statistics.median(rates) / best:.2f}",
                    spread([r.cpu_per_k for r in found], "{:.4f}"),
                    f"{statistics.median(r.reads for r in found):,.0f}",
                    spread([r.idle_kib for r in found], "{:.1f}"),
                ]
            )
    header = ["input", "server", "events/s delivered", "x best peer", "CPU s / 1,000 events"]
    burst, trickle = size["burst"], size["trickle"]
    subscribers = burst.runs * burst.per_run
    ours = results["burst", OURS]
    lean = results["burst", LEAN]
    section = Section(
        "3. Fan-out: the same spans for every server",
        table([*header, "reads / stream", "KiB / idle subscriber"], rows),
        [
            f"{subscribers:,} SSE subscribers on one uvicorn worker (uvloop, httptools), "
            f"{burst.per_run} on each of {burst.runs} runs. *burst*: {burst.events} events a run, "
            "spans opened as fast as 8 pipeline threads go; *trickle*: "
            f"{trickle.events} events a run, each thread sleeping {trickle.interval_ms:g} ms "
            "after each span. Every server runs the same pipeline code in a pool of 8 threads "
            "under a global `TracerProvider`; the peers' events come from one hand-written "
            "`SpanProcessor` that frames each event once and hands it to the loop "
            "(`call_soon_threadsafe`), into a per-run list that readers follow with a cursor. "
            f"Each figure: median (min-max) of {burst.reps} runs, each in a fresh process, the "
            "servers in alternating order. Events are counted from the start signal (the runs' "
            "`pipeline_started` was read before it, and is not counted) to the last stream's end; "
            "every stream was checked whole and in order (`seq` = SSE `id`, JSON parsed); "
            "nothing was lost or cut. CPU: the server process's (/proc), spans included. "
            f"Memory: RSS growth from {_WARM} to {subscribers:,} idle subscribers, per subscriber.",
            _why(results),
            _telemetry_note(results),
        ],
    )
    for mode in size:
        worst = min(r.rate for r in results[mode, OURS])
        best_peer = max(r.rate for key in PEERS for r in results[mode, key])
        ratio = worst / best_peer
        median = statistics.median(r.rate for r in results[mode, OURS]) / max(
            statistics.median(r.rate for r in results[mode, key]) for key in PEERS
        )
        section.goals.append(
            Goal(
                f"fan-out ({mode}), events/s vs the best peer fed the same spans",
                "≥ 1.5x, whole spread",
                f"{median:.2f}x median, {ratio:.2f}x worst vs best",
                ratio >= 1.5,
            )
        )

    def rate(mode: str, key: str) -> str:
        return f"{statistics.median(r.rate for r in results[mode, key]):,.0f}"

    def cpu(mode: str, key: str) -> str:
        return f"{statistics.median(r.cpu_per_k for r in results[mode, key]) * 1000:,.1f}"

    section.summary = [
        f"fed the same spans by the same pipelines, one uvicorn worker delivers "
        f"{rate('burst', OURS)} events/s to {subscribers:,} subscribers in a burst, against "
        f"{rate('burst', 'joined')} for a hand-rolled server that joins pending events into one "
        f"chunk, {rate('burst', 'per-event')} for the same writing one chunk per event, "
        f"{rate('burst', 'sse-starlette')} for sse-starlette and {rate('burst', 'fastapi-sse')} "
        f"for `fastapi.sse`; in a trickle (every event a chunk of its own) it spends "
        f"{cpu('trickle', OURS)} ms of CPU per 1,000 events against {cpu('trickle', 'joined')}, "
        f"{cpu('trickle', 'per-event')}, {cpu('trickle', 'sse-starlette')} and "
        f"{cpu('trickle', 'fastapi-sse')}. An idle subscriber costs "
        f"{statistics.median(r.idle_kib for r in ours):.1f} KiB in the documented set-up "
        f"({statistics.median(r.idle_kib for r in results['burst', SPANS]):.1f} KiB with "
        "FastAPI's telemetry as it comes, a span open per stream; "
        f"{statistics.median(r.idle_kib for r in lean):.1f} KiB with its tracing off)."
    ]
    worst_idle = max(r.idle_kib for r in ours)
    section.goals.append(
        Goal(
            "memory per idle subscriber, documented set-up",
            "≤ 30 KiB",
            spread([r.idle_kib for r in ours], "{:.1f}") + " KiB",
            worst_idle <= 30,
        )
    )
    return section
