"""RateLimit counters in Redis, shared by every Mixer process configured with the same store
(``mixer --quota-store redis://host:port/db``): several Mixers on one port (SO_REUSEPORT) or behind one Service
then count each RateLimit once, exactly as one Mixer would.

The algorithm is the in-memory store's (``mixer.rate_limit``, Istio Mixer's memquota fixed window), run atomically
in Redis by one Lua script per request: a key's counter is created at its first request with the window as its
expiry; a request that would exceed the limit is not counted and gets the milliseconds left of the window (the
``retry-after``). Counter keys are ``<prefix><policy namespace/name>|<content hash>|<bucket>``, so a config reload
that leaves a RateLimit's spec unchanged keeps its counters, as in memory, and a changed spec starts fresh; Redis
expires them with their windows.

When Redis cannot be reached or answers an error, the check is denied (an evaluation error, 403, logged): a
RateLimit is never weaker than written.
"""

from __future__ import annotations

from mixer.redis_client import RedisClient, RedisError

__all__ = ["QUOTA_SCRIPT", "SharedQuota"]

# KEYS[1]: the bucket's counter; ARGV[1]: the limit; ARGV[2]: the window in milliseconds.
# Returns 0 when the request is counted, else the milliseconds until the window ends (at least 1).
QUOTA_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  local left = redis.call('PTTL', KEYS[1])
  if left < 1 then
    left = 1
  end
  return left
end
return 0
"""

DEFAULT_PREFIX = "meshplane:quota:"
_ABSENT = "\x00absent"  # the bucket of requests without a key value (never a value: CEL strings carry no NUL here)


class SharedQuota:
    """``take`` one request of a RateLimit's bucket in Redis."""

    def __init__(self, client: RedisClient, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._sha: str | None = None

    async def take(self, identity: str, bucket: str | None, limit: int, per: float) -> float | None:
        """Count one request of ``bucket`` (None: the bucket without a value) of the RateLimit ``identity``: None
        when it is within ``limit`` per ``per`` seconds, else the seconds until its window ends. RedisError when
        Redis cannot answer."""
        key = f"{self.prefix}{identity}|{_ABSENT if bucket is None else 'v:' + bucket}"
        window_ms = max(1, round(per * 1000))
        left = await self._run(key, limit, window_ms)
        return None if left == 0 else left / 1000.0

    async def _run(self, key: str, limit: int, window_ms: int) -> int:
        if self._sha is None:
            loaded = await self.client.call("SCRIPT", "LOAD", QUOTA_SCRIPT)
            self._sha = loaded.decode() if isinstance(loaded, bytes) else str(loaded)
        try:
            reply = await self.client.call("EVALSHA", self._sha, 1, key, limit, window_ms)
        except RedisError as exc:
            if not str(exc).startswith("NOSCRIPT"):  # a restarted Redis forgot the script: load it again
                raise
            self._sha = None
            return await self._run(key, limit, window_ms)
        if not isinstance(reply, int):
            raise RedisError(f"the quota script answered {reply!r}, expected an integer")
        return reply

    async def close(self) -> None:
        await self.client.close()
