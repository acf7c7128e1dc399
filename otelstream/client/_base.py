"""`BaseClient`: all that `Client` and `AsyncClient` do, said once, with no I/O of its own.

As httpx's `BaseClient` does, the base builds every request (URL, body, headers, the run's
token, `Last-Event-ID`), reads every answer into a result or an error, decides when to ask again
and how long to wait, and decodes the event stream's frames. A subclass only sends (sync or
awaited) and sleeps: its methods are a line each, and two short loops (`_call`, `events`).

Resuming is ours: each reconnect sends `Last-Event-ID`, repeats are dropped by `seq`, a gap
(events the server no longer has) is an error rather than a silent hole, and a control notice
ends a stream to be resumed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, SupportsIndex, TypeVar, overload

import httpx

from otelstream.client._errors import (
    ClientConnectionError,
    RunNotFound,
    answered,
    refusal,
    retry_after,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=60.0)
"""The read timeout outlasts the server's keep-alive comments (15 s by default)."""
TOKEN_HEADER = "X-Otelstream-Token"
"""Where a run's token goes (the server takes `?token=` too) when `require_run_token` is on."""
KEPT_TOKENS = 256
"""Tokens of the runs this client started, kept so that reading them needs no `token=`."""


def base_url(text: str) -> str:
    """The router's URL; `localhost:8000` means `http://localhost:8000`, as curl reads it."""
    return text.rstrip("/") if _SCHEME.match(text) else f"http://{text.rstrip('/')}"


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_with_scheme = base_url  # `base_url` is also the name of the clients' first argument


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    events_url: str
    run_url: str
    token: str | None = None
    """The run's token when the server has `require_run_token` on (this client sends it)."""


class RunsPage(list[dict[str, Any]]):
    """A page of `GET /runs`: the runs themselves, newest first (the page is a list of them),
    and `next_cursor`, to pass as `runs(cursor=...)` for the next, older page (None on the
    last). `page["runs"]` and `page["next_cursor"]` still answer, as when it was the JSON."""

    def __init__(self, runs: Iterable[dict[str, Any]] = (), next_cursor: str | None = None):
        super().__init__(runs)
        self.next_cursor = next_cursor

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self)

    @overload
    def __getitem__(self, key: SupportsIndex) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, key: slice) -> list[dict[str, Any]]: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: SupportsIndex | slice | str) -> Any:
        if isinstance(key, str):
            return {"runs": self.runs, "next_cursor": self.next_cursor}[key]
        return super().__getitem__(key)

    def __repr__(self) -> str:
        return f"RunsPage({list(self)!r}, next_cursor={self.next_cursor!r})"


@dataclass(frozen=True)
class Retrying:
    """Told to `on_retry` before each wait: what failed, why, and how long until it asks again."""

    what: str
    reason: str
    delay: float
    attempt: int
    max_retries: int

    def __str__(self) -> str:
        return (
            f"{self.what}: {self.reason}; retrying in {self.delay:.1f} s "
            f"({self.attempt} of {self.max_retries})"
        )


T = TypeVar("T")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)


@dataclass(frozen=True)
class _Call(Generic[T]):
    """A request and how its answer is read: what the clients send, and (503 aside) return."""

    request: httpx.Request
    answer: Callable[[httpx.Response], T]


