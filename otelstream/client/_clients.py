"""`Client` and `AsyncClient`: `BaseClient` with the sending done sync or awaited.

Everything else (requests, answers, errors, retries, resuming, frames) is the base's, so the two
cannot drift: each method here is a line, plus the two loops only I/O tells apart. The event
stream is parsed by httpx-sse, as the SSE spec says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Self, TypeVar

import httpx
from httpx_sse import EventSource

from otelstream.client._base import (
    BaseClient,
    RunsPage,
    StartedRun,
    _Call,
)
from otelstream.client._resume import TRANSIENT, Resume

T = TypeVar("T")


class Client(BaseClient[httpx.Client]):
    """Sync client. `base_url` is where the router is mounted (its prefix included); `host:port`
    means `http://host:port`, as the `otelstream` command reads it. `headers` go with every
    request (a proxy's credentials); `on_retry` hears of each wait before asking again (a
    503 while the server's hub is down, a dropped stream).

    with Client("http://127.0.0.1:8000") as client:
        for event in client.run("example", seconds=0.1):
            print(event["type"], event["name"])
    """

    def _open(
        self, url: str, timeout: httpx.Timeout, headers: Mapping[str, str] | None
    ) -> httpx.Client:
        return httpx.Client(base_url=url, timeout=timeout, headers=headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def pipelines(self) -> list[dict[str, Any]]:
        """The registered pipelines (`GET /pipelines`): `name` and `description` each, and
        what their history says (`expected_duration_ms`, `expected_p90_ms`, `success_rate`,
        `last_status`; None before there is one)."""
        return self._call(self._pipelines())

    def start(
        self, pipeline: str, parameters: Mapping[str, Any] | None = None, **more: Any
    ) -> StartedRun:
        """Start a run (`POST /runs`) with `parameters` and keyword parameters (`seconds=0.1`),
        asking again after a 503 up to `max_retries` times. (A pipeline's parameter named
        `pipeline` or `parameters` goes in the mapping.)"""
        return self._call(self._start(pipeline, parameters, more))

    def get_run(self, run_id: str, *, token: str | None = None) -> dict[str, Any]:
        """The run's status, times and span tree (`GET /runs/{run_id}`)."""
        return self._call(self._get_run(run_id, token))

    def cancel(self, run_id: str, *, token: str | None = None) -> dict[str, Any]:
        """Cancel a running run (`DELETE /runs/{run_id}`); it stops at its next span.
        `Conflict` when it has already ended."""
        return self._call(self._cancel(run_id, token))

    def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunsPage:
        """Recent and running runs, newest first (`GET /runs`): a list, with `next_cursor`."""
        return self._call(self._runs(pipeline, status, limit, cursor))

    def events(
        self, run_id: str, *, after: int = 0, token: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every event after `after`, in order, each once, until the run ends: the tasks'
        starts and ends, and `task_log`, `task_progress`, `logs_dropped` as they come, and
        `task_overdue` / `pipeline_overdue` when a task or the run runs well past its usual
        time (`overdue(event)` reads one; `usual(event)` what a start says is usual).

        A dropped or cut stream is reopened with `Last-Event-ID`; raises
        `MissedEvents` when the server can no longer send what was missed.
        """
        stream = Resume(self, run_id, after, token or self._tokens.get(run_id))
        while not stream.done:
            try:
                response = self.http.send(stream.request(), stream=True)
                try:
                    if stream.opened(response):
                        for message in EventSource(response).iter_sse():
                            if (event := stream.accept(message)) is not None:
                                yield event
                                if stream.done:
                                    break
                finally:
                    response.close()
            except TRANSIENT as exc:
                stream.failed(exc)
            time.sleep(stream.pause())

    def run(
        self, pipeline: str, parameters: Mapping[str, Any] | None = None, **more: Any
    ) -> Iterator[dict[str, Any]]:
        """Start `pipeline` (as `start` does) and yield its events until it ends."""
        yield from self.events(self.start(pipeline, parameters, **more).run_id)

    def _call(self, call: _Call[T]) -> T:
        for attempt in range(1, self.max_retries + 2):
            try:
                response = self.http.send(call.request)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            if (delay := self._pause(call, response, attempt)) is None:
                break
            time.sleep(delay)
        return call.answer(response)


class AsyncClient(BaseClient[httpx.AsyncClient]):
    """The same as `Client`, on asyncio: the same methods, awaited (`aclose` for `close`).

    async with AsyncClient("http://127.0.0.1:8000") as client:
        async for event in client.run("example", seconds=0.1):
            print(event["type"], event["name"])
    """

    def _open(
        self, url: str, timeout: httpx.Timeout, headers: Mapping[str, str] | None
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def pipelines(self) -> list[dict[str, Any]]:
        """The registered pipelines (`GET /pipelines`): `name` and `description` each."""
        return await self._call(self._pipelines())

    async def start(
        self, pipeline: str, parameters: Mapping[str, Any] | None = None, **more: Any
    ) -> StartedRun:
        """Start a run (`POST /runs`), as `Client.start` does."""
        return await self._call(self._start(pipeline, parameters, more))

    async def get_run(self, run_id: str, *, token: str | None = None) -> dict[str, Any]:
        """The run's status, times and span tree (`GET /runs/{run_id}`)."""
        return await self._call(self._get_run(run_id, token))

    async def cancel(self, run_id: str, *, token: str | None = None) -> dict[str, Any]:
        """Cancel a running run (`DELETE /runs/{run_id}`), as `Client.cancel` does."""
        return await self._call(self._cancel(run_id, token))

    async def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunsPage:
        """Recent and running runs, newest first (`GET /runs`): a list, with `next_cursor`."""
        return await self._call(self._runs(pipeline, status, limit, cursor))

    async def events(
        self, run_id: str, *, after: int = 0, token: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event after `after`, in order, each once, until the run ends."""
        stream = Resume(self, run_id, after, token or self._tokens.get(run_id))
        while not stream.done:
            try:
                response = await self.http.send(stream.request(), stream=True)
                try:
                    if await stream.aopened(response):
                        async for message in EventSource(response).aiter_sse():
                            if (event := stream.accept(message)) is not None:
                                yield event
                                if stream.done:
                                    break
                finally:
                    await response.aclose()
            except TRANSIENT as exc:
                stream.failed(exc)
            await asyncio.sleep(stream.pause())

    async def run(
        self, pipeline: str, parameters: Mapping[str, Any] | None = None, **more: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Start `pipeline` (as `start` does) and yield its events until it ends."""
        started = await self.start(pipeline, parameters, **more)
        async for event in self.events(started.run_id):
            yield event

    async def _call(self, call: _Call[T]) -> T:
        for attempt in range(1, self.max_retries + 2):
            try:
                response = await self.http.send(call.request)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            if (delay := self._pause(call, response, attempt)) is None:
                break
            await asyncio.sleep(delay)
        return call.answer(response)


__all__ = ["AsyncClient", "Client"]
