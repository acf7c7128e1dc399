"""A Python client of the runs API: start a run and read its events, resuming after a drop.

Needs the `client` extra (httpx, httpx-sse). Loads neither the OpenTelemetry SDK nor the server.
Every error it raises is a `ClientError` (`status_code`, `detail`, a 422's `errors`), one class a
kind of refusal: `NotFound` (`RunNotFound`), `InvalidRequest`, `Conflict`, `Unavailable`
(`retry_after`), `ClientConnectionError`, `MissedEvents`.

Events are their JSON objects (dicts); `usual(event)` and `overdue(event)` read what a run
whose pipeline has a history says of its usual time (`expected_duration_ms`,
`expected_p90_ms`) and the `task_overdue` / `pipeline_overdue` events (`running_ms`), typed.
"""

from otelstream.client._base import BaseClient, Retrying, RunsPage, StartedRun
from otelstream.client._clients import AsyncClient, Client
from otelstream.client._errors import (
    ClientConnectionError,
    ClientError,
    Conflict,
    FieldError,
    InvalidRequest,
    MissedEvents,
    NotFound,
    RunNotFound,
    Unavailable,
)
from otelstream.client._usual import (
    OVERDUE_TYPES,
    PIPELINE_OVERDUE,
    TASK_OVERDUE,
    Overdue,
    Usual,
    overdue,
    usual,
)

__all__ = [
    "OVERDUE_TYPES",
    "PIPELINE_OVERDUE",
    "TASK_OVERDUE",
    "AsyncClient",
    "BaseClient",
    "Client",
    "ClientConnectionError",
    "ClientError",
    "Conflict",
    "FieldError",
    "InvalidRequest",
    "MissedEvents",
    "NotFound",
    "Overdue",
    "Retrying",
    "RunNotFound",
    "RunsPage",
    "StartedRun",
    "Unavailable",
    "Usual",
    "overdue",
    "usual",
]
