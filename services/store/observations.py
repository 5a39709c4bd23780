"""The error budget's evidence, per tenant: labeled observations of semantic matches.

Each judge verdict, audit of an auto-served hit and client feedback on a served semantic answer is
one `Observation` (verifier score, cosine, same or not, where from). The gateway recomputes a
tenant's serve threshold from them (services/gateway/error_budget.py), so they must outlive a
restart (Redis, with its append-only file) and stay bounded (the newest `max_kept` per tenant).

Layout, under the tenant's hash tag like the rest of the store:

    deja:{T}:obs     LIST   serialized Observation, newest first, trimmed to max_kept
    deja:{T}:stats   HASH   judge_calls, judge_yes, judge_no, judge_failed, judge_input_tokens,
                            judge_output_tokens, hits_judged, audits, audit_errors (with the other counters)
"""

from __future__ import annotations

import time

from google.protobuf.message import DecodeError

from deja.errors import InvalidRequest
from deja.ids import TENANT_RULE, is_valid_tenant
from deja.redis_client import AnyRedis
from deja.v1 import store_pb2

# The TenantStats counters an observation may add to (the rest are the store's own).
COUNTERS = (
    "judge_calls", "judge_yes", "judge_no", "judge_failed", "judge_input_tokens", "judge_output_tokens",
    "hits_judged", "audits", "audit_errors",
)  # fmt: skip
MAX_INCREMENT = 10_000_000  # per call: a judge call's tokens, never a bulk import


class InvalidObservation(InvalidRequest):
    """Malformed observation or counters (INVALID_ARGUMENT)."""


class ObservationLog:
    def __init__(self, client: AnyRedis, *, max_kept: int) -> None:
        self._redis = client
        self._max_kept = max_kept

    @staticmethod
    def _prefix(tenant: str) -> str:
        if not is_valid_tenant(tenant):
            raise InvalidObservation(TENANT_RULE)
        return f"deja:{{{tenant}}}"

    async def record(self, tenant: str, observation: store_pb2.Observation | None, counters: dict[str, int]) -> None:
        prefix = self._prefix(tenant)
        unknown = set(counters) - set(COUNTERS)
        if unknown:
            raise InvalidObservation(f"unknown counters: {', '.join(sorted(unknown))}")
        if any(not 0 <= n <= MAX_INCREMENT for n in counters.values()):
            raise InvalidObservation(f"counter increments must be between 0 and {MAX_INCREMENT}")
        pipe = self._redis.pipeline(transaction=True)
        if observation is not None:
            if not (0.0 <= observation.score <= 1.0 and -1.0 <= observation.similarity <= 1.0):
                raise InvalidObservation("score must be a probability and similarity a cosine")
            stored = store_pb2.Observation()
            stored.CopyFrom(observation)
            stored.at_ms = time.time_ns() // 1_000_000
            pipe.lpush(f"{prefix}:obs", stored.SerializeToString())
            pipe.ltrim(f"{prefix}:obs", 0, self._max_kept - 1)
        for name, n in counters.items():
            if n:
                pipe.hincrby(f"{prefix}:stats", name, n)
        await pipe.execute()

    async def list(self, tenant: str, limit: int = 0) -> list[store_pb2.Observation]:
        prefix = self._prefix(tenant)
        count = min(limit or self._max_kept, self._max_kept)
        raw = await self._redis.lrange(f"{prefix}:obs", 0, count - 1)
        observations = []
        for value in raw:
            try:
                observations.append(store_pb2.Observation.FromString(value))
            except DecodeError:
                continue  # a corrupted record is skipped, never guessed at
        return observations

    async def counters(self, tenant: str) -> dict[str, int]:
        values = await self._redis.hmget(f"{self._prefix(tenant)}:stats", *COUNTERS)
        return {name: int(v or 0) for name, v in zip(COUNTERS, values, strict=True)}
