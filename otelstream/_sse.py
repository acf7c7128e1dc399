"""The SSE response: a subscription's events, framed once, written as bytes, ended cleanly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from otelstream.events import KEEPALIVE, SERVER_SHUTDOWN, STREAM_OVERFLOW, encode_sse
from otelstream.hubs import SubscriberLagged, Subscription, UnknownRun

SSE_HEADERS: Mapping[str, str] = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx: do not buffer the stream
}


def overflow_frame(run_id: str, last_seq: int) -> bytes:
    """Sent without an `id:`, so a browser resumes from the last real event it saw."""
    message = {
        "type": STREAM_OVERFLOW,
        "run_id": run_id,
        "last_seq": last_seq,
        "message": "this subscriber fell behind; reconnect with Last-Event-ID to resume",
    }
    return encode_sse(json.dumps(message, separators=(",", ":")))


def shutdown_frame(run_id: str) -> bytes:
    """The last message of a stream that the server closes: no `id:`, so a client resumes."""
    message = {
        "type": SERVER_SHUTDOWN,
        "run_id": run_id,
        "message": "the server is shutting down; reconnect with Last-Event-ID to resume",
    }
    return encode_sse(json.dumps(message, separators=(",", ":")))


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
    """Streams one subscription until its run ends, the client leaves, or it falls behind.

    One task per subscriber plus one that waits for the client to disconnect.
    Whatever is pending is written as one chunk, each event's bytes made once.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        subscription: Subscription,
        run_id: str,
        *,
        keepalive: float,
        streams: OpenStreams | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        self.raw_headers += [(k.encode(), v.encode()) for k, v in SSE_HEADERS.items()]
        self.subscription = subscription
        self.run_id = run_id
        self.keepalive = keepalive
        self.streams = streams or OpenStreams(limit=0)
        self._task: asyncio.Task[object] | None = None
        self._stopping = False
        self._ending = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        task = self._task = asyncio.current_task()
        assert task is not None
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, task, disconnected))
        try:
            async with self.subscription as subscription:
                self.streams.streams.add(self)
                try:
                    await self._pump(subscription, send)
                except asyncio.CancelledError:
                    if not self._stopping or disconnected.is_set():
                        raise
                    task.uncancel()  # our own: the server is shutting down
                    await self._last_words(subscription, send)
                finally:
                    self.streams.streams.discard(self)
        except UnknownRun:  # gone (expired) between the check and here: end the stream empty;
            # a browser's reconnect then gets the 404 that stops it
            await _end(send)
        except asyncio.CancelledError:
            if not disconnected.is_set():
                raise
            task.uncancel()  # our own: the client left, which is not an error
        finally:
            watcher.cancel()

    def stop(self) -> None:
        """End the stream now (server shutdown), with a message saying so."""
        if self._task is not None and not (self._stopping or self._ending):
            self._stopping = True
            self._task.cancel()

    async def _last_words(self, subscription: Subscription, send: Send) -> None:
        """Send what is already there; then end, saying why unless the run has ended too."""
        self._ending = True
        try:
            while batch := await subscription.next_batch(timeout=0):
                await send(_body(b"".join([event.sse for event in batch])))
        except SubscriberLagged:
            batch = []
        if batch is not None:  # the run goes on without this stream
            await send(_body(shutdown_frame(self.run_id)))
        await _end(send)

    async def _pump(self, subscription: Subscription, send: Send) -> None:
        while True:
            try:
                batch = await subscription.next_batch(self.keepalive)
            except SubscriberLagged as lagged:
                self._ending = True
                await send(_body(overflow_frame(self.run_id, lagged.last_seq)))
                break
            if batch is None:
                break
            if not batch:
                body = KEEPALIVE
            elif len(batch) == 1:
                body = batch[0].sse
            else:
                body = b"".join([event.sse for event in batch])
            await send(_body(body))
        self._ending = True  # from here on the stream ends by itself
        await _end(send)


def _body(data: bytes) -> dict[str, object]:
    return {"type": "http.response.body", "body": data, "more_body": True}


async def _end(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _watch_disconnect(
    receive: Receive, stream: asyncio.Task[object], disconnected: asyncio.Event
) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()
    stream.cancel()
