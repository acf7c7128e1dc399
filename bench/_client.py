"""The benchmarks' SSE client: raw sockets on one `selectors` loop, every message checked.

No HTTP or SSE library sits between the bytes and the figures, and the client
is the harness's own process, so the server's CPU (read from /proc) is the
server's alone. Every `data:` is parsed as JSON and its `seq` must equal the
SSE `id`; ids must run without a gap from where the stream was opened to the
run's last event, and the stream must end when the server closes it. Bytes,
reads (`recv` calls that returned data) and events are counted per stream.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench._common import BenchError, connect

OnEvent = Callable[["Stream", dict[str, Any], int], None]
"""Called for every event with its stream, its JSON and the `monotonic_ns` of its `recv`."""


def request(path: str, headers: Mapping[str, str] | None = None) -> bytes:
    """`GET path` with `Connection: close`, so that the end of a stream is the end of the socket."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Stream:
    sock: socket.socket
    last: int  # the id the stream must end with (0: not checked)
    next_id: int = 1
    pending: bytes = b""
    head: bool = False  # status line and headers read
    status: int = 0
    closed: bool = False
    bytes: int = 0
    reads: int = 0
    events: int = 0
    event_bytes: int = 0  # the SSE messages of the events themselves
    notices: list[str] = field(default_factory=list)  # control messages (no id), by type
    opened_ns: int = 0
    first_byte_ns: int = 0  # the first recv that returned data
    first_event_ns: int = 0


class Client:
    """Many SSE streams on one selector; messages are parsed and checked as the bytes arrive."""

    def __init__(self, port: int, on_event: OnEvent | None = None) -> None:
        self.port = port
        self.on_event = on_event
        self.selector = selectors.DefaultSelector()
        self.streams: list[Stream] = []
        self.counting = True
        self.counted = 0  # events read while `counting`
        self.counted_bytes = 0

    def open(
        self, path: str, last: int = 0, after: int = 0, headers: Mapping[str, str] | None = None
    ) -> Stream:
        opened = time.monotonic_ns()
        sock = connect(self.port, request(path, headers))
        sock.setblocking(False)
        stream = Stream(sock, last, next_id=after + 1, opened_ns=opened)
        self.streams.append(stream)
        self.selector.register(sock, selectors.EVENT_READ, stream)
        return stream

    def pump(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
            for key, _ in self.selector.select(timeout=0.05):
                self._read(key.data)

    def poll(self) -> None:
        """Read whatever is ready now, without waiting."""
        for key, _ in self.selector.select(timeout=0):
            self._read(key.data)

    def all_closed(self) -> bool:
        return all(stream.closed for stream in self.streams)

    def all_heads(self) -> bool:
        return all(stream.head or stream.closed for stream in self.streams)

    def _read(self, stream: Stream) -> None:
        try:
            data = stream.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = b""
        now = time.monotonic_ns()
        if not data:
            self._close(stream)
            if stream.status == 200 and stream.last and stream.next_id != stream.last + 1:
                raise BenchError(f"a stream ended after id {stream.next_id - 1} of {stream.last}")
            return
        stream.reads += 1
        stream.bytes += len(data)
        stream.first_byte_ns = stream.first_byte_ns or now
        if self.counting:
            self.counted_bytes += len(data)
        buffer = (stream.pending + data).replace(b"\r\n", b"\n")
        if not stream.head:
            head_end = buffer.find(b"\n\n")
            if head_end < 0:
                stream.pending = buffer
                return
            stream.status = int(buffer.split(b" ", 2)[1])
            stream.head = True
            buffer = buffer[head_end + 2 :]
            if stream.status != 200:
                stream.pending = b""
                return
        end = buffer.rfind(b"\n\n")
        if end < 0:  # no complete message yet: all of it waits for the next read
            stream.pending = buffer
            return
        stream.pending = buffer[end + 2 :]
        for message in buffer[:end].split(b"\n\n"):
            self._message(stream, message, now)

    def _message(self, stream: Stream, message: bytes, now: int) -> None:
        event_id = data = None
        for line in message.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].removeprefix(b" ")
            elif line.startswith(b"id:"):
                event_id = int(line[3:])
        if data is None:
            return  # a comment (keep-alive) or an empty message
        event = json.loads(data)
        if event_id is None:
            stream.notices.append(str(event.get("type")))
            return
        if event_id != stream.next_id or event.get("seq") != event_id:
            raise BenchError(
                f"a stream expected id {stream.next_id} and got id {event_id}, seq "
                f"{event.get('seq')}"
            )
        stream.next_id += 1
        stream.events += 1
        stream.event_bytes += len(message) + 2
        stream.first_event_ns = stream.first_event_ns or now
        if self.counting:
            self.counted += 1
        if self.on_event is not None:
            self.on_event(stream, event, now)

    def _close(self, stream: Stream) -> None:
        self.selector.unregister(stream.sock)
        stream.sock.close()
        stream.closed = True

    def close(self) -> None:
        for stream in self.streams:
            if not stream.closed:
                self._close(stream)
        self.selector.close()


def main(argv: list[str]) -> int:
    """`python -m bench._client PORT`: a reader in a process of its own (part 1's subscriber,
    whose CPU is not the measured process's). Reads `PATH LAST_ID` lines from stdin, reads each
    stream to its end, checked, and answers with a line: the events it read."""
    import sys

    port = int(argv[0])
    for line in sys.stdin:
        path, last = line.split()
        client = Client(port)
        try:
            stream = client.open(path, last=int(last))
            client.pump(client.all_closed, 120, path)
        finally:
            client.close()
        print(stream.events, flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
