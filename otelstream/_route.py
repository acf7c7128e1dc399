"""A row of the runs API's route table, and the OpenAPI answers it documents.

The table itself is `otelstream._api.ROUTES`, beside the endpoints it serves;
`otelstream.fastapi.create_router` registers each row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from otelstream._api_models import ErrorDetail
from otelstream.events import SSE_MESSAGE_SCHEMA

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
