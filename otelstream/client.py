"""A Python client of the runs API: start a run and read its events, resuming after a drop.

Needs the `client` extra (httpx, httpx-sse). The event stream is read with
httpx-sse, which parses SSE as the spec says; resuming is ours: each
reconnect sends `Last-Event-ID`, repeats are dropped by `seq`, and a gap (events
the server no longer has) is an error rather than a silent hole.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse, connect_sse

from otelstream._notices import NOTICE_TYPES, STREAM_OVERFLOW

TERMINAL = "pipeline_completed"
OVERFLOW = STREAM_OVERFLOW
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=60.0)
"""The read timeout outlasts the server's keep-alive comments (15 s by default)."""


class ClientError(Exception):
    """The server refused a request, or could not be reached after the allowed retries."""


class RunNotFound(ClientError):
    """The server does not know the run (never started there, or expired)."""


class MissedEvents(ClientError):
    """The server no longer has events this reader has not seen (its replay buffer moved on)."""

    def __init__(self, run_id: str, expected: int, got: int) -> None:
        super().__init__(
            f"run {run_id}: expected event {expected}, the server sent {got}; "
            f"events {expected} to {got - 1} are no longer kept"
        )
        self.run_id, self.expected, self.got = run_id, expected, got


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    events_url: str
    run_url: str


class _Resume:
    """The reader's position in one run: what to ask for on reconnect, what to drop, when to stop.

    Shared by the sync and async clients so both resume the same way.
    """

    def __init__(self, url: str, run_id: str, after: int, max_retries: int, backoff: float) -> None:
        self.url = url
        self.run_id = run_id
        self.last_seq = after
        self.done = False
        self.failures = 0
        self.max_retries = max_retries
        self.backoff = backoff
        self.retry_ms: int | None = None
        self.reached = False

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": str(self.last_seq)} if self.last_seq else {}

    def check(self, response: httpx.Response) -> bool:
        """True when the response is a stream to read; False when the run is over (204)."""
        self.reached = True
        if response.status_code == 204:
            self.done = True  # finished, and we have every event
            return False
        if response.status_code == 404:
            raise RunNotFound(f"unknown or expired run {self.run_id!r}")
        if response.status_code >= 500:
            raise _Retry(f"server answered {response.status_code}", response)
        if response.status_code != 200:
            raise ClientError(f"GET events of {self.run_id}: {response.status_code}")
        return True

    def accept(self, message: ServerSentEvent) -> dict[str, Any] | None:
        """The event to hand out, or None for a repeat, a comment or the overflow notice."""
        if message.retry is not None:
            self.retry_ms = message.retry
        if not message.data:
            return None
        event: dict[str, Any] = json.loads(message.data)
        if event.get("type") in NOTICE_TYPES:
            return None  # a control notice: the stream ends next and we resume from last_seq
        seq = event.get("seq")
        if not isinstance(seq, int):
            return None
        if seq <= self.last_seq:
            return None
        if seq != self.last_seq + 1:
            raise MissedEvents(self.run_id, self.last_seq + 1, seq)
        self.last_seq = seq
        self.failures = 0
        if event.get("type") == TERMINAL:
            self.done = True
        return event

    def delay(self, progressed: bool, error: Exception | None) -> float:
        """Seconds to wait before the next attempt; raises once retries are used up."""
        if progressed and error is None:
            return 0.0  # the stream ended cleanly after giving us events: resume at once
        if not self.reached:
            # never got an answer: a wrong address, not a dropped stream; say so at once
            raise ClientError(f"cannot reach the server at {self.url}: {error}") from error
        self.failures += 1
        if self.failures > self.max_retries:
            raise ClientError(
                f"run {self.run_id}: gave up after {self.max_retries} retries ({error})"
            ) from error
        base = self.retry_ms / 1000 if self.retry_ms is not None else self.backoff
        retry_after = getattr(error, "retry_after", None)
        return float(retry_after) if retry_after else min(30.0, base * 2 ** (self.failures - 1))


class _Retry(Exception):
    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        value = response.headers.get("retry-after", "")
        self.retry_after = float(value) if value.replace(".", "", 1).isdigit() else None


_TRANSIENT = (httpx.TransportError, _Retry)


def _run_body(pipeline: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"pipeline_name": pipeline, "parameters": dict(parameters or {})}


def _wait_503(response: httpx.Response, attempt: int, retries: int, backoff: float) -> float | None:
    """Seconds to wait before asking again when the server answered 503 (its hub cannot be
    reached, or it is full: nothing was started), as `Retry-After` says; None: do not."""
    if response.status_code != 503 or attempt > retries:
        return None
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else backoff * 2 ** (attempt - 1)


def _started(response: httpx.Response) -> StartedRun:
    if response.status_code != 202:
        raise ClientError(f"the run did not start: {response.status_code} {_detail(response)}")
    body = response.json()
    return StartedRun(body["run_id"], body["events_url"], body["run_url"])


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def _run_json(response: httpx.Response, run_id: str) -> dict[str, Any]:
    if response.status_code == 404:
        raise RunNotFound(f"unknown or expired run {run_id!r}")
    if response.status_code != 200:
        raise ClientError(f"GET run {run_id}: {response.status_code} {_detail(response)}")
    body: dict[str, Any] = response.json()
    return body


def _runs_query(
    pipeline: str | None, status: str | None, limit: int, cursor: str | None
) -> dict[str, str | int]:
    query: dict[str, str | int] = {"limit": limit}
    for key, value in (("pipeline", pipeline), ("status", status), ("cursor", cursor)):
        if value is not None:
            query[key] = value
    return query


def _runs_json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise ClientError(f"GET /runs: {response.status_code} {_detail(response)}")
    body: dict[str, Any] = response.json()
    return body


class Client:
    """Sync client. `base_url` is where the router is mounted (its prefix included).

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
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
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
        self.http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
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
