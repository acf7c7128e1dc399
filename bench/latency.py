"""Part 2: span end to the event's bytes in an HTTP client, against the original example's design.

The span-producing thread stamps each span with `time.monotonic_ns()` just
before it ends (an allowlisted attribute, so the event carries it); the client
takes `time.monotonic_ns()` as `recv` returns. CLOCK_MONOTONIC is one clock for
every process of the machine, so the two stamps compare. The client is this
process, reading a raw blocking socket: another process than the server, so
that its parsing never holds the GIL the server's event loop and span thread
need, and raw so that no HTTP library's buffering sits between the bytes and
the stamp.
"""

from __future__ import annotations

import re
import socket
import time

from bench._common import (
    BenchError,
    Goal,
    Section,
    Server,
    connect,
    get_request,
    percentile,
    servers,
    table,
)

_END_NS = re.compile(rb'"bench\.end_ns":\s*(\d+)')


def _read(sock: socket.socket, timeout: float) -> list[int]:
    """Latency in ns of every stamped event of the stream, until the server closes it."""
    sock.settimeout(timeout)
    latencies: list[int] = []
    pending = b""
    while True:
        data = sock.recv(1 << 16)
        now = time.monotonic_ns()
        if not data:
            break
        pending += data
        end = pending.rfind(b"\n\n")
        if end < 0:
            continue
        complete, pending = pending[:end], pending[end + 2 :]
        latencies += [now - int(stamp) for stamp in _END_NS.findall(complete)]
    sock.close()
    return latencies


def _counts(spans: int) -> tuple[int, ...]:
    """A first, shorter stream warms the server up; the last one counts (smoke: no warm-up)."""
    return (spans,) if spans < 200 else (200, spans)


def _otelstream(running: Server, spans: int, interval_ms: float) -> list[int]:
    latencies: list[int] = []
    for count in _counts(spans):
        parameters = {"spans": count, "interval_ms": interval_ms}
        body = {"pipeline_name": "latency", "parameters": parameters}
        events_url = running.post("/runs", body).json()["events_url"]
        latencies = _read(connect(running.port, get_request(events_url)), 30)
        if len(latencies) != count:
            raise BenchError(f"otelstream: {len(latencies)} of {count} events arrived")
    return latencies


def _reference(running: Server, spans: int, interval_ms: float) -> list[int]:
    latencies: list[int] = []
    for count in _counts(spans):
        path = f"/reference/stream?spans={count}&interval_ms={interval_ms}"
        latencies = _read(connect(running.port, get_request(path)), 30)
        if len(latencies) != count:
            raise BenchError(f"reference: {len(latencies)} of {count} events arrived")
    return latencies


def run(smoke: bool) -> Section:
    spans, interval_ms = (50, 2.0) if smoke else (2_000, 2.0)
    with servers("bench.servers.otelstream_app:app", "bench.servers.reference:app") as (a, b):
        ours = _otelstream(a, spans, interval_ms)
        theirs = _reference(b, spans, interval_ms)
    rows = []
    stats: dict[str, tuple[float, float, float]] = {}
    for name, values in (
        ("otelstream", ours),
        ("reference: queue.Queue polled every 100 ms", theirs),
    ):
        p50, p99, worst = (percentile(values, 0.5), percentile(values, 0.99), max(values))
        stats[name] = (p50, p99, worst)
        rows.append(
            [name, len(values), f"{p50 / 1e3:,.0f}", f"{p99 / 1e3:,.0f}", f"{worst / 1e3:,.0f}"]
        )
    p50, p99, _ = stats["otelstream"]
    speedup = stats["reference: queue.Queue polled every 100 ms"][0] / p50
    section = Section(
        "2. Latency: span end → bytes read by the client",
        table(["server", "events", "p50 µs", "p99 µs", "max µs"], rows),
        [
            f"One span every {interval_ms:g} ms (light load) in a pipeline thread of a uvicorn "
            "process (uvloop, httptools) on 127.0.0.1; the reference is the same span loop feeding "
            "a `queue.Queue` that a `StreamingResponse` generator polls every 100 ms. "
            f"p50 is {speedup:,.0f}x lower with otelstream.",
            "Stamps: the span thread's `time.monotonic_ns()` just before the span ends (so the "
            "span's own end and the processors are inside the figure) and the client's as `recv` "
            "returns. The client is the bench process on a raw socket: another process, so its "
            "parsing never takes the server's GIL, and no HTTP library buffers between bytes and "
            "stamp.",
        ],
    )
    section.goals = [
        Goal("latency p50", "< 500 µs", f"{p50 / 1e3:,.0f} µs", p50 < 500_000),
        Goal("latency p99", "< 2,000 µs", f"{p99 / 1e3:,.0f} µs", p99 < 2_000_000),
        Goal("p50 vs the reference", "≥ 100x lower", f"{speedup:,.0f}x", speedup >= 100),
    ]
    return section
