"""A Python client of the runs API: start a run and read its events, resuming after a drop.

Needs the `client` extra (httpx, httpx-sse). Loads neither the OpenTelemetry SDK nor the server.
Every error it raises is a `ClientError` (`status_code`, `detail`, a 422's `errors`), one class a
kind of refusal: `NotFound` (`RunNotFound`), `InvalidRequest`, `Conflict`, `Unavailable`
(`retry_after`), `ClientConnectionError`, `MissedEvents`.
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

__all__ = [
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
    "Retrying",
    "RunNotFound",
    "RunsPage",
    "StartedRun",
    "Unavailable",
]
