"""Reading a run's stream across reconnects: what to ask for next, which frames to hand out,
when to stop, how long to wait before the next attempt (the resume rules both clients share)."""

from __future__ import annotations

from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from otelstream.client._base import TOKEN_HEADER, BaseClient, Retrying
from otelstream.client._errors import (
    ClientConnectionError,
    ClientError,
    MissedEvents,
    RunNotFound,
    Unavailable,
    answered,
    refusal,
    retry_after,
)
from otelstream.events._notices import NOTICE_TYPES
from otelstream.events._wire import is_final, parse


class Retry(Exception):
    """A 5xx answer to a stream: worth asking again, as a dropped connection is."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(answered(response))
        self.status_code = response.status_code
        self.retry_after = retry_after(response)


TRANSIENT = (httpx.TransportError, Retry)


class Resume:
    """A reader's position in one run: what to ask for on reconnect, which frames to hand out,
    when to stop, and how long to wait before the next attempt."""

    def __init__(self, client: BaseClient[Any], run_id: str, after: int, token: str | None):
        self.client = client
        self.run_id = run_id
        self.token = token
        self.last_seq = after
        self.done = False
        self.failures = 0
        self.retry_ms: int | None = None
        self.reached = False
        self._before = after
        self._error: Exception | None = None

    def request(self) -> httpx.Request:
        """The next attempt's request: after the last event handed out."""
        self._before, self._error = self.last_seq, None
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_seq:
            headers["Last-Event-ID"] = str(self.last_seq)
        if self.token:
            headers[TOKEN_HEADER] = self.token
        return self.client._request("GET", f"/runs/{self.run_id}/events", headers=headers)

    def opened(self, response: httpx.Response) -> bool:
        """True when the response is a stream to read; False when the run is over (204).
        A refusal's body is read first (`aopened` reads it awaited)."""
        self.reached = True
        status = response.status_code
        if status == 204:
            self.done = True  # finished, and we have every event
            return False
        if status != 200:
            response.read()
        if status == 404:
            raise refusal(response, None, RunNotFound)
        if status >= 500:
            raise Retry(response)
        if status != 200:
            raise refusal(response, f"GET events of {self.run_id}")
        kind = response.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):  # a proxy's page, say: not our server
            raise ClientError(
                f"GET events of {self.run_id}: 200 is not an event stream ({kind or 'no type'})",
                status_code=status,
            )
        return True

    async def aopened(self, response: httpx.Response) -> bool:
        """`opened`, for a response of `AsyncClient` (its body is read awaited)."""
        if response.status_code not in (200, 204):
            await response.aread()
        return self.opened(response)

    def accept(self, message: ServerSentEvent) -> dict[str, Any] | None:
        """The event to hand out, or None for a repeat, a comment or a control notice."""
        if message.retry is not None:
            self.retry_ms = message.retry
        if not message.data:
            return None
        event = parse(message.data)
        if event.get("type") in NOTICE_TYPES:
            return None  # a control notice: the stream ends next and we resume from last_seq
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= self.last_seq:
            return None
        if seq != self.last_seq + 1:
            raise MissedEvents(self.run_id, self.last_seq + 1, seq)
        self.last_seq = seq
        self.failures = 0
        if is_final(event):
            self.done = True
        return event

    def failed(self, error: Exception) -> None:
        self._error = error

    def pause(self) -> float:
        """Seconds to wait before the next attempt (0 when done); raises once retries are used
        up, or at once when the server never answered (a wrong address, not a dropped stream)."""
        error = self._error
        if self.done or (self.last_seq > self._before and error is None):
            return 0.0  # the stream ended cleanly after giving us events: resume at once
        if not self.reached:
            assert isinstance(error, httpx.TransportError)
            raise self.client._unreachable(error) from error
        self.failures += 1
        if self.failures > self.client.max_retries:
            raise self._gave_up(error)
        base = self.retry_ms / 1000 if self.retry_ms is not None else self.client.backoff
        told = getattr(error, "retry_after", None)
        delay = float(told) if told else min(30.0, base * 2 ** (self.failures - 1))
        reason = (str(error) or type(error).__name__) if error else "the stream ended"
        what = f"the stream of run {self.run_id}"
        self.client._tell(Retrying(what, reason, delay, self.failures, self.client.max_retries))
        return delay

    def _gave_up(self, error: Exception | None) -> ClientError:
        message = f"run {self.run_id}: gave up after {self.client.max_retries} retries ({error})"
        if isinstance(error, Retry) and error.status_code == 503:
            return Unavailable(message, status_code=503, retry_after=error.retry_after)
        if isinstance(error, Retry):
            return ClientError(message, status_code=error.status_code)
        if isinstance(error, httpx.TransportError):
            return ClientConnectionError(message, url=self.client.url)
        return ClientError(message)


__all__ = ["TRANSIENT", "Resume", "Retry"]
