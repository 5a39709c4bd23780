"""`deja eval --workload`: replay a cache workload through the real cluster and measure its hits.

The whole local cluster runs (Redis, store, embedder, semantic index, verifier, gateway) with the
mock provider upstream, loaded with the workload's ground truth: it answers every question of a
cluster with that cluster's answer (the answer names its cluster) and judges like a perfect judge,
or one that flips `--judge-noise` of its verdicts. Requests go to the gateway over HTTP in ask
order, one at a time, as an agent would send them; so a served hit is right exactly when the answer
it served names the asked question's cluster.

One row per pipeline setting (`deja`, at each `--max-error`, judge on and off; `threshold` is the
serve threshold the tenant ended with, null while none is backed by evidence); each row replays
the whole workload as tenants of its own, so rows never see each other's entries or evidence.
`cosine` rows are what a plain cosine cache (GPTCache's rule: nearest cached question, served when
its cosine clears a threshold) would do, the threshold chosen to serve the same share of repeats as
each deja row; they are simulated in process on the embedder's own vectors (the same model, the
same exact nearest-neighbour search), since only the threshold differs.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import structlog

from tools.eval.workloads import BUILT_IN, built_in, limited, read_jsonl, write_jsonl

Z = 1.959963984540054  # two-sided 95% for the reported bounds
_CLUSTER = re.compile(r"\[cluster ([^\]]+)\]")
SEMANTIC_HITS = ("hit-semantic", "hit-judged")


def wilson_low(successes: int, n: int) -> float | None:
    """The reported bound: two-sided 95% (the gateway's own decisions use one-sided 95%)."""
    from services.gateway.error_budget import wilson_lower

    return wilson_lower(successes, n, Z) if n else None


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


@dataclass
class Tally:
    """What one replay saw, request by request."""

    requests: int = 0
    semantic_hits: int = 0
    right: int = 0
    exact_hits: int = 0
    repeats: int = 0  # requests whose cluster had an answer cached already
    repeats_served: int = 0
    hit_ms: list[float] = field(default_factory=list)
    auto_ms: list[float] = field(default_factory=list)
    judged_ms: list[float] = field(default_factory=list)
    miss_ms: list[float] = field(default_factory=list)
    judged_miss_ms: list[float] = field(default_factory=list)  # misses the judge said no to first
    errors: int = 0
    judged_hits: int = 0
    fifths: list[dict] = field(default_factory=list)  # judge calls and semantic hits per fifth of the replay
    threshold: float | None = None  # the serve threshold the (single) tenant ended with

    def row(self, judge_calls: int) -> dict:
        n = max(self.requests, 1)
        wrong = self.semantic_hits - self.right
        return {
            "threshold": self.threshold,
            "requests": self.requests,
            "semantic_hits": self.semantic_hits,
            "judged_hits": self.judged_hits,
            "exact_hits": self.exact_hits,
            "served_precision": round(self.right / self.semantic_hits, 4) if self.semantic_hits else None,
            "served_precision_low95": _round(wilson_low(self.right, self.semantic_hits)),
            "repeats": self.repeats,
            "repeats_served": round(self.repeats_served / self.repeats, 4) if self.repeats else None,
            "wrong_per_1000": round(1000 * wrong / n, 2),
            "judge_calls_per_1000": round(1000 * judge_calls / n, 1),
            "judge_calls_per_hit_by_fifth": [
                round(f["judge"] / f["hits"], 3) if f["hits"] else None for f in self.fifths
            ],
            "hit_p50_ms": _pct(self.hit_ms, 50),
            "hit_p99_ms": _pct(self.hit_ms, 99),
            "auto_hit_p50_ms": _pct(self.auto_ms, 50),
            "judged_hit_p50_ms": _pct(self.judged_ms, 50),
            "miss_p50_ms": _pct(self.miss_ms, 50),
            "judge_delayed_misses_per_1000": round(1000 * len(self.judged_miss_ms) / n, 1),
            "judge_delayed_miss_p50_ms": _pct(self.judged_miss_ms, 50),
            "client_errors": self.errors,
        }


def _round(x: float | None) -> float | None:
    return round(x, 4) if x is not None else None


def _body(question: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}


def replay(gateway: str, mock: str, requests: list[dict], key_prefix: str, headers: dict[str, str]) -> tuple:
    """Send every request in order; (Tally, judge calls the mock answered during the replay)."""
    tally = Tally()
    cached: set[tuple[str, str]] = set()  # (tenant, cluster) with an answer stored
    bounds = [round(len(requests) * i / 5) for i in range(6)]
    with httpx.Client(timeout=60) as client:
        judge_start = judge_mark = client.get(f"{mock}/mock/stats").json().get("judge", 0)
        hits_mark = 0
        for i, request in enumerate(requests):
            tenant = request.get("tenant", "")
            # One key per workload tenant; "/<tenant>" tells the mock whose ground truth applies.
            key = f"{key_prefix}/{tenant}" if tenant else key_prefix
            repeat = (tenant, request["cluster"]) in cached
            started = time.perf_counter()
            response = client.post(
                f"{gateway}/v1/chat/completions", json=_body(request["question"]),
                headers={"authorization": f"Bearer {key}", **headers},
            )  # fmt: skip
            ms = (time.perf_counter() - started) * 1000
            tally.requests += 1
            tally.repeats += repeat
            outcome = response.headers.get("x-deja-cache", "")
            if response.status_code != 200:
                tally.errors += 1
                continue
            if outcome in SEMANTIC_HITS:
                text = response.json()["choices"][0]["message"]["content"] or ""
                found = _CLUSTER.search(text)
                right = found is not None and found.group(1) == request["cluster"]
                tally.semantic_hits += 1
                tally.right += right
                tally.repeats_served += right and repeat
                tally.hit_ms.append(ms)
                (tally.judged_ms if outcome == "hit-judged" else tally.auto_ms).append(ms)
                tally.judged_hits += outcome == "hit-judged"
            elif outcome == "hit-exact":
                tally.exact_hits += 1
                tally.repeats_served += repeat
            else:
                (tally.judged_miss_ms if response.headers.get("x-deja-judge") else tally.miss_ms).append(ms)
                cached.add((tenant, request["cluster"]))
            if i + 1 in bounds[1:]:
                judge_now = client.get(f"{mock}/mock/stats").json().get("judge", 0)
                hits_now = tally.semantic_hits
                tally.fifths.append({"judge": judge_now - judge_mark, "hits": hits_now - hits_mark})
                judge_mark, hits_mark = judge_now, hits_now
            if (i + 1) % 2000 == 0:
                print(f"  {key_prefix}: {i + 1}/{len(requests)}", file=sys.stderr, flush=True)
        time.sleep(0.5)  # audits run after their responses
        judge_calls = client.get(f"{mock}/mock/stats").json().get("judge", 0) - judge_start
        # The serve threshold the tenant's evidence gives at the end (one tenant; null: none yet).
        stats = client.get(f"{gateway}/v1/cache/stats", headers={"authorization": f"Bearer {key_prefix}", **headers})
        tally.threshold = stats.json().get("error_budget", {}).get("serve_threshold") if stats.is_success else None
    return tally, judge_calls


def warm_up(gateway: str) -> None:
    """One miss in a tenant of its own, then a pause: the index creates its collection on the first
    write (a second or two on a busy machine), which would otherwise eat the replay's first repeats."""
    with httpx.Client(timeout=60) as client:
        client.post(
            f"{gateway}/v1/chat/completions", json=_body("What is a semantic cache?"),
            headers={"authorization": "Bearer sk-deja-eval-warm-up"},
        )  # fmt: skip
    time.sleep(3.0)


# -- the cosine-only cache, simulated on the same vectors ---------------------------------


def neighbours(vectors: np.ndarray, tenants: list[str], k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """For each request, its k most similar earlier requests of the same tenant (index, cosine)."""
    n = len(vectors)
    index = np.full((n, k), -1, dtype=np.int64)
    cosine = np.full((n, k), -2.0, dtype=np.float32)
    tenant_ids = np.unique(np.array(tenants), return_inverse=True)[1]
    for start in range(0, n, 512):
        block = vectors[start : start + 512] @ vectors.T
        for r in range(block.shape[0]):
            i = start + r
            row = np.where(tenant_ids[:i] == tenant_ids[i], block[r, :i], -2.0)
            top = np.argsort(-row)[:k] if i else np.array([], dtype=np.int64)
            index[i, : len(top)], cosine[i, : len(top)] = top, row[top]
    return index, cosine


def cosine_replay(index: np.ndarray, cosine: np.ndarray, requests: list[dict], threshold: float) -> dict:
    """Serve the nearest cached earlier question when its cosine >= threshold; cache every miss."""
    clusters = [r["cluster"] for r in requests]
    tenants = [r.get("tenant", "") for r in requests]
    cached = np.zeros(len(requests), dtype=bool)
    cached_clusters: set[tuple[str, str]] = set()
    hits = right = repeats = served = 0
    for i in range(len(requests)):
        repeat = (tenants[i], clusters[i]) in cached_clusters
        repeats += repeat
        best = next((j for j, c in zip(index[i], cosine[i], strict=True) if j >= 0 and cached[j]), None)
        if best is not None and cosine[i][list(index[i]).index(best)] >= threshold:
            hits += 1
            ok = clusters[best] == clusters[i]
            right += ok
            served += ok and repeat
        else:
            cached[i] = True
            cached_clusters.add((tenants[i], clusters[i]))
    n = len(requests)
    return {
        "pipeline": "cosine", "max_error": None, "judge": "off", "judge_noise": None,
        "threshold": round(threshold, 4), "requests": n, "semantic_hits": hits,
        "served_precision": round(right / hits, 4) if hits else None,
        "served_precision_low95": _round(wilson_low(right, hits)),
        "repeats_served": round(served / repeats, 4) if repeats else None,
        "wrong_per_1000": round(1000 * (hits - right) / max(n, 1), 2),
        "judge_calls_per_1000": 0.0, "hit_p50_ms": None, "hit_p99_ms": None,
        "measured": "simulated in process on the embedder's vectors (no latency)",
    }  # fmt: skip


def cosine_matching(index, cosine, requests: list[dict], target: float | None) -> dict:
    """The cosine row whose share of repeats served is closest to `target` (bisection on the threshold)."""
    lo, hi = 0.5, 1.0
    best = cosine_replay(index, cosine, requests, hi)
    if not target:
        return best
    for _ in range(14):
        mid = (lo + hi) / 2
        row = cosine_replay(index, cosine, requests, mid)
        if abs((row["repeats_served"] or 0) - target) < abs((best["repeats_served"] or 0) - target):
            best = row
        if (row["repeats_served"] or 0) > target:
            lo = mid
        else:
            hi = mid
    return best


# -- the whole run ----------------------------------------------------------------------


def load_workload(name: str, datasets: Path, limit: int, seed: int) -> tuple[str, list[dict]]:
    if name in BUILT_IN:
        return name, limited(built_in(name, datasets, seed), limit)
    return Path(name).stem, limited(read_jsonl(Path(name)), limit)


def run_workload(
    name: str, datasets: str, limit: int, seed: int, max_errors: list[float], judge_noise: float,
    judge_modes: list[str],
) -> dict:  # fmt: skip
    from deja.settings import load
    from services.embedder.backends import create_backend
    from services.embedder.settings import EmbedderSettings
    from tools.cluster import Cluster

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    workload, requests = load_workload(name, Path(datasets), limit, seed)
    result: dict = {"workload": workload, "requests": len(requests), "judge_noise": judge_noise, "rows": []}
    with tempfile.TemporaryDirectory(prefix="deja-eval-") as tmp:
        truth = Path(tmp) / "truth.jsonl"
        write_jsonl(requests, truth)
        log = open(Path(tmp) / "cluster.log", "w")
        cluster = Cluster.on_free_ports(
            state_dir=Path(tmp) / "state", upstream="mock", mock_latency_ms=0, persist=False,
            sink=lambda n, line: log.write(f"{n:<14}| {line}\n"),
            extra_env={
                "DEJA_MOCK_TRUTH": str(truth), "DEJA_MOCK_JUDGE_NOISE": str(judge_noise),
                "DEJA_MOCK_JUDGE_LATENCY_MS": "0", "DEJA_ACCESS_LOG": "false", "DEJA_SEMANTIC_TIMEOUT_MS": "2000",
                # The loosest row's budget; X-Deja-Max-Error tightens it for the others (it never loosens).
                "DEJA_MAX_ERROR_RATE": str(max(max_errors)),
            },
        )  # fmt: skip
        with cluster:
            warm_up(cluster.gateway_url)
            for max_error in max_errors:
                for judge in judge_modes:
                    label = f"deja-e{max_error}-judge-{judge}"
                    headers = {"x-deja-max-error": str(max_error), "x-deja-judge": judge}
                    print(f"deja eval: {workload} {label} ({len(requests)} requests)", file=sys.stderr, flush=True)
                    tally, calls = replay(cluster.gateway_url, cluster.mock_url, requests, f"sk-{label}", headers)
                    result["rows"].append({
                        "pipeline": "deja", "max_error": max_error, "judge": judge,
                        "judge_noise": judge_noise if judge == "on" else None, **tally.row(calls),
                    })  # fmt: skip
        log.close()
    embedder = create_backend(load(EmbedderSettings))
    questions = [r["question"] for r in requests]
    vectors = np.concatenate([embedder.embed(questions[i : i + 256]) for i in range(0, len(questions), 256)])
    index, cosine = neighbours(vectors, [r.get("tenant", "") for r in requests])
    for row in list(result["rows"]):
        matched = cosine_matching(index, cosine, requests, row["repeats_served"])
        result["rows"].append({**matched, "matches": f"deja max_error={row['max_error']} judge={row['judge']}"})
    return result


def run_eval_workload(args) -> None:
    judge_modes = args.judge or (["on"] if args.judge_noise else ["on", "off"])
    result = run_workload(
        args.workload, args.datasets, args.limit, args.seed, args.max_error or [0.01], args.judge_noise, judge_modes
    )
    print(json.dumps(result, indent=1))
