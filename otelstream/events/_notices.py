"""Control notices: the messages that end a stream early, built here and read by the client.

A notice is sent without an SSE `id:`, so a browser's `Last-Event-ID` stays that
of the last real event and a reconnect resumes right after it. Every notice is a
JSON object with `type`, `run_id`, `last_seq` (the last event this stream sent,
resume after it), `reason` and a `message` for people. This module imports
nothing of the server side, so the client can share its definitions; the wire codec
(`otelstream.events._wire`) writes them.
"""

from __future__ import annotations

from typing import Final

STREAM_OVERFLOW: Final = "stream_overflow"
"""The stream's position fell out of the run's replay buffer (reason `evicted`)."""
SEND_TIMEOUT: Final = "send_timeout"
"""The client did not accept a write within `OTELSTREAM_SEND_TIMEOUT_SECONDS`."""
SERVER_SHUTDOWN: Final = "server_shutdown"
"""The server is shutting down."""
EVENTS_LOST: Final = "events_lost"
"""The hub could not deliver some of the run's events (Redis down, or an event not stored)."""

NOTICE_TYPES: Final = frozenset({STREAM_OVERFLOW, SEND_TIMEOUT, SERVER_SHUTDOWN, EVENTS_LOST})
"""The types a client treats as "this stream ended early: reconnect with Last-Event-ID"."""

MESSAGES: Final = {
    STREAM_OVERFLOW: "this stream fell out of the run's replay buffer; "
    "reconnect with Last-Event-ID to resume from what is kept",
    SEND_TIMEOUT: "the client did not read the stream in time; reconnect with Last-Event-ID",
    SERVER_SHUTDOWN: "the server is shutting down; reconnect with Last-Event-ID to resume",
    EVENTS_LOST: "events of this run were lost",
}


__all__ = [
    "EVENTS_LOST",
    "MESSAGES",
    "NOTICE_TYPES",
    "SEND_TIMEOUT",
    "SERVER_SHUTDOWN",
    "STREAM_OVERFLOW",
]
