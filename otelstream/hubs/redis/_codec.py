"""How RedisHub keeps a run in Redis: key names, Lua scripts, events to stream entries and back.

A run is two keys in one hash slot (`{run_id}` is a Redis Cluster hash tag):

- `PREFIX:{run_id}:events`, a stream whose entry `SEQ-0` holds the event with
  that seq: `e` its public JSON (seq included), `t` its time in ns, `d` its
  duration in ns (the JSON rounds both);
- `PREFIX:{run_id}:meta`, a hash: `seq` (the last seq given), `start` and
  `start_t` (the `pipeline_started` entry, for a run whose stream was trimmed),
  `done` and `status` (the seq of `pipeline_completed` and the run's end: what
  `position` reads, O(1)), `end`, `end_t`, `end_d` (that event, until it is in the
  stream), `lost` and `marks` (events that never reached Redis, see below),
  `cancel`, `refused` (see `_registry.py`).

State before notice: a run's end is written in three steps, so that no reader of any
process is given `pipeline_completed` while a read of the run could still say running.
PUBLISH stores it in the hash (`done`, `status`, `end`: `position` and `get_run` read it
there), the registry's RETIRE then records it in the runs list and the runs stream (another
slot), and only then REVEAL adds it to the run's stream, where readers take it. A worker that
dies between the steps leaves `end` in the hash: the worker that ends its runs finds it there.

The entry's `e` is what a stream sends: a reader frames it (`_wire.frame`) without
parsing or serialising it again.

Entry ids with a non-zero second part (`SEQ-N`) are *loss markers*: written by
a publisher that failed to store some of the run's events, they sit between
`SEQ` and `SEQ + 1` and carry no seq of their own, so seqs stay 1..N.
"""

from __future__ import annotations

from typing import Final

from otelstream.events import PIPELINE_COMPLETED, DataEvent, Event, _wire

_SEQ_FIELD = '"seq":0,'

# KEYS: stream, meta. ARGV: maxlen, TTL in ms while running, TTL in ms once finished, "1" if
# this publisher has stored an event of the run before (so a missing run means it expired or
# Redis lost it); then three per event, in order: "type time_ns duration_ns status" ("-" for
# none), its JSON before the seq, after it. One call per run and batch: few arguments to pack
# per event, one reply per run. Returns per event the seq given, 0 for an event after the
# run's end, -1 for a vanished run.
PUBLISH: Final = """
local done = redis.call('HEXISTS', KEYS[2], 'done') == 1
local vanished = ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 0
local ttl, written, results = ARGV[2], false, {}
for i = 5, #ARGV, 3 do
  local result = 0
  if vanished then
    result = -1
  elseif not done then
    local kind, t, d, status = string.match(ARGV[i], '^(%S+) (%S+) (%S+) (%S+)$')
    local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
    local data = ARGV[i + 1] .. seq .. ARGV[i + 2]
    if kind == 'pipeline_completed' then
      -- kept in the hash until the runs list has it (REVEAL adds it to the stream)
    elseif d == '-' then
      redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], seq .. '-0', 'e', data, 't', t)
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], seq .. '-0', 'e', data, 't', t, 'd', d)
    end
    if kind == 'pipeline_started' then
      redis.call('HSET', KEYS[2], 'start', data, 'start_t', t)
    elseif kind == 'pipeline_completed' then
      redis.call('HSET', KEYS[2], 'done', seq, 'status', status, 'end', data, 'end_t', t)
      if d ~= '-' then redis.call('HSET', KEYS[2], 'end_d', d) end
      done, ttl = true, ARGV[3]
    end
    result, written = seq, true
  end
  results[#results + 1] = result
end
if written then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return results
"""

# KEYS: stream, meta. ARGV: maxlen. The run's end, stored by PUBLISH and now in the runs list,
# goes into its stream, where readers take it; 0 when it is there already (or unknown).
REVEAL: Final = """
local found = redis.call('HMGET', KEYS[2], 'end', 'end_t', 'end_d', 'done')
if not found[1] then return 0 end
local id = found[4] .. '-0'
if found[3] then
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], id, 'e', found[1], 't', found[2], 'd', found[3])
else
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], id, 'e', found[1], 't', found[2])
end
redis.call('HDEL', KEYS[2], 'end', 'end_t', 'end_d')
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

# KEYS: stream, meta. ARGV: events lost, maxlen. Adds a loss marker after the run's last seq
# in its stream (before an end not yet revealed, which takes the seq after it).
MARK_LOST: Final = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if redis.call('HEXISTS', KEYS[2], 'end') == 1 then seq = seq - 1 end
local mark = redis.call('HINCRBY', KEYS[2], 'marks', 1)
redis.call('HINCRBY', KEYS[2], 'lost', ARGV[1])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], seq .. '-' .. mark, 'lost', ARGV[1])
return 1
"""


def stream_key(prefix: str, run_id: str) -> str:
    return f"{prefix}:{{{run_id}}}:events"


def meta_key(prefix: str, run_id: str) -> str:
    return f"{prefix}:{{{run_id}}}:meta"


def run_of(key: str) -> str:
    """The run id in a key made by `stream_key`."""
    return key[key.index("{") + 1 : key.index("}")]


def encode(event: Event) -> tuple[bytes, bytes, bytes]:
    """(what the script needs to know, JSON before the seq, after it): it splices in the seq.

    Keys before `seq` are fixed names and a JSON string cannot hold an
    unescaped quote, so the first `"seq":0,` is the field itself. The codec
    writes the JSON, so the entry holds the very bytes the memory hub sends.
    """
    if event.seq == 0:  # as published: the seq is 0 already
        text = event.to_json()
    else:
        data = event.to_dict()
        data["seq"] = 0
        text = _wire.to_json(data)
    head, tail = text.split(_SEQ_FIELD, 1)
    duration = "-" if event.duration_ns is None else event.duration_ns
    status = (event.status or "success") if event.type == PIPELINE_COMPLETED else "-"
    info = f"{event.type} {event.time_ns} {duration} {status}".encode()
    return info, _wire.utf8(head + '"seq":'), _wire.utf8("," + tail)


def unrevealed_end(meta: dict[str, str]) -> Event | None:
    """The run's end as PUBLISH stored it in the run's hash, until REVEAL moves it."""
    if "end" not in meta:
        return None
    fields = {"e": meta["end"], "t": meta["end_t"]}
    if "end_d" in meta:
        fields["d"] = meta["end_d"]
    return decode(fields)


def decode(fields: dict[str, str]) -> Event:
    """The event of one stream entry, as the publishing process built it (its time and
    duration to the nanosecond, from the entry's own fields)."""
    data = _wire.parse(fields["e"])
    read = _wire.event_fields(data)
    read["time_ns"] = int(fields["t"])
    duration = fields.get("d")
    read["duration_ns"] = None if duration is None else int(duration)
    extra = {key: value for key, value in data.items() if key not in _wire.BASE_FIELDS}
    if extra:  # task_log, task_progress, logs_dropped: fields of their own
        return DataEvent(
            read["type"],
            read["name"],
            read["run_id"],
            read["span_id"],
            read["time_ns"],
            extra,
            attributes=read["attributes"],
            seq=read["seq"],
            service=read["service"],
            expected_ns=read["expected_ns"],
            expected_p90_ns=read["expected_p90_ns"],
        )
    return Event(**read)


def marker_seq(entry_id: str | bytes) -> int | None:
    """The seq a loss marker follows, or None for an ordinary event entry (`SEQ-0`)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    major, _, minor = text.partition("-")
    return None if minor in ("", "0") else int(major)
