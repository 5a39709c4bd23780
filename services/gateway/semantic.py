"""L2 + L3: embed the question, find cached prompts asked in the same context, let the verifier
score the intent, decide serve / judge / miss against the tenant's error budget
(`error_budget.py`), then fetch the answer from the store. And, after a miss, index the new entry.

The tier itself never calls the judge: a match in the uncertain band comes back as
`Lookup.uncertain`, and the chat pipeline asks the judge (it holds the client's key and may race
the upstream request).

Every step runs under one deadline and through clients with their own deadlines and circuit
breakers; any failure is a miss (fail open), never an error for the client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from deja.clients import (
    DependencyError,
    DependencyTimeout,
    EmbedderClient,
    SemanticIndexClient,
    StoreClient,
    VerifierClient,
    failed_open,
)
from deja.logs import get_logger
from deja.v1 import common_pb2, store_pb2, verifier_pb2
from services.gateway import observe
from services.gateway.admission import Admission
from services.gateway.error_budget import NEVER, Decision, Evidence, decide
from services.gateway.evidence import EvidenceBook, pairing
from services.gateway.semantic_key import SemanticParts

log = get_logger("deja.gateway.semantic")

WRITE_TIMEOUT_S = 5.0  # deadline of the background embed + index write after a miss


VERDICT_TTL_S = 600.0  # a verdict is reused this long: a new verifier model rolls out within it


class VerdictMemo:
    """The verifier's recent verdicts by pairing (tenant, question, entry): LRU, each for `ttl_s`."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self.size, self.ttl_s = size, ttl_s
        self._items: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def get(self, pair: str) -> float | None:
        item = self._items.get(pair)
        if item is None or item[1] < time.monotonic():
            return None
        self._items.move_to_end(pair)
        return item[0]

    def put(self, pair: str, probability: float) -> None:
        if self.size <= 0:
            return
        self._items[pair] = (probability, time.monotonic() + self.ttl_s)
        self._items.move_to_end(pair)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class SemanticHit:
    entry: store_pb2.CacheEntry
    similarity: float
    probability: float
    pair: str = ""  # pairing id of (question, entry): what a judge verdict or feedback is about
    cached_question: str = ""  # the question the entry was stored for (the judge reads both)


@dataclass(frozen=True)
class Budget:
    """What one request allows: the error budget, the floor below which nothing is judged, the judge."""

    max_error: float
    floor: float
    judge: bool


@dataclass(frozen=True)
class Lookup:
    hit: SemanticHit | None = None  # within the budget: serve it
    uncertain: SemanticHit | None = None  # in the band: serve it only if the judge says yes
    vector: np.ndarray | None = None  # reused to index the answer after a miss
    model_version: str = ""
    serve_at: float = NEVER  # the tenant's serve threshold at this request's budget
    shed: bool = False  # not looked up: the tier was at its concurrency limit
    # Ran past the budget: the tier is saturated or hung. Like a shed lookup, its answer is not indexed
    # (indexing would embed the question again, on the tier that just timed out).
    timed_out: bool = False


