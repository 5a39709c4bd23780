"""What the gateway's routes call, opened once per process: the store, the semantic tier, session
memory, the upstreams, the judge, the evidence book, the cache operations (admin and tenant routes).

gRPC aio channels bind to the event loop that creates them, so `Tiers.open` runs in the app's
lifespan (inside uvicorn's loop), not when the app is made; routes reach the tiers through a getter.
"""

from __future__ import annotations

from dataclasses import dataclass

from deja.clients import CircuitBreaker, EmbedderClient, SemanticIndexClient, StoreClient, VerifierClient
from deja.clients.direct_reads import DirectReads
from services.gateway.admission import Admission, LoopLag
from services.gateway.anthropic.format import ANTHROPIC
from services.gateway.cache_api.operations import CacheOperations
from services.gateway.error_budget import Prior
from services.gateway.evidence import EvidenceBook
from services.gateway.judge import Judge
from services.gateway.miss_tally import MissTally
from services.gateway.openai.format import OPENAI
from services.gateway.semantic import SemanticTier
from services.gateway.semantic_policy import SemanticPolicy
from services.gateway.session_memory import Memory
from services.gateway.settings import GatewaySettings, MemorySettings
from services.gateway.upstream import Upstream

ADMIN_TIMEOUT_S = 30.0  # operator calls (listing, invalidating a whole tenant) may walk many entries


@dataclass
class Tiers:
    store: StoreClient  # the request path's: short deadline, its own breaker; reads Redis directly if configured
    upstreams: dict[str, Upstream]  # by ApiFormat.api: "openai", "anthropic"
    semantic: SemanticTier | None  # None: DEJA_SEMANTIC_ENABLED=false
    policy: SemanticPolicy
    judge: Judge | None  # None: DEJA_JUDGE=false
    evidence: EvidenceBook
    memory: Memory
    cache: CacheOperations  # list, invalidate, feedback, stats: operator-sized deadlines
    loop_lag: LoopLag | None  # None: DEJA_GATEWAY_MAX_LAG_MS=0, lag never sheds
    misses: MissTally  # the tenants' miss counts, sent to the store in batches

    @classmethod
    def open(cls, settings: GatewaySettings, memory_settings: MemorySettings, prior: Prior) -> Tiers:
        timeout_s = settings.store_timeout_ms / 1000
        direct = None
        if settings.redis_url:  # lookups read the store's Redis themselves (deja.clients.direct_reads)
            direct = DirectReads(settings.redis_url, timeout_s=timeout_s, pool_size=settings.redis_pool_size)
        store = StoreClient(settings.store_addr, timeout_s=timeout_s, breaker=CircuitBreaker(), direct=direct)
        upstreams = {
            OPENAI.api: _upstream(settings.upstream_url, settings),
            ANTHROPIC.api: _upstream(settings.anthropic_upstream_url, settings),
        }
        loop_lag = None
        if settings.max_loop_lag_ms > 0:
            loop_lag = LoopLag()
            loop_lag.start()
        evidence = EvidenceBook(store, prior, refresh_s=settings.evidence_refresh_s)
        judge = None
        if settings.judge:
            judge = Judge(
                {fmt.name: upstreams[fmt.api] for fmt in (OPENAI, ANTHROPIC)},
                {OPENAI.name: settings.judge_model_openai, ANTHROPIC.name: settings.judge_model_anthropic},
                timeout_s=settings.judge_timeout_ms / 1000,
            )
        semantic = _semantic_tier(settings, store, evidence, loop_lag) if settings.semantic_enabled else None
        policy = SemanticPolicy.from_patterns(
            settings.time_sensitive_pattern,
            settings.excluded_pattern,
            time_sensitive_ttl_s=settings.time_sensitive_ttl_s,
            min_chars=settings.semantic_min_chars,
            max_chars=settings.semantic_max_chars,
        )
        # Operator calls get their own clients: longer deadlines, breakers apart from the request path's.
        admin_index = None
        if settings.semantic_enabled:
            admin_index = SemanticIndexClient(settings.semantic_addr, timeout_s=ADMIN_TIMEOUT_S)
        cache = CacheOperations(StoreClient(settings.store_addr, timeout_s=ADMIN_TIMEOUT_S), admin_index, evidence)
        memory = Memory.create(memory_settings, settings.store_addr, max_body_bytes=settings.max_body_bytes)
        return cls(store, upstreams, semantic, policy, judge, evidence, memory, cache, loop_lag, MissTally(store))

    async def close(self) -> None:
        await self.misses.close()  # while the store client is still open
        await self.memory.close()
        await self.cache.close()
        for upstream in reversed(self.upstreams.values()):
            await upstream.close()
        await self.store.close()
        if self.semantic is not None:
            await self.semantic.close()
        if self.loop_lag is not None:
            await self.loop_lag.stop()


def _upstream(base_url: str, settings: GatewaySettings) -> Upstream:
    return Upstream(
        base_url, timeout_s=settings.upstream_timeout_s, connect_timeout_s=settings.upstream_connect_timeout_s
    )


def _semantic_tier(
    settings: GatewaySettings, store: StoreClient, evidence: EvidenceBook, loop_lag: LoopLag | None
) -> SemanticTier:
    # Each client has the whole semantic budget as its own deadline; the tier's overall
    # deadline is what bounds the lookup.
    budget_s = settings.semantic_timeout_ms / 1000
    return SemanticTier(
        embedder=EmbedderClient(settings.embedder_addr, timeout_s=budget_s),
        index=SemanticIndexClient(settings.semantic_addr, timeout_s=budget_s),
        verifier=VerifierClient(settings.verifier_addr, timeout_s=budget_s),
        store=store,
        k=settings.semantic_k,
        min_similarity=settings.semantic_min_similarity,
        threshold=settings.verifier_threshold,
        timeout_s=budget_s,
        evidence=evidence,
        max_error=settings.max_error_rate,
        min_yes=settings.judge_min_yes,
        explore_rate=settings.audit_rate,
        nearest_first=settings.verify_nearest_first,
        admission=Admission(
            settings.semantic_max_inflight,
            target_s=settings.semantic_target_ms / 1000,
            max_lag_s=settings.max_loop_lag_ms / 1000,
            lag=loop_lag,
        ),
        verdict_memo_size=settings.verdict_memo_size,
    )
