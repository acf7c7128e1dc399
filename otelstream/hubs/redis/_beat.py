"""The renewal script (`BEAT`) of `_owners.py`: one atomic call in the `{runs}` slot that renews
a worker's lease, tells it which of its runs another worker took, and claims lost runs.

Its keys, beside the registry's (`_registry.py`), all in the `{runs}` slot:

- `workers` (lease by worker), `owners` (owner by run), `active`, `finished`: see `_owners.py`;
- `robbed`, a sorted set: workers whose runs another claimed, since when; their next renewal
  looks at their own runs (so a renewal costs O(1) otherwise, not a look-up a run);
- `claimed`, a set: runs claimed (their owner is `!worker`) whose end is not retired yet. Every
  renewal reads it (SCARD first: nothing more when it is empty) and names a claimer's own
  claims back to it, so a claim whose reply was lost (the connection timed out during a pause
  while Redis did run the script, or ran it when resumed) is still ended, by its claimer, or
  by anyone once the claimer's lease lapses too. A retired run (no owner) leaves the set;
- `heard`, Redis's time (ms) of the last renewal of any worker. When Redis heard none for
  longer than the renewing worker's own lease span, it was Redis that was away (stopped,
  paused, its host frozen), or every worker at once: that time counts against nobody's lease,
  every lease is pushed back by it, and a worker that renews within a lease of Redis's return
  keeps its runs. A worker silent while others renewed lapses as before.
"""

from __future__ import annotations

from typing import Final

# KEYS: workers, owners, active, finished, robbed, claimed, heard. ARGV: this worker, its lease
# + interval (ms), a run id to look at alone ('' for none), how long a claim is remembered (ms),
# '1' to look at each of its runs (its last renewal failed: its reply, saying runs were taken,
# may be the one lost), the number N of runs this worker thinks it owns, those N. Claims runs
# whose owner lapsed: the run given, or every running run but only when some worker has lapsed
# (cheap when none has: no scan; a lapsed worker is forgotten once its runs are all claimed),
# and the claimed runs not retired yet. Returns {taken, claimed}, claimed as pairs (run id, the
# worker it was claimed from; '' for a claim of this worker's own, made before).
BEAT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local span = tonumber(ARGV[2])
local heard = tonumber(redis.call('GET', KEYS[7]) or now)
if now - heard > span then  -- Redis heard nobody for a lease: the time is nobody's fault
  local leases = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #leases, 2 do
    redis.call('ZADD', KEYS[1], tonumber(leases[i + 1]) + now - heard, leases[i])
  end
end
redis.call('SET', KEYS[7], now)
redis.call('ZADD', KEYS[1], now + span, ARGV[1])
local mine, count = '!' .. ARGV[1], tonumber(ARGV[6])
local taken, claimed, runs, seen = {}, {}, {}, {}
if redis.call('ZREM', KEYS[5], ARGV[1]) == 1 or ARGV[5] == '1' then
  for i = 7, 6 + count do
    local owner = redis.call('HGET', KEYS[2], ARGV[i])
    if owner then
      if owner ~= ARGV[1] then table.insert(taken, ARGV[i]) end
    elseif redis.call('ZSCORE', KEYS[4], ARGV[i]) then  -- ended and retired by another
      table.insert(taken, ARGV[i])
    end
  end
end
local lapsed = {}
if ARGV[3] ~= '' then
  table.insert(runs, ARGV[3])
else
  lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
  if #lapsed > 0 then
    for _, run in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do table.insert(runs, run) end
  end
end
if redis.call('SCARD', KEYS[6]) > 0 then
  for _, run in ipairs(redis.call('SMEMBERS', KEYS[6])) do table.insert(runs, run) end
end
for _, run in ipairs(runs) do
  local owner = redis.call('HGET', KEYS[2], run)
  if seen[run] then
    owner = nil
  elseif not owner then
    redis.call('SREM', KEYS[6], run)  -- retired: its end is stored
  end
  seen[run] = true
  if owner == mine then
    table.insert(claimed, run)
    table.insert(claimed, '')
  elseif owner and owner ~= ARGV[1] then
    local worker = owner
    if string.sub(owner, 1, 1) == '!' then worker = string.sub(owner, 2) end
    local lease = redis.call('ZSCORE', KEYS[1], worker)
    if not lease or tonumber(lease) < now then
      redis.call('HSET', KEYS[2], run, mine)
      redis.call('SADD', KEYS[6], run)  -- named to its claimer until it retires
      redis.call('ZADD', KEYS[5], now, worker)  -- its next renewal looks at its runs
      table.insert(claimed, run)
      table.insert(claimed, worker)
    end
  end
end
for _, worker in ipairs(lapsed) do redis.call('ZREM', KEYS[1], worker) end
if #lapsed > 0 then  -- a worker back after its runs' keys expired has nothing to learn
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now - tonumber(ARGV[4])))
end
return {taken, claimed}
"""

__all__ = ["BEAT"]