class BaseClient(Generic[H]):
    """The options, the requests, the answers and the retries of `Client` and `AsyncClient`."""

    def __init__(
        self,
        base_url: str,
        *,
        http: H | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 5,
        backoff: float = 0.5,
        headers: Mapping[str, str] | None = None,
        on_retry: Callable[[Retrying], None] | None = None,
    ) -> None:
        """`base_url` is where the router is mounted (its prefix included); `host:port` means
        `http://host:port`. `http`: an httpx client of yours to send with (its `base_url`,
        headers and auth are used, and it is left open); `headers` go with every request (a
        proxy's credentials); a 503 and a dropped stream are asked again up to `max_retries`
        times, waiting as `Retry-After` says or `backoff` doubled each time; `on_retry` hears
        of each wait (`Retrying`) before it starts."""
        self._owned = http is None
        self.http: H = (
            self._open(_with_scheme(base_url), timeout, headers) if http is None else http
        )
        self.max_retries = max_retries
        self.backoff = backoff
        self.on_retry = on_retry
        self._tokens: dict[str, str] = {}

    def _open(self, url: str, timeout: httpx.Timeout, headers: Mapping[str, str] | None) -> H:
        """A new httpx client of the subclass's kind (sync or async), owned and closed by it."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    # -- requests and their answers -----------------------------------------------------------

    def _pipelines(self) -> _Call[list[dict[str, Any]]]:
        def answer(response: httpx.Response) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = self._json(response, "GET /pipelines")["pipelines"]
            return found

        return _Call(self._request("GET", "/pipelines"), answer)

    def _start(
        self, pipeline: str, parameters: Mapping[str, Any] | None, more: Mapping[str, Any]
    ) -> _Call[StartedRun]:
        given = dict(parameters or {})
        if twice := sorted(set(given) & set(more)):
            raise TypeError(f"parameter {twice[0]!r} given both in the mapping and by keyword")
        body = {"pipeline_name": pipeline, "parameters": {**given, **more}}
        return _Call(self._request("POST", "/runs", json=body), self._started)

    def _started(self, response: httpx.Response) -> StartedRun:
        if response.status_code != 202:
            raise refusal(response, "the run did not start")
        body = response.json()
        run = StartedRun(body["run_id"], body["events_url"], body["run_url"], body.get("token"))
        if run.token is not None:
            while len(self._tokens) >= KEPT_TOKENS:
                del self._tokens[next(iter(self._tokens))]  # the oldest
            self._tokens[run.run_id] = run.token
        return run

    def _get_run(self, run_id: str, token: str | None) -> _Call[dict[str, Any]]:
        request = self._for_run("GET", f"/runs/{run_id}", run_id, token)
        return _Call(request, lambda response: self._json(response, f"GET run {run_id}", run_id))

    def _cancel(self, run_id: str, token: str | None) -> _Call[dict[str, Any]]:
        def answer(response: httpx.Response) -> dict[str, Any]:
            return self._json(response, f"cancel run {run_id}", run_id, ok=202)

        return _Call(self._for_run("DELETE", f"/runs/{run_id}", run_id, token), answer)

    def _runs(
        self, pipeline: str | None, status: str | None, limit: int, cursor: str | None
    ) -> _Call[RunsPage]:
        query: dict[str, str | int] = {"limit": limit}
        for key, value in (("pipeline", pipeline), ("status", status), ("cursor", cursor)):
            if value is not None:
                query[key] = value

        def answer(response: httpx.Response) -> RunsPage:
            body = self._json(response, "GET /runs")
            return RunsPage(body["runs"], body.get("next_cursor"))

        return _Call(self._request("GET", "/runs", params=query), answer)

    def _request(self, method: str, path: str, **options: Any) -> httpx.Request:
        """Every request is built here: on the client's `base_url`, with its headers."""
        request: httpx.Request = self.http.build_request(method, path, **options)
        return request

    def _for_run(self, method: str, path: str, run_id: str, token: str | None) -> httpx.Request:
        token = token or self._tokens.get(run_id)
        headers = {TOKEN_HEADER: token} if token else None
        return self._request(method, path, headers=headers)

    @staticmethod
    def _json(
        response: httpx.Response, what: str, run_id: str | None = None, ok: int = 200
    ) -> dict[str, Any]:
        if response.status_code == 404 and run_id is not None:  # it may say the run was lost
            raise refusal(response, None, RunNotFound)
        if response.status_code != ok:
            raise refusal(response, what)
        body: dict[str, Any] = response.json()
        return body

    # -- retries --------------------------------------------------------------------------------

    def _pause(self, call: _Call[Any], response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before asking again when the server answered 503 (its hub cannot be
        reached, or it is full: nothing was started), as `Retry-After` says; None: do not."""
        if response.status_code != 503 or attempt > self.max_retries:
            return None
        delay = retry_after(response) or self.backoff * 2 ** (attempt - 1)
        what = f"{call.request.method} {call.request.url.path}"
        self._tell(Retrying(what, answered(response), delay, attempt, self.max_retries))
        return delay

    def _unreachable(self, error: httpx.TransportError) -> ClientConnectionError:
        return ClientConnectionError(
            f"cannot reach the server at {self.url}: {error}", url=self.url
        )

    def _tell(self, notice: Retrying) -> None:
        if self.on_retry is not None:
            self.on_retry(notice)


__all__ = [
    "DEFAULT_TIMEOUT",
    "TOKEN_HEADER",
    "BaseClient",
    "Retrying",
    "RunsPage",
    "StartedRun",
    "base_url",
]
