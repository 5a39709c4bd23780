"""Every tenant's error-budget evidence in this gateway: loaded from the store, kept fresh, written through.

The store holds each tenant's observations (bounded, persisted); the gateway keeps an `Evidence`
per tenant in memory (LRU), reloads it every `refresh_s` (so replicas converge on each other's
verdicts), and adds its own new observations at once. A store that is down or slow costs nothing
but freshness: the tenant keeps its last evidence, or the prior alone, which is conservative.

It also remembers the semantic matches it served recently (tenant, entry id -> score, cosine,
pairing), so client feedback on a served answer becomes an observation of that match.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import blake3

from deja.clients import DependencyError, StoreClient, failed_open
from deja.logs import get_logger
from deja.v1 import common_pb2, store_pb2
from services.gateway.error_budget import Evidence, Prior

log = get_logger("deja.gateway.evidence")

MAX_TENANTS = 10_000  # tenants held in memory; the rest reload on their next lookup
MAX_SERVED = 20_000  # recent semantic hits remembered for feedback
MAX_LOCAL = 20_000  # observations a tenant's evidence may grow to between reloads


def pairing(scope: common_pb2.Scope, question: str, entry_id: str) -> str:
    """The id of "this question served from this entry": what a "no" vetoes and a "yes" approves."""
    text = "\x00".join((scope.namespace, question, entry_id))
    return blake3.blake3(text.encode()).hexdigest(16)


@dataclass(frozen=True)
class ServedMatch:
    score: float
    similarity: float
    pair: str


class EvidenceBook:
    def __init__(self, store: StoreClient, prior: Prior, *, refresh_s: float) -> None:
        self.store = store
        self.prior = prior
        self.refresh_s = refresh_s
        self._tenants: OrderedDict[str, tuple[float, Evidence]] = OrderedDict()
        self._served: OrderedDict[tuple[str, str], ServedMatch] = OrderedDict()

    def fresh(self, tenant: str) -> Evidence | None:
        """The tenant's evidence if it is held and fresh: the common case, with no call at all."""
        held = self._tenants.get(tenant)
        if held is not None and time.monotonic() - held[0] < self.refresh_s:
            self._tenants.move_to_end(tenant)
            return held[1]
        return None

    async def of(self, tenant: str) -> Evidence:
        evidence = self.fresh(tenant)
        if evidence is not None:
            return evidence
        held = self._tenants.get(tenant)
        try:
            observations = await self.store.list_observations(tenant)
        except DependencyError as exc:
            log.debug("evidence_load_failed_open", error=str(exc))
            return held[1] if held is not None else Evidence(self.prior)
        evidence = Evidence(self.prior)
        for o in reversed(observations):  # oldest first, so a later verdict on a pairing wins
            evidence.add(o.score, o.same, o.pair, o.similarity)
        self._hold(tenant, evidence)
        return evidence

    def _hold(self, tenant: str, evidence: Evidence) -> None:
        self._tenants[tenant] = (time.monotonic(), evidence)
        self._tenants.move_to_end(tenant)
        while len(self._tenants) > MAX_TENANTS:
            self._tenants.popitem(last=False)

    async def record(
        self, tenant: str, *, score: float, similarity: float, same: bool | None, source: int, pair: str,
        counters: dict[str, int],
    ) -> None:  # fmt: skip
        """Add a verdict (None: no verdict, only counters) here at once, and in the store for everyone."""
        observation = None
        if same is not None:
            held = self._tenants.get(tenant)
            if held is not None and len(held[1].scores) < MAX_LOCAL:  # bounded while the store is away
                held[1].add(score, same, pair, similarity)
            observation = store_pb2.Observation(score=score, similarity=similarity, same=same, source=source, pair=pair)
        try:
            await self.store.record_observation(tenant, observation, counters)
        except DependencyError as exc:
            failed_open(log, "observation_write_failed_open", exc)

    def served(self, tenant: str, entry_id: str, match: ServedMatch) -> None:
        self._served[(tenant, entry_id)] = match
        self._served.move_to_end((tenant, entry_id))
        while len(self._served) > MAX_SERVED:
            self._served.popitem(last=False)

    def served_match(self, tenant: str, entry_id: str) -> ServedMatch | None:
        return self._served.get((tenant, entry_id))
