"""A test-only ASGI wrapper that watches an app's event streams and can cut them.

It records every `GET /runs/{id}/events` (with its `Last-Event-ID`), adds
`retry: 250` to each stream so a browser reconnects in a quarter second instead
of three (a reconnect loop shows within a test's few seconds), and can be armed
to end the next stream after N events, as a proxy or a network would, leaving
the client to resume. `/test/...` drives and reads it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_EVENTS = re.compile(r"/runs/([0-9a-f]{32})/events$")
RETRY = b"retry: 250\n\n"


class StreamWatch:
    """See the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []
        self.cut_after: int | None = None
        self.replay_all = False
        self.control = FastAPI()
        self._routes()

    def _routes(self) -> None:
        @self.control.post("/test/arm-cut")
        async def arm_cut(after: int, replay_all: bool = False) -> None:
            """End the next events stream after `after` events; with `replay_all`, resumed
            streams ignore Last-Event-ID and start over, so the page must drop repeats."""
            self.cut_after = after
            self.replay_all = replay_all

        @self.control.get("/test/events-requests")
        async def events_requests(run_id: str) -> list[dict[str, Any]]:
            return [r for r in self.requests if r["run_id"] == run_id]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/test/"):
            await self.control(scope, receive, send)
            return
        match = _EVENTS.search(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        last_event_id = headers.get(b"last-event-id")
        record: dict[str, Any] = {
            "run_id": match.group(1),
            "last_event_id": None if last_event_id is None else last_event_id.decode(),
            "query": scope["query_string"].decode(),
            "status": None,
        }
        self.requests.append(record)
        if self.replay_all and last_event_id is not None:
            scope = dict(scope, headers=[h for h in scope["headers"] if h[0] != b"last-event-id"])
        cut_after, self.cut_after = self.cut_after, None
        await _Stream(record, cut_after).run(self.app, scope, receive, send)


class _Stream:
    """One events response: adds the retry field, counts events, ends the response when told."""

    def __init__(self, record: dict[str, Any], cut_after: int | None) -> None:
        self.record = record
        self.left = cut_after
        self.cut = asyncio.Event()
        self.first_body = True

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_or_cut() -> Message:
            if self.cut.is_set():
                return {"type": "http.disconnect"}
            received = asyncio.ensure_future(receive())
            cut = asyncio.ensure_future(self.cut.wait())
            try:
                await asyncio.wait({received, cut}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # the app stopped listening (its stream ended): leave no task
                received.cancel()
                raise
            finally:
                # a task left waiting is collected later as "Task was destroyed but it is
                # pending!", logged on whichever thread collects it: into a run's task_log
                cut.cancel()
            if received.done():
                return received.result()
            received.cancel()
            return {"type": "http.disconnect"}  # the app must let go of the stream it lost

        async def watched_send(message: Message) -> None:
            if self.cut.is_set():
                return  # the response is over for the client; the app has yet to notice
            if message["type"] == "http.response.start":
                self.record["status"] = message["status"]
                await send(message)
                return
            body: bytes = message.get("body", b"")
            if self.first_body and self.record["status"] == 200:
                self.first_body = False
                body = RETRY + body
            if self.left is not None and body:
                frames = body.split(b"\n\n")
                kept: list[bytes] = []
                for frame in frames[:-1]:
                    if self.left == 0:
                        break
                    kept.append(frame + b"\n\n")
                    if frame.startswith(b"id: ") or b"\nid: " in frame:
                        self.left -= 1
                if self.left == 0:
                    await send(
                        {"type": "http.response.body", "body": b"".join(kept), "more_body": True}
                    )
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    self.cut.set()
                    return
            await send({**message, "body": body})

        await app(scope, receive_or_cut, watched_send)
