"""RedisHub: each run is a Redis stream, so several processes publish into and stream one run.

    hub = RedisHub("redis://127.0.0.1:6379/0")      # needs the `redis` extra
    provider.add_span_processor(EventStreamProcessor(hub))

One concept a module: `_loop.py` the I/O thread and whether Redis answers,
`_buffer.py` the bounded buffer, `_writer.py` its batches to Redis, `_run_end.py` what a
run's end records once stored, `_markers.py` the markers of lost events, `_owners.py` the
workers' leases and the runs of lost ones (`_beat.py` its renewal script), `_reader.py` what
feeds the shared fan-out engine, `_reads.py` a run read back for a reader of it,
`_registry.py` what every process knows of all runs (bounds, the runs list, cancel requests),
`_codec.py` the keys and scripts of one run, `_hub.py` the hub itself.
"""

from __future__ import annotations

from otelstream.hubs.redis._hub import RedisHub, RedisSubscription

__all__ = ["RedisHub", "RedisSubscription"]
