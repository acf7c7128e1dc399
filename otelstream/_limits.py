"""A bound on request bodies, as a FastAPI route class: refused with 413, not read to the end."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message


def body_limited_route(limit: int) -> type[APIRoute]:
    """A route class whose requests may carry at most `limit` bytes of body."""

    def too_large() -> HTTPException:
        return HTTPException(413, f"the request body is over {limit} bytes")

    class BodyLimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise too_large()
                received = 0
                receive = request.receive

                async def counting() -> Message:  # for bodies sent in chunks, unannounced
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > limit:
                            raise too_large()
                    return message

                return await handler(Request(request.scope, counting))

            return limited

    return BodyLimitedRoute