class SemanticTier:
    def __init__(
        self, *, embedder: EmbedderClient, index: SemanticIndexClient, verifier: VerifierClient, store: StoreClient,
        k: int, min_similarity: float, threshold: float, timeout_s: float, evidence: EvidenceBook,
        max_error: float, min_yes: float, explore_rate: float, nearest_first: bool = True,
        admission: Admission | None = None, verdict_memo_size: int = 100_000,
    ) -> None:  # fmt: skip
        self.embedder = embedder
        self.index = index
        self.verifier = verifier
        self.store = store
        self.k = k
        self.min_similarity = min_similarity
        self.threshold = threshold  # the floor: below it a candidate is a miss, never judged
        self.timeout_s = timeout_s
        self.evidence = evidence
        self.max_error = max_error
        self.min_yes = min_yes  # judge only matches with at least this chance of a "yes"
        self.explore_rate = explore_rate  # ... or this share of the others, so the match model keeps learning
        self.nearest_first = nearest_first  # verify the nearest candidate alone first (see _lookup)
        # Which lookups start; the rest are shed as misses (see admission.py). Default: 16 at once.
        self.admission = admission or Admission(16, target_s=timeout_s / 4)
        self.verdicts = VerdictMemo(verdict_memo_size, VERDICT_TTL_S)

    async def close(self) -> None:
        for client in (self.embedder, self.index, self.verifier):
            await client.close()

    async def lookup(
        self, scope: common_pb2.Scope, parts: SemanticParts, api_format: str, threshold: float | None = None,
        max_error: float | None = None, judge: bool = True,
    ) -> Lookup:  # fmt: skip
        """The answer in `api_format` to serve (`hit`) or to judge (`uncertain`), if any. A request may
        only tighten: `threshold` raises the floor, `max_error` lowers the budget, `judge` turns it off."""
        budget = self.budget_for(threshold, max_error, judge)
        reason = self.admission.admit()
        if reason:
            # Saturated: more lookups would only queue and run past the budget, so this one is a miss
            # at once (and its answer is not indexed: that would embed it too).
            observe.SEMANTIC_SHED.labels(reason).inc()
            return Lookup(shed=True)
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self._lookup(scope, parts, api_format, budget), self.timeout_s)
        except (DependencyTimeout, TimeoutError) as exc:
            failed_open(log, "semantic_lookup_failed_open", exc)
            return Lookup(timed_out=True)
        except DependencyError as exc:
            failed_open(log, "semantic_lookup_failed_open", exc)
            return Lookup()
        except Exception as exc:  # a bug of ours: logged loudly, and still never the client's error
            log.error("semantic_lookup_bug_failed_open", error=repr(exc))
            return Lookup()
        finally:
            self.admission.done(time.perf_counter() - started)

    def budget_for(self, threshold: float | None, max_error: float | None, judge: bool) -> Budget:
        floor = self.threshold if threshold is None else max(threshold, self.threshold)
        budget = self.max_error if max_error is None else min(max_error, self.max_error)
        return Budget(budget, floor, judge)

    async def _lookup(self, scope: common_pb2.Scope, parts: SemanticParts, api_format: str, budget: Budget) -> Lookup:
        evidence = self.evidence.fresh(scope.tenant)
        with observe.timed("embed"):
            if evidence is None:  # load it from the store while the question is embedded
                (vectors, model), evidence = await asyncio.gather(
                    self.embedder.embed([parts.query]), self.evidence.of(scope.tenant)
                )
            else:
                vectors, model = await self.embedder.embed([parts.query])
        vector, version = vectors[0], model.model_version
        with observe.timed("search"):
            hits = await self.index.search(
                scope, parts.context_hash, vector.tolist(), k=self.k, min_similarity=self.min_similarity,
                model_version=version,
            )  # fmt: skip
        if not hits:
            observe.candidates_scored([], [])
            return Lookup(vector=vector, model_version=version)
        serve_at = evidence.serve_at(budget.max_error, budget.floor)
        miss = Lookup(vector=vector, model_version=version, serve_at=serve_at)
        scored: list = []
        # Cheapest first: the nearest candidate alone, served when it clears; the others are scored
        # (in one call) only when it does not. A repeat is usually its own nearest neighbour.
        # (With no serve threshold yet, every candidate is scored at once: the judge needs them all.)
        hits = sorted(hits, key=lambda h: -h.similarity)
        split = self.nearest_first and serve_at < NEVER and len(hits) > 1
        match = None
        for batch in (hits[:1], hits[1:]) if split else (hits,):
            fresh = await self._verify(scope, parts.query, batch, evidence)
            scored += fresh
            match = await self._first_servable(scope, parts.query, api_format, fresh, evidence, budget, serve_at)
            if match is not None:
                break
        observe.candidates_scored([c[1].similarity for c in scored], [c[0] for c in scored])
        if match is not None:
            return Lookup(match, None, vector, version, serve_at)
        if not (budget.judge and scored):
            return miss
        probability, hit, pair = self._worth_judging(scored, evidence, budget.floor, serve_at)
        if hit is None:
            return miss
        entry = await self._fetch(scope, hit.entry_id, api_format, store_pb2.TIER_UNSPECIFIED)
        if entry is None:
            return miss
        uncertain = SemanticHit(entry, hit.similarity, probability, pair, hit.prompt)
        return Lookup(None, uncertain, vector, version, serve_at)

    async def _first_servable(
        self, scope: common_pb2.Scope, query: str, api_format: str, scored: list, evidence: Evidence, budget: Budget,
        serve_at: float,
    ) -> SemanticHit | None:  # fmt: skip
        """The best-scored candidate that may be served unasked and whose entry is still there."""
        for probability, hit, pair in sorted(scored, key=lambda c: -c[0]):
            # The judge already said yes to this pairing, or the question is word for word the cached
            # one (in the same context: the index only returns matching contexts), so no call is needed.
            approved = (pair in evidence.approved or hit.prompt == query) and probability >= budget.floor
            if probability < serve_at and not approved:
                continue
            entry = await self._fetch(scope, hit.entry_id, api_format, store_pb2.TIER_SEMANTIC)
            if entry is not None:
                return SemanticHit(entry, hit.similarity, probability, pair, hit.prompt)
        return None

    async def _verify(self, scope: common_pb2.Scope, query: str, hits: list, evidence: Evidence) -> list:
        """(probability, hit, pairing) of each hit whose pairing was never vetoed (one judged or reported
        wrong is never served again). A pairing verified recently keeps its verdict (a paraphrase
        served semantically is asked again as itself)."""
        pairs = [pairing(scope, query, h.entry_id) for h in hits]
        known = {pair: p for pair in pairs if (p := self.verdicts.get(pair)) is not None}
        fresh = [(h, pair) for h, pair in zip(hits, pairs, strict=True) if pair not in known]
        if fresh:
            candidates = [
                verifier_pb2.VerifyCandidate(entry_id=h.entry_id, prompt=h.prompt, similarity=h.similarity)
                for h, _ in fresh
            ]
            with observe.timed("verify"):
                probabilities = await self.verifier.verify(query, candidates)
            for (_, pair), p in zip(fresh, probabilities, strict=True):
                known[pair] = float(p)
                self.verdicts.put(pair, float(p))
        return [(known[pair], h, pair) for h, pair in zip(hits, pairs, strict=True) if pair not in evidence.vetoed]

    def _worth_judging(self, scored: list, evidence: Evidence, floor: float, serve_at: float) -> tuple:
        """The candidate most likely to get a "yes", if `decide` sends it to the judge; (0, None, "") otherwise."""
        chance = evidence.p_same(np.array([c[0] for c in scored]), np.array([c[1].similarity for c in scored]))
        best = int(np.argmax(chance))
        explore = random.random() < self.explore_rate
        verdict = decide(
            scored[best][0], float(chance[best]), serve_at=serve_at, floor=floor, min_yes=self.min_yes, judge=True,
            explore=explore,
        )  # fmt: skip
        return scored[best] if verdict == Decision.JUDGE else (0.0, None, "")

    async def _fetch(self, scope: common_pb2.Scope, entry_id: str, api_format: str, count_as: int):
        """The entry behind an index point, counted as a hit of `count_as`; None (and the point
        forgotten) when the answer expired or was deleted after it was indexed."""
        with observe.timed("fetch"):
            entry = await self.store.get(scope, bytes.fromhex(entry_id), count_as)
        if entry is None:
            await self.index.delete(scope, [entry_id])
            return None
        return entry if entry.api_format == api_format else None

    async def remember(
        self, scope: common_pb2.Scope, parts: SemanticParts, lookup: Lookup | None, entry_id: str, expires_at_ms: int
    ) -> None:
        """Index a freshly stored answer under its question (runs after the response was sent).

        Skipped, not queued, when the tier has no room: a lookup that was shed or ran past its budget,
        or a question still to embed while lookups are at the limit. These background embeds take no
        admission slot, so unchecked they would keep the embedder busy under overload, time out more
        lookups, whose answers would be embedded again in turn: the tier would not recover."""
        if lookup is not None and (lookup.shed or lookup.timed_out):
            observe.SEMANTIC_INDEX_SKIPPED.labels("shed" if lookup.shed else "timed_out").inc()
            return
        vector, version = (lookup.vector, lookup.model_version) if lookup and lookup.vector is not None else (None, "")
        if vector is None and self.admission.saturated():
            observe.SEMANTIC_INDEX_SKIPPED.labels("saturated").inc()
            return
        # Nobody waits for this write, so it gets a roomier deadline than the lookup's budget: a
        # model version's first write creates its collection, which can take a second on a busy node.
        if vector is None:
            vectors, model = await self.embedder.embed([parts.query], WRITE_TIMEOUT_S)
            vector, version = vectors[0], model.model_version
        await self.index.upsert(
            scope, parts.context_hash, vector.tolist(), parts.query, entry_id, expires_at_ms, version, WRITE_TIMEOUT_S
        )
