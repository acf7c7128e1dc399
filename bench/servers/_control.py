"""The control routes every bench server has: readiness and counters, and the start signal."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Padded so that an event of the fan-out runs frames to ~250 bytes, as in otel-facts.md.
FANOUT_TASK = "task:fanout-step-of-a-pipeline-with-a-long-name"


def control_routes(
    subscribers: Callable[[], int], go: Callable[[Request], Awaitable[None]]
) -> list[Route]:
    """`GET /bench/stats` (ready, pid, open subscriptions) and `POST /bench/go`."""

    async def stats(request: Request) -> Response:
        return JSONResponse({"pid": os.getpid(), "subscribers": subscribers()})

    async def start(request: Request) -> Response:
        await go(request)
        return JSONResponse({"started": True})

    return [Route("/bench/stats", stats), Route("/bench/go", start, methods=["POST"])]
