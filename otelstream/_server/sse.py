"""The SSE response: a subscription's events, framed once, written as bytes, ended cleanly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from otelstream import _metrics
from otelstream._errors import warn_limited
from otelstream._server.send_watch import SendWatch
from otelstream.events import KEEPALIVE
from otelstream.events._notices import SEND_TIMEOUT, SERVER_SHUTDOWN
from otelstream.events._wire import notice_frame
from otelstream.hubs import Subscription, UnknownRun

SSE_HEADERS: Mapping[str, str] = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx: do not buffer the stream
}


def shutdown_frame(run_id: str, last_seq: int = 0) -> bytes:
    """The last message of a stream that the server closes: no `id:`, so a client resumes."""
    return notice_frame(SERVER_SHUTDOWN, run_id, last_seq)


class OpenStreams:
    """The streams a router has open, against `max_streams`; used only on its event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streams: set[EventStreamResponse] = set()

    def full(self) -> bool:
        return len(self.streams) >= self.limit

    def close_all(self) -> None:
        """End every open stream with a `server_shutdown` message."""
        for stream in list(self.streams):
            stream.stop()


class EventStreamResponse(Response):
    """Streams one subscription until its run ends, the client leaves, or it is cut.

    One task per subscriber plus one that waits for the client to disconnect.
    Whatever is pending is written as one chunk, each event's bytes made once. `headers` are
    added to (or replace) `SSE_HEADERS`, as `StreamingResponse` takes them.
    Every write must be accepted within `send_timeout` seconds (`SendWatch`; uvicorn waits for
    the socket's buffer to drain before it writes), else the stream is cut with a
    `send_timeout` notice: a client that stops reading holds nothing for long.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        subscription: Subscription,
        run_id: str,
        *,
        keepalive: float,
        streams: OpenStreams | None = None,
        send_timeout: float = 30.0,
        retry_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        given = {name.lower(): value for name, value in (headers or {}).items()}
        self.init_headers({**SSE_HEADERS, **given})  # no body: no content-length
        self.subscription = subscription
        self.run_id = run_id
        self.keepalive = keepalive
        self.send_timeout = send_timeout
        self.streams = streams or OpenStreams(limit=0)
        # a field of the first message (not one of its own), so line-naive readers still work
        self._head = b"" if retry_ms is None else b"retry: %d\n" % retry_ms
        self._task: asyncio.Task[object] | None = None
        self._watch: SendWatch  # made with the stream's task
        self._stopping = False
        self._ending = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        task = self._task = asyncio.current_task()
        assert task is not None
        self._watch = SendWatch(task)
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, task, disconnected))
        try:
            async with self.subscription as subscription:
                self.streams.streams.add(self)
                kind = "runs" if self.run_id == "runs" else "run"
                _metrics.stream_opened(kind)
                try:
                    await self._pump(subscription, send)
                except asyncio.CancelledError:
                    if not self._stopping or disconnected.is_set():
                        raise
                    task.uncancel()  # our own: the server is shutting down
                    await self._last_words(subscription, send)
                finally:
                    self.streams.streams.discard(self)
                    _metrics.stream_opened(kind, -1)
        except UnknownRun:  # gone (expired) between the check and here: end the stream empty;
            # a browser's reconnect then gets the 404 that stops it
            await _end(send)
        except _Stalled:
            # The client stopped reading. A slow one may still take the notice; then the
            # response is left unfinished, so uvicorn closes the connection instead of
            # waiting for a buffer that may never drain.
            _metrics.stream_cut(SEND_TIMEOUT)
            if not self._stopping:  # at shutdown the last words were that chance: time is up
                with contextlib.suppress(_Stalled):
                    last_seq = self.subscription.last_seq
                    notice = notice_frame(SEND_TIMEOUT, self.run_id, last_seq)
                    await self._write(send, notice, 0.5)
            warn_limited(
                "otelstream: a client of run %s did not read its stream for %.0f s; the stream "
                "was cut (it may resume with Last-Event-ID). Raise "
                "OTELSTREAM_SEND_TIMEOUT_SECONDS for clients on slow links.",
                self.run_id,
                self.send_timeout,
            )
        except asyncio.CancelledError:
            if not disconnected.is_set():
                raise
            task.uncancel()  # our own: the client left, which is not an error
        finally:
            watcher.cancel()
            self._watch.close()

    def stop(self) -> None:
        """End the stream now (server shutdown), with a message saying so."""
        if self._task is not None and not (self._stopping or self._ending):
            self._stopping = True
            self._task.cancel()

    async def _write(self, send: Send, body: bytes, timeout: float | None = None) -> None:
        """One chunk, accepted by the client within the send timeout or `_Stalled`."""
        message = {"type": "http.response.body", "body": body, "more_body": True}
        try:
            await self._watch.send(send, message, self.send_timeout if timeout is None else timeout)
        except TimeoutError:
            raise _Stalled from None

    async def _last_words(self, subscription: Subscription, send: Send) -> None:
        """Send what is already there; then end, saying why unless the run has ended too.

        Bounded in time, all of it together (not each write): on shutdown a stalled or slow
        client must not hold the process past the bound uvicorn is given for it."""
        self._ending = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self.send_timeout, LAST_WORDS_SECONDS)
        frames = await subscription.next_frames(0)
        while frames:
            await self._write(send, frames, max(0.0, deadline - loop.time()))
            frames = await subscription.next_frames(0)
        if frames is not None:  # the run goes on without this stream
            notice = shutdown_frame(self.run_id, subscription.last_seq)
            await self._write(send, notice, max(0.0, deadline - loop.time()))
        await _end(send)

    async def _pump(self, subscription: Subscription, send: Send) -> None:
        head = self._head
        while True:
            frames = await subscription.next_frames(self.keepalive)
            if frames is None:
                break
            body = frames or KEEPALIVE
            if head:  # at the end of the first message, so that it still opens with `id:`
                end = body.index(b"\n\n") + 1
                body, head = body[:end] + head + body[end:], b""
            await self._write(send, body)  # after a cut's notice, the next read ends the loop
        self._ending = True  # from here on the stream ends by itself
        await _end(send)


LAST_WORDS_SECONDS = 2.0
"""On shutdown, how long the last words may wait for a client: the process must exit."""


class _Stalled(Exception):
    """The client did not accept a write within the send timeout."""


async def _end(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _watch_disconnect(
    receive: Receive, stream: asyncio.Task[object], disconnected: asyncio.Event
) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()
    stream.cancel()


__all__ = [
    "LAST_WORDS_SECONDS",
    "SSE_HEADERS",
    "EventStreamResponse",
    "OpenStreams",
    "shutdown_frame",
]
