"""The runs API's routing: a row of the route table with the OpenAPI answers it documents, and
the route class that serves each row: request bodies bounded (413, not read to the end), a hub
that cannot be reached answered as 503 with `Retry-After`, never as a missing run, and a 422's
errors put in the user's terms (`parameters.readable_errors`).

The table itself is `otelstream._server.routes.ROUTES`, its rows naming the endpoints of `api.py`;
`otelstream.fastapi.create_router` registers each row.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Message

from otelstream._server.models import ErrorDetail
from otelstream._server.parameters import readable_errors
from otelstream.events import SSE_MESSAGE_SCHEMA
from otelstream.hubs import HubUnavailable

Responses = dict[int | str, dict[str, Any]]

_ERRORS = {
    404: "Unknown pipeline, or unknown or expired run (or a wrong run token).",
    409: "The trace already has a run, or the run has ended.",
    413: "The request body is over `max_body_bytes`.",
    422: "A query parameter is malformed (such as a cursor this server never gave).",
    503: "Every worker, queue place or stream is taken, or the hub cannot be reached (Redis "
    "down): retry after `Retry-After` seconds.",
}


@dataclass(frozen=True)
class Route:
    """Where a `RunsAPI` method is served, what guards it, and what it may answer."""

    method: str
    path: str
    endpoint: str
    """The name of the `RunsAPI` method."""
    guard: Literal["start", "watch", "otlp"]
    """`start`: the app's `start_dependencies`; `watch`: its `watch_dependencies`, then the
    run's token (`RunsAPI.authorize`); `otlp`: the OTLP receiver, served only when asked
    for, which checks its own token and bounds its own body (as OTLP exporters expect)."""
    dependencies: tuple[str, ...] = ()
    """`RunsAPI` methods run as dependencies after the guard (such as a stream bound)."""
    status_code: int = 200
    errors: tuple[int, ...] = ()
    stream: str | None = None
    """What the event stream it answers with holds (`EventStreamResponse`); None: JSON."""
    more: Responses = field(default_factory=dict)
    """Other documented answers."""
    typed_body: bool = False
    """The `request` body is typed per pipeline, from the pipelines' signatures."""
    exclude_none: bool = False

    def responses(self) -> Responses:
        """The OpenAPI answers: errors are JSON even where the answer would be a stream."""
        documented: Responses = {}
        if self.stream is not None:
            content = {"text/event-stream": {"schema": SSE_MESSAGE_SCHEMA}}
            documented[200] = {"description": self.stream, "content": content}
        documented.update(self.more)
        content = {"application/json": {"schema": ErrorDetail.model_json_schema()}}
        for code in self.errors:
            documented[code] = {"description": _ERRORS[code], "content": content}
        return documented


_BODYLESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def body_limited_route(limit: int) -> type[APIRoute]:
    """A route class whose requests may carry at most `limit` bytes of body."""

    def too_large() -> HTTPException:
        return HTTPException(413, f"the request body is over {limit} bytes")

    class BodyLimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            def bounded(request: Request) -> Request:
                """The request with its body counted as it is read."""
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

                return Request(request.scope, counting)

            async def limited(request: Request) -> Response:
                try:
                    # no endpoint reads the body of these: a stream's attach pays nothing here
                    if request.scope["method"] not in _BODYLESS:
                        request = bounded(request)
                    return await handler(request)
                except HubUnavailable as exc:
                    return JSONResponse(
                        {"detail": exc.advice()},
                        status_code=503,
                        headers={"Retry-After": str(exc.retry_after)},
                    )
                except RequestValidationError as exc:
                    media_type = request.headers.get("content-type", "").split(";")[0].strip()
                    json_sent = media_type == "application/json" or media_type.endswith("+json")
                    errors = readable_errors(exc.errors(), json_sent)
                    raise RequestValidationError(errors, body=exc.body) from None

            return limited

    return BodyLimitedRoute
