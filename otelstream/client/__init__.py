"""A Python client of the runs API: start a run and read its events, resuming after a drop.

Needs the `client` extra (httpx, httpx-sse). Loads neither the OpenTelemetry SDK nor the server.
"""

from otelstream.client._clients import (
    AsyncClient,
    Client,
    ClientError,
    MissedEvents,
    RunNotFound,
    StartedRun,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "MissedEvents",
    "RunNotFound",
    "StartedRun",
]
