"""Part 3: many SSE subscribers on one uvicorn worker, otelstream against the servers people use.

Each server runs alone in a fresh uvicorn process (one worker, uvloop,
httptools). This process is the client: raw non-blocking sockets on one
`selectors` loop, so that no HTTP or SSE library is what gets measured, and a
process of its own, so that the server's CPU time (read from /proc) is the
server's alone. Every subscriber's stream is checked complete and in order by
its SSE ids.
"""

from __future__ import annotations

import re
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._common import (
    BenchError,
    Goal,
    Section,
    Server,
    connect,
    cpu_seconds,
    get_request,
    rss_bytes,
    servers,
    table,
)

_ID = re.compile(rb"id: (\d+)\r?\n")
_WARM = 10  # subscribers connected before the memory baseline: first-use costs are not theirs


@dataclass
class _Stream:
    sock: socket.socket
    expected: int  # the last id the stream must end with
    next_id: int = 1
    pending: bytes = b""
    head: bool = False  # status line and headers read
    closed: bool = False


@dataclass
class _Result:
    label: str
    delivered: int
    seconds: float
    cpu: float
    idle_bytes: float


class _Client:
    """Every subscriber's socket on one selector; ids are checked as the bytes arrive."""

    def __init__(self, port: int, events: int) -> None:
        self.port = port
        self.events = events
        self.selector = selectors.DefaultSelector()
        self.streams: list[_Stream] = []
        self.received = 0

    def subscribe(self, path: str) -> None:
        sock = connect(self.port, get_request(path))
        sock.setblocking(False)
        stream = _Stream(sock, self.events)
        self.streams.append(stream)
        self.selector.register(sock, selectors.EVENT_READ, stream)

    def pump(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
            for key, _ in self.selector.select(timeout=0.05):
                self._read(key.data)

    def all_closed(self) -> bool:
        return all(stream.closed for stream in self.streams)

    def _read(self, stream: _Stream) -> None:
        try:
            data = stream.sock.recv(1 << 18)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(stream.sock)
            stream.sock.close()
            stream.closed = True
            if stream.next_id != stream.expected + 1:
                raise BenchError(
                    f"a stream ended after id {stream.next_id - 1} of {stream.expected}"
                )
            return
        buffer = stream.pending + data
        if not stream.head:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                stream.pending = buffer
                return
            if not buffer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                status = buffer.split(b"\r", 1)[0]
                raise BenchError(f"subscribe answered {status!r}")
            stream.head = True
            buffer = buffer[head_end + 4 :]
        # whole messages only: an id line cut by the end of a recv waits for the next one
        cut = max(buffer.rfind(b"\n\n") + 2, buffer.rfind(b"\n\r\n") + 3, 0)
        ids = [int(found) for found in _ID.findall(buffer, 0, cut)]
        stream.pending = buffer[cut:]
        if ids:
            first = stream.next_id
            if ids != list(range(first, first + len(ids))):
                raise BenchError(f"a stream expected id {first} and got {ids[:5]}…")
            stream.next_id = first + len(ids)
            self.received += len(ids)

    def close(self) -> None:
        for stream in self.streams:
            if not stream.closed:
                self.selector.unregister(stream.sock)
                stream.sock.close()
        self.selector.close()


def _measure(
    label: str,
    running: Server,
    paths: list[str],
    events: int,
    timeout: float,
    go: Callable[[], None],
    settle: float,
    burst: int | None = None,
) -> _Result:
    """`burst`: subscribers connected at once at most, each burst attached before the next one
    (part 5: the Redis hub's connection pool cannot take 1,000 stream openings at once)."""
    client = _Client(running.port, events)
    try:
        total = len(paths)

        def attached(count: int) -> Callable[[], bool]:
            last_poll = [0.0]

            def check() -> bool:
                now = time.monotonic()
                if now - last_poll[0] < 0.05:
                    return False
                last_poll[0] = now
                return running.stats()["subscribers"] >= count and all(
                    stream.head for stream in client.streams
                )

            return check

        warm = min(_WARM, total // 2)
        for path in paths[:warm]:
            client.subscribe(path)
        client.pump(attached(warm), 30, f"{warm} subscribers")
        time.sleep(settle / 2)
        baseline = rss_bytes(running.pid)
        step = burst or total
        for first in range(warm, total, step):
            for path in paths[first : first + step]:
                client.subscribe(path)
            if burst:
                count = min(first + step, total)
                client.pump(attached(count), 60, f"{count} subscribers")
        client.pump(attached(total), 60, f"{total} subscribers")
        time.sleep(settle)
        idle = (rss_bytes(running.pid) - baseline) / (total - warm)

        before = client.received
        cpu_start, start = cpu_seconds(running.pid), time.monotonic()
        go()
        client.pump(client.all_closed, timeout, f"{label}: every stream to end")
        seconds = time.monotonic() - start
        cpu = cpu_seconds(running.pid) - cpu_start
        delivered = client.received - before
        if client.received != total * events:
            raise BenchError(f"{label}: {client.received} of {total * events} events arrived")
        return _Result(label, delivered, seconds, cpu, idle)
    finally:
        client.close()


def _otelstream(
    running: Server,
    runs: int,
    per_run: int,
    events: int,
    timeout: float,
    settle: float,
    label: str = "otelstream (events from real spans in pipeline threads)",
    on_go: Callable[[], None] | None = None,
    burst: int | None = None,
) -> _Result:
    """`on_go` is called just before the start signal (part 5 reads redis-server's CPU then);
    `burst` as in `_measure`."""
    body = {"pipeline_name": "fanout", "parameters": {"events": events}}
    urls = [running.post("/runs", body).json()["events_url"] for _ in range(runs)]
    paths = [url for _ in range(per_run) for url in urls]

    def go() -> None:
        if on_go is not None:
            on_go()
        running.post("/bench/go")

    return _measure(label, running, paths, events, timeout, go, settle, burst)


def _peer(
    label: str, running: Server, runs: int, per_run: int, events: int, timeout: float, settle: float
) -> _Result:
    paths = [f"/runs/{run}/events" for _ in range(per_run) for run in range(runs)]

    def go() -> None:
        running.post(f"/bench/go?runs={runs}&events={events}")

    return _measure(label, running, paths, events, timeout, go, settle)


PEERS = [
    ("FastAPI `fastapi.sse` (`ServerSentEvent(raw_data=…)`)", "bench.servers.peers:fastapi_sse"),
    ("sse-starlette `EventSourceResponse`", "bench.servers.peers:sse_starlette_app"),
    (
        "Starlette `StreamingResponse`, one pre-framed chunk per event",
        "bench.servers.peers:starlette_plain",
    ),
]


def run(smoke: bool) -> Section:
    runs, per_run, events = (4, 3, 50) if smoke else (100, 10, 1_000)
    timeout, settle = (60, 0.05) if smoke else (400, 0.5)
    apps = ["bench.servers.otelstream_app:app", *(app for _, app in PEERS)]
    with servers(*apps) as (ours_server, *peer_servers):
        results = [_otelstream(ours_server, runs, per_run, events, timeout, settle)]
        for (label, _), running in zip(PEERS, peer_servers, strict=True):
            results.append(_peer(label, running, runs, per_run, events, timeout, settle))
    ours = results[0]
    rows = []
    for result in results:
        rate = result.delivered / result.seconds
        rows.append(
            [
                result.label,
                f"{rate:,.0f}",
                f"{rate / (ours.delivered / ours.seconds):.2f}",
                f"{result.cpu / result.delivered * 1000:.4f}",
                f"{result.idle_bytes / 1024:.1f}",
            ]
        )
    subscribers = runs * per_run
    header = ["server", "events/s delivered", "x otelstream", "server CPU s / 1,000 events"]
    section = Section(
        "3. Fan-out",
        table([*header, "KiB / idle subscriber"], rows),
        [
            f"{subscribers:,} SSE subscribers on one uvicorn worker (uvloop, httptools), "
            f"{per_run} on each of {runs} runs of {events:,} events (~250 bytes framed): "
            f"{subscribers * events:,} events delivered per server, every stream checked complete "
            "and in order by its ids; nothing was lost.",
            "The peers are fed by one in-memory broadcast (an `asyncio.Queue` per subscriber) "
            "whose producer task makes each event's JSON once; otelstream's events come from "
            "spans opened by its pipelines in 8 worker threads, so its CPU figure also pays for "
            "the spans. Rates run from the start signal to the last stream's end; CPU is the "
            "server process's (/proc) over the same time. Memory: RSS growth from "
            f"{min(_WARM, subscribers // 2)} to {subscribers:,} idle subscribers connected, "
            "divided by their number.",
        ],
    )
    rate = ours.delivered / ours.seconds
    section.goals = [
        Goal("fan-out events/s delivered", "≥ 100,000", f"{rate:,.0f}", rate >= 100_000),
        Goal(
            "memory per idle subscriber",
            "≤ 30 KiB",
            f"{ours.idle_bytes / 1024:.1f} KiB",
            ours.idle_bytes <= 30 * 1024,
        ),
    ]
    return section
