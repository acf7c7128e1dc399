"""Entries in wire form: what a feed keeps besides `Event`s, and events read back from frames.

A feed entry is anything with a `seq` and its SSE frame (`sse`). The Redis hub
feeds `Frame`s straight from a stream entry's JSON, so nothing is serialised
twice; a finished run keeps bare frames. `next_batch` readers get `Event`s
back (`WireEvent`: exactly what went on the wire) and notices as `Notice`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from otelstream._notices import notice_frame
from otelstream.events import Event


class Entry(Protocol):
    """What a feed keeps: an `Event`, or a `Frame` already in wire form."""

    seq: int

    @property
    def sse(self) -> bytes: ...


class Frame:
    """An event in wire form only (as read from Redis): nothing is serialised again."""

    __slots__ = ("seq", "sse")

    def __init__(self, seq: int, sse: bytes) -> None:
        self.seq = seq
        self.sse = sse


class Notice(Event):
    """A control notice handed out by `next_batch`; framed without an SSE id."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        last_seq = data["last_seq"]
        super().__init__(str(data["type"]), "", str(data["run_id"]), 0, None, 0)
        self.seq = last_seq if isinstance(last_seq, int) else 0
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    @property
    def sse(self) -> bytes:
        return notice_frame(self.type, self.run_id, self.seq, message=str(self.data["message"]))


class WireEvent(Event):
    """An event read back from its frame: `to_dict` and `sse` give what went on the wire."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any], frame: bytes) -> None:
        parent = data.get("parent_span_id")
        moment = datetime.fromisoformat(str(data.get("timestamp", "1970-01-01T00:00:00Z")))
        duration = data.get("duration_ms")
        super().__init__(
            data["type"],
            data.get("name", ""),
            data["run_id"],
            int(data.get("span_id") or "0", 16),
            None if parent is None else int(parent, 16),
            int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000,
            duration_ns=None if duration is None else round(duration * 1e6),
            status=data.get("status"),
            error=data.get("error"),
            error_type=data.get("error_type"),
            attributes=data.get("attributes"),
            seq=int(data.get("seq", 0)),
        )
        self.data = data
        self._sse = frame

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


def decode_frame(entry: Entry | bytes) -> Event:
    """The event of a frame (for `next_batch` readers of wire-form entries)."""
    frame = entry if isinstance(entry, bytes) else entry.sse
    line = next(line for line in frame.split(b"\n") if line.startswith(b"data: "))
    return WireEvent(json.loads(line[6:]), frame)


__all__ = ["Entry", "Frame", "Notice", "WireEvent", "decode_frame"]
