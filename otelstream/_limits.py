"""The router's route class: request bodies bounded (413, not read to the end), a hub that
cannot be reached answered as 503 with `Retry-After`, never as a missing run, and a 422's
errors put in the user's terms (`_parameters.readable_errors`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Message

from otelstream._parameters import readable_errors
from otelstream.hubs import HubUnavailable

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
                        {"detail": f"{exc}: retry later"},
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
