"""The hot window: each session's newest messages in Redis.

Layout (every key of a tenant carries the hash tag {T}, so each script touches one slot):

    deja:{T}:s:<key>:m       LIST  "<seq>:<message json>", oldest first
    deja:{T}:s:<key>:h       HASH  sid, created, updated (last append, ms), last (last seq handed out)
    deja:{T}:s:<key>:lock    lease serialising the session's archive writes across store processes
    deja:{T}:sessions        ZSET  <key> -> last append (ms): the idle sweep's worklist
    deja:{sessions}:tenants  SET   tenants that have had hot sessions (the sweep walks it; never shrinks)

An append is one Lua script: sequence numbers come from HINCRBY on the session's hash, so
concurrent appends get distinct, consecutive numbers and nothing is lost or doubled. Messages
leave the list only through `release`, which pops exactly those at or below the archive's
last seq: a crash between an archive write and its release leaves copies in both places,
which readers drop by seq and the next release removes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from deja.redis_client import AnyRedis
from services.store.sessions.records import Message, Ref

TENANTS = "deja:{sessions}:tenants"

# KEYS: list, meta, sessions; ARGV: now_ms, ttl_ms, key, session_id, seed_last, seed_created, payload...
# Without a hash (a new session, or one that went to the archive) it returns {-1} unless seeded.
_APPEND = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[5] == '' then return {-1, 0, 0} end
  redis.call('HSET', KEYS[2], 'sid', ARGV[4], 'created', ARGV[6], 'last', ARGV[5])
end
local n = #ARGV - 6
local last = redis.call('HINCRBY', KEYS[2], 'last', n)
for i = 1, n do
  redis.call('RPUSH', KEYS[1], (last - n + i) .. ':' .. ARGV[6 + i])
end
redis.call('HSET', KEYS[2], 'updated', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return {last - n + 1, last, redis.call('LLEN', KEYS[1])}
"""

# KEYS: list, meta, sessions; ARGV: archived_last, key, drop ('1': forget the session once its list is empty)
_RELEASE = """
local popped = 0
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  if tonumber(string.match(head, '^(%d+):')) > tonumber(ARGV[1]) then break end
  redis.call('LPOP', KEYS[1])
  popped = popped + 1
end
local left = redis.call('LLEN', KEYS[1])
if left == 0 and ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
return {popped, left}
"""

# KEYS: list, meta, sessions; ARGV: key
_DELETE = """
local existed = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return existed
"""

# KEYS: lock; ARGV: token
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Appended:
    first_seq: int
    last_seq: int
    hot: int  # messages in the list after the append


@dataclass(frozen=True)
class Snapshot:
    """The hot part of a session at one instant (read in one MULTI)."""

    messages: list[Message]
    created_at_ms: int
    updated_at_ms: int
    last_seq: int

    @property
    def exists(self) -> bool:
        return self.last_seq > 0


class HotWindow:
    def __init__(self, client: AnyRedis, *, ttl_s: int) -> None:
        self.redis = client
        self.ttl_ms = ttl_s * 1000
        self._append = client.register_script(_APPEND)
        self._release = client.register_script(_RELEASE)
        self._delete = client.register_script(_DELETE)
        self._unlock = client.register_script(_UNLOCK)

    @staticmethod
    def _keys(ref: Ref) -> list[str]:
        base = f"deja:{{{ref.tenant}}}"
        return [f"{base}:s:{ref.key}:m", f"{base}:s:{ref.key}:h", f"{base}:sessions"]

    async def append(
        self, ref: Ref, messages: list[Message], now_ms: int, seed: tuple[int, int] | None = None
    ) -> Appended | None:
        """None: the session has no hot state; call again with `seed` = (last seq, created ms)."""
        seed_last, seed_created = (str(seed[0]), str(seed[1])) if seed else ("", "")
        args = [now_ms, self.ttl_ms, ref.key, ref.session_id, seed_last, seed_created]
        first, last, hot = await self._append(keys=self._keys(ref), args=[*args, *(m.payload() for m in messages)])
        if first < 0:
            return None
        return Appended(int(first), int(last), int(hot))

    async def register_tenant(self, tenant: str) -> None:
        await self.redis.sadd(TENANTS, tenant)

    async def snapshot(self, ref: Ref, newest: int = 0) -> Snapshot:
        """The whole hot list, or only its `newest` messages."""
        items, meta = self._keys(ref)[:2]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(items, -newest if newest else 0, -1)
            pipe.hmget(meta, "created", "updated", "last")
            raw, (created, updated, last) = await pipe.execute()
        messages = []
        for item in raw:
            seq, _, payload = item.partition(b":")
            messages.append(Message.from_payload(int(seq), payload))
        return Snapshot(messages, int(created or 0), int(updated or 0), int(last or 0))

    async def release(self, ref: Ref, archived_last: int, *, drop: bool) -> int:
        """Drop messages the archive now holds; with `drop`, forget the session if none is left.
        Returns how many messages stay hot."""
        _popped, left = await self._release(keys=self._keys(ref), args=[archived_last, ref.key, "1" if drop else "0"])
        return int(left)

    async def delete(self, ref: Ref) -> bool:
        return bool(await self._delete(keys=self._keys(ref), args=[ref.key]))

    async def tenants(self) -> AsyncIterator[str]:
        async for tenant in self.redis.sscan_iter(TENANTS, count=500):
            yield tenant.decode()

    async def idle(self, tenant: str, cutoff_ms: int, limit: int = 200) -> list[str]:
        """Keys of the tenant's hot sessions whose last append is at or before `cutoff_ms`."""
        keys = await self.redis.zrangebyscore(f"deja:{{{tenant}}}:sessions", "-inf", cutoff_ms, start=0, num=limit)
        return [k.decode() for k in keys]

    async def session_id(self, tenant: str, key: str) -> str | None:
        sid = await self.redis.hget(f"deja:{{{tenant}}}:s:{key}:h", "sid")
        return sid.decode() if sid is not None else None

    async def forget(self, tenant: str, key: str) -> None:
        """Drop a worklist entry whose session has no hot state left (e.g. it expired)."""
        await self.redis.zrem(f"deja:{{{tenant}}}:sessions", key)

    # -- the per-session lease -----------------------------------------------------------

    async def try_lock(self, ref: Ref, lease_ms: int) -> str | None:
        token = uuid.uuid4().hex
        ok = await self.redis.set(f"deja:{{{ref.tenant}}}:s:{ref.key}:lock", token, nx=True, px=lease_ms)
        return token if ok else None

    async def unlock(self, ref: Ref, token: str) -> None:
        await self._unlock(keys=[f"deja:{{{ref.tenant}}}:s:{ref.key}:lock"], args=[token])
