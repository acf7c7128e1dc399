"""What `Client` and `AsyncClient` share: the errors, resuming a stream, and reading answers.

Resuming is ours: each reconnect sends `Last-Event-ID`, repeats are dropped by
`seq`, a gap (events the server no longer has) is an error rather than a silent
hole, and a control notice ends a stream to be resumed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from otelstream.events._notices import NOTICE_TYPES, STREAM_OVERFLOW
from otelstream.events._wire import is_final, parse

OVERFLOW = STREAM_OVERFLOW
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=60.0)
"""The read timeout outlasts the server's keep-alive comments (15 s by default)."""


def base_url(text: str) -> str:
    """The router's URL; `localhost:8000` means `http://localhost:8000`, as curl reads it."""
    return text.rstrip("/") if _SCHEME.match(text) else f"http://{text.rstrip('/')}"


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


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
        event = parse(message.data)
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
        if is_final(event):
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
    """The server's reason: its `detail`; a 422's errors as `field: problem`, a line each."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text
    if isinstance(detail, list):
        return "invalid request:" + "".join(f"\n  {_validation_error(item)}" for item in detail)
    return str(detail)


def _validation_error(item: Any) -> str:
    """`parameters.seconds: Input should be ...`: a 422's `loc` is `["body", PIPELINE,
    "parameters", FIELD, ...]` (pydantic puts the pipeline's name, the tag that chose its
    model, after "body"); the field's path in the request body is what a person sent."""
    if not isinstance(item, dict):
        return str(item)
    loc = [str(part) for part in item.get("loc") or []]
    if loc[:1] == ["body"]:
        loc = loc[1:]
    if len(loc) > 1 and loc[1] in ("parameters", "pipeline_name"):
        loc = loc[1:]  # the tag
    message = str(item.get("msg", item))
    return f"{'.'.join(loc)}: {message}" if loc else message


def _run_json(response: httpx.Response, run_id: str) -> dict[str, Any]:
    if response.status_code == 404:  # the server's reason: it may say the run was lost
        raise RunNotFound(_detail(response) or f"unknown or expired run {run_id!r}")
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
