"""A Python client of the runs API: start a run and read its events, resuming after a drop.

Needs the `client` extra (httpx, httpx-sse). The event stream is read with
httpx-sse, which parses SSE as the spec says; resuming is ours: each
reconnect sends `Last-Event-ID`, repeats are dropped by `seq`, and a gap (events
the server no longer has) is an error rather than a silent hole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Self

import httpx
from httpx_sse import EventSource, aconnect_sse, connect_sse

from otelstream.client._base import (
    _TRANSIENT,
    DEFAULT_TIMEOUT,
    ClientError,
    MissedEvents,
    RunNotFound,
    StartedRun,
    _Resume,
    _run_body,
    _run_json,
    _runs_json,
    _runs_query,
    _started,
    _wait_503,
)
from otelstream.client._base import base_url as _with_scheme


class Client:
    """Sync client. `base_url` is where the router is mounted (its prefix included); `host:port`
    means `http://host:port`, as the `otelstream` command reads it.

    with Client("http://127.0.0.1:8000") as client:
        run = client.start("example", {"seconds": 0.1})
        for event in client.events(run.run_id):
            print(event["type"], event["name"])
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self._owned = http is None
        self.http = http or httpx.Client(base_url=_with_scheme(base_url), timeout=timeout)
        self.max_retries = max_retries
        self.backoff = backoff

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def pipelines(self) -> list[dict[str, Any]]:
        response = self.http.get("/pipelines")
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["pipelines"]
        return found

    def start(self, pipeline: str, parameters: Mapping[str, Any] | None = None) -> StartedRun:
        """Start a run (`POST /runs`), asking again after a 503 up to `max_retries` times."""
        return _started(self._retrying("POST", "/runs", json=_run_body(pipeline, parameters)))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's status, times and span tree (`GET /runs/{run_id}`)."""
        return _run_json(self._retrying("GET", f"/runs/{run_id}"), run_id)

    def _retrying(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            response = self.http.request(method, url, **kwargs)
            delay = _wait_503(response, attempt, self.max_retries, self.backoff)
            if delay is None:
                return response
            time.sleep(delay)

    def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Recent and running runs, newest first (`GET /runs`): `{"runs": [...], "next_cursor"}`."""
        query = _runs_query(pipeline, status, limit, cursor)
        return _runs_json(self.http.get("/runs", params=query))

    def events(self, run_id: str, *, after: int = 0) -> Iterator[dict[str, Any]]:
        """Every event after `after`, in order, each once, until the run ends: the tasks'
        starts and ends, and `task_log`, `task_progress`, `logs_dropped` as they come.

        A dropped or cut stream is reopened with `Last-Event-ID`; raises
        `MissedEvents` when the server can no longer send what was missed.
        """
        state = _Resume(
            str(self.http.base_url).rstrip("/"), run_id, after, self.max_retries, self.backoff
        )
        while not state.done:
            before, error = state.last_seq, None
            try:
                with connect_sse(
                    self.http, "GET", f"/runs/{run_id}/events", headers=state.headers()
                ) as source:
                    if state.check(source.response):
                        yield from _read(source, state)
            except _TRANSIENT as exc:
                error = exc
            if not state.done:
                time.sleep(state.delay(state.last_seq > before, error))

    def run(
        self, pipeline: str, parameters: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Start `pipeline` and yield its events until it ends."""
        yield from self.events(self.start(pipeline, parameters).run_id)


def _read(source: EventSource, state: _Resume) -> Iterator[dict[str, Any]]:
    for message in source.iter_sse():
        event = state.accept(message)
        if event is not None:
            yield event
            if state.done:
                return


class AsyncClient:
    """The same as `Client`, on asyncio: the same methods, awaited (`aclose` for `close`).

    async with AsyncClient("http://127.0.0.1:8000") as client:
        async for event in client.run("example", {"seconds": 0.1}):
            print(event["type"], event["name"])
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self._owned = http is None
        self.http = http or httpx.AsyncClient(base_url=_with_scheme(base_url), timeout=timeout)
        self.max_retries = max_retries
        self.backoff = backoff

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def pipelines(self) -> list[dict[str, Any]]:
        response = await self.http.get("/pipelines")
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["pipelines"]
        return found

    async def start(self, pipeline: str, parameters: Mapping[str, Any] | None = None) -> StartedRun:
        """Start a run (`POST /runs`), asking again after a 503 up to `max_retries` times."""
        body = _run_body(pipeline, parameters)
        return _started(await self._retrying("POST", "/runs", json=body))

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's status, times and span tree (`GET /runs/{run_id}`)."""
        return _run_json(await self._retrying("GET", f"/runs/{run_id}"), run_id)

    async def _retrying(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            response = await self.http.request(method, url, **kwargs)
            delay = _wait_503(response, attempt, self.max_retries, self.backoff)
            if delay is None:
                return response
            await asyncio.sleep(delay)

    async def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Recent and running runs, newest first (`GET /runs`): `{"runs": [...], "next_cursor"}`."""
        query = _runs_query(pipeline, status, limit, cursor)
        return _runs_json(await self.http.get("/runs", params=query))

    async def events(self, run_id: str, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every event after `after`, in order, each once, until the run ends."""
        state = _Resume(
            str(self.http.base_url).rstrip("/"), run_id, after, self.max_retries, self.backoff
        )
        while not state.done:
            before, error = state.last_seq, None
            try:
                async with aconnect_sse(
                    self.http, "GET", f"/runs/{run_id}/events", headers=state.headers()
                ) as source:
                    if state.check(source.response):
                        async for message in source.aiter_sse():
                            event = state.accept(message)
                            if event is not None:
                                yield event
                                if state.done:
                                    break
            except _TRANSIENT as exc:
                error = exc
            if not state.done:
                await asyncio.sleep(state.delay(state.last_seq > before, error))

    async def run(
        self, pipeline: str, parameters: Mapping[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Start `pipeline` and yield its events until it ends."""
        started = await self.start(pipeline, parameters)
        async for event in self.events(started.run_id):
            yield event


__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "MissedEvents",
    "RunNotFound",
    "StartedRun",
]
