"""What a feed keeps besides `Event`s, and events read back from their frames.

A feed entry is anything with a `seq` and its SSE frame (`sse`). The Redis hub
feeds `Frame`s straight from a stream entry's JSON, so nothing is serialised
twice, and a finished run keeps its events as `Frame`s. Tests that read events
(`otelstream.testing.next_batch`) get `Event`s back (`ReadEvent`: exactly what went on the
wire) and notices as `Notice`. Every byte is written and parsed by the wire codec
(`otelstream.events._wire`).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, Protocol

from otelstream.events import Event, _wire
from otelstream.events._notices import NOTICE_TYPES


class Entry(Protocol):
    """What a feed keeps: an `Event`, or a `Frame` already in wire form."""

    seq: int

    @property
    def sse(self) -> bytes: ...


class Frame:
    """An event in wire form only (read from Redis, or a finished run's): its seq and frame."""

    __slots__ = ("seq", "sse")

    def __init__(self, seq: int, sse: bytes) -> None:
        self.seq = seq
        self.sse = sse


class SharedChunk(Frame):
    """The frames after seq `after` up to `seq`, joined by the first reader at that cursor for
    the others woken with it: one chunk a feed (at most a write's bytes), kept for one turn of
    that reader's event loop (`Feed.share`), or less when the run is sealed."""

    __slots__ = ("after",)

    def __init__(self, after: int, seq: int, sse: bytes) -> None:
        super().__init__(seq, sse)
        self.after = after


class SealedFrames:
    """A finished run's frames as one bytes object and where each ends: about 8 bytes an
    event besides its frame, and a late reader's chunk is a slice of it, not a join."""

    __slots__ = ("blob", "ends", "last_seq")

    def __init__(self, entries: Iterable[Entry], last_seq: int) -> None:
        parts: list[bytes] = []
        self.ends = array("Q")
        total = 0
        for entry in entries:
            sse = entry.sse
            parts.append(sse)
            total += len(sse)
            self.ends.append(total)
        self.blob = b"".join(parts)
        self.last_seq = last_seq

    def __len__(self) -> int:
        return len(self.ends)

    def nbytes(self) -> int:
        return sys.getsizeof(self.blob) + sys.getsizeof(self.ends)

    def last(self, count: int, chunk_bytes: int | None = None) -> list[Entry]:
        """The newest `count` events as entries: one each, or (`chunk_bytes`) as few entries
        of about that size as hold them, each with the seq of its last event."""
        ends, blob = self.ends, self.blob
        index = len(ends) - count  # of the first event wanted
        start = ends[index - 1] if index else 0
        seq = self.last_seq - count  # the seq before the first
        entries: list[Entry] = []
        while index < len(ends):
            if chunk_bytes is None:
                upto = index
            else:  # the last event ending within the chunk's bytes; at least one
                upto = max(bisect_right(ends, start + chunk_bytes, index) - 1, index)
            end = ends[upto]
            seq += upto - index + 1
            entries.append(Frame(seq, blob[start:end]))
            index, start = upto + 1, end
        return entries


class Notice(Event):
    """A control notice handed out as an event (`otelstream.testing.next_batch`); framed
    without an SSE id."""

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
        data = self.data
        return _wire.notice_frame(
            self.type,
            self.run_id,
            self.seq,
            reason=str(data.get("reason") or self.type),
            message=str(data["message"]),
        )


class ReadEvent(Event):
    """An event read back from its frame: `to_dict` and `sse` give what went on the wire."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any], sse: bytes) -> None:
        super().__init__(**_wire.event_fields(data))
        self.data = data
        self._sse = sse

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


def decode_frame(entry: Entry) -> Event:
    """The event of a wire-form entry (for readers of events, as tests are)."""
    sse = entry.sse
    return ReadEvent(_wire.parse_frame(sse), sse)


def decode_chunk(chunk: bytes) -> list[Event]:
    """The events (and notices, as `Notice`) of frames joined in one chunk (`next_frames`)."""
    events: list[Event] = []
    for part in chunk.split(b"\n\n")[:-1]:  # JSON escapes newlines: only frames end so
        sse = part + b"\n\n"
        data = _wire.parse_frame(sse)
        events.append(Notice(data) if data.get("type") in NOTICE_TYPES else ReadEvent(data, sse))
    return events


__all__ = ["Entry", "Frame", "Notice", "ReadEvent", "SharedChunk", "decode_chunk", "decode_frame"]
