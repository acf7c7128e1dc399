"""Which spans of a batch are new for a run, decided once for every worker sharing the Redis.

An exporter that retries a batch may reach another worker than the first time: a set per run,
in the run's own hash slot (so one script call holds on Cluster), remembers the spans taken.
"""

from __future__ import annotations

from typing import Any, Final

from otelstream.hubs.redis._codec import meta_key

FIRST_SEEN: Final = """
local fresh = {}
if redis.call('EXISTS', KEYS[2]) == 0 then
  for i = 3, #ARGV do fresh[#fresh + 1] = ARGV[i] end
  return fresh
end
local limit = tonumber(ARGV[1])
local ttl = redis.call('PTTL', KEYS[2])
if ttl < 1 then ttl = tonumber(ARGV[2]) end
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then
    if redis.call('SCARD', KEYS[1]) >= limit then redis.call('SPOP', KEYS[1]) end
    redis.call('SADD', KEYS[1], ARGV[i])
    fresh[#fresh + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return fresh
"""
"""KEYS: the run's seen set, its hash; ARGV: the bound, the running TTL (ms), the keys.

A run the hub does not know has nothing to remember against: every key is new (as on the
memory hub). The set expires with the run's hash (its TTL, taken again at each call); past
`limit` keys a random one is let go of."""


def seen_key(prefix: str, run_id: str) -> str:
    return f"{prefix}:{{{run_id}}}:seen"


async def first_seen(
    client: Any, prefix: str, run_id: str, keys: list[str], limit: int, ttl_ms: int
) -> set[str]:
    """The keys not taken before for the run, now taken: one script call."""
    if not keys:
        return set()
    args = [str(limit), str(ttl_ms), *keys]
    seen, meta = seen_key(prefix, run_id), meta_key(prefix, run_id)
    fresh = await client.eval(FIRST_SEEN, 2, seen, meta, *args)
    return {key.decode() if isinstance(key, bytes) else str(key) for key in fresh}


__all__ = ["FIRST_SEEN", "first_seen", "seen_key"]
