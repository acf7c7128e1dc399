"""The control routes every bench server has: readiness and counters, the start signal, and the
event loop's lag."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.servers._pipeline import gate


class LoopLag:
    """How late the loop runs a 5 ms timer: what every other task on it waits, at worst."""

    period = 0.005

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.period)
            self.samples.append(time.monotonic() - before - self.period)


def control_routes(subscribers: Callable[[], int]) -> list[Route]:
    """`GET /bench/stats` (ready, pid, open subscriptions), `POST /bench/go` (`Gate.go`), and
    `POST /bench/lag` (starts the lag probe, or answers its samples in ms since the last call)."""
    lag = LoopLag()

    async def stats(request: Request) -> Response:
        return JSONResponse({"pid": os.getpid(), "subscribers": subscribers()})

    async def start(request: Request) -> Response:
        gate.go()
        return JSONResponse({"started": True})

    async def lag_samples(request: Request) -> Response:
        lag.start()
        samples, lag.samples = lag.samples, []
        return JSONResponse({"lag_ms": [sample * 1000 for sample in samples]})

    return [
        Route("/bench/stats", stats),
        Route("/bench/go", start, methods=["POST"]),
        Route("/bench/lag", lag_samples, methods=["POST"]),
    ]
