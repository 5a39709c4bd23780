"""The gateway's settings: `GatewaySettings` (the HTTP front and its cache tiers) and `MemorySettings`
(session memory on the chat path). Each DEJA_* variable is declared once: session memory reaches
the store at GatewaySettings' DEJA_STORE_ADDR (deja/endpoints.py declares the address rule)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deja.endpoints import addr_setting, port_setting
from deja.redis_client import url_problem
from deja.settings import ConfigError, check_addr, setting
from services.gateway.pricing import PriceTable
from services.gateway.semantic_policy import DEFAULT_EXCLUDED, DEFAULT_TIME_SENSITIVE

OPENAI_API = "https://api.openai.com/v1"
ANTHROPIC_API = "https://api.anthropic.com"


@dataclass(frozen=True)
class GatewaySettings:
    host: str = setting("DEJA_GATEWAY_HOST", "127.0.0.1", "interface the HTTP gateway binds (0.0.0.0 in a pod)")
    port: int = port_setting("gateway")
    upstream_url: str = setting(
        "DEJA_UPSTREAM_URL", OPENAI_API, "OpenAI-compatible provider base URL that misses are forwarded to"
    )
    anthropic_upstream_url: str = setting(
        "DEJA_ANTHROPIC_UPSTREAM_URL",
        ANTHROPIC_API,
        "Anthropic-compatible provider base URL (without /v1) that /v1/messages misses are forwarded to",
    )
    admin_key: str = setting(
        "DEJA_ADMIN_KEY", "", "bearer key of the admin API (/v1/admin/...); empty: the admin API is off (404)"
    )
    upstream_timeout_s: float = setting(
        "DEJA_UPSTREAM_TIMEOUT_S",
        600.0,
        "longest wait for upstream bytes (a slow answer is not an error)",
        minimum=0.1,
    )
    upstream_connect_timeout_s: float = setting(
        "DEJA_UPSTREAM_CONNECT_TIMEOUT_S", 5.0, "connect timeout to the upstream; past it: 502", minimum=0.01
    )
    store_addr: str = addr_setting("store")
    store_timeout_ms: int = setting(
        "DEJA_STORE_TIMEOUT_MS", 100, "deadline of a store call; past it the request fails open", minimum=1
    )
    redis_url: str = setting(
        "DEJA_GATEWAY_REDIS_URL",
        "",
        "the store's Redis (its DEJA_REDIS_URL): the gateway reads cache entries from it directly, one gRPC hop"
        " less per lookup (writes, stats and sessions still go through the store); empty: every read goes through"
        " the store service",
    )
    redis_pool_size: int = setting(
        "DEJA_GATEWAY_REDIS_POOL_SIZE", 32, "Redis connections for the gateway's direct reads", minimum=1
    )
    semantic_enabled: bool = setting("DEJA_SEMANTIC_ENABLED", True, "serve and learn from the L2/L3 semantic tier")
    embedder_addr: str = addr_setting("embedder")
    semantic_addr: str = addr_setting("semantic-index")
    verifier_addr: str = addr_setting("verifier")
    semantic_timeout_ms: int = setting(
        "DEJA_SEMANTIC_TIMEOUT_MS",
        400,
        "budget of the whole L2+L3 lookup; past it the request goes upstream",
        minimum=1,
    )
    semantic_k: int = setting("DEJA_SEMANTIC_K", 5, "candidates fetched from the index and verified", minimum=1)
    semantic_max_inflight: int = setting(
        "DEJA_SEMANTIC_MAX_INFLIGHT",
        16,
        "most semantic lookups in flight at once: the ceiling of the adaptive limit; past the limit a lookup is "
        "shed at once as a miss (its answer is not indexed)",
        minimum=1,
    )
    semantic_target_ms: int = setting(
        "DEJA_SEMANTIC_TARGET_MS",
        300,
        "lookup latency the adaptive limit aims under (near the budget: a shed lookup is a paid provider call): "
        "each slower lookup cuts the limit by a tenth, each faster one raises it a little",
        minimum=1,
    )
    max_loop_lag_ms: int = setting(
        "DEJA_GATEWAY_MAX_LAG_MS",
        0,
        "shed every semantic lookup while the gateway's event loop runs this late (its CPU is saturated); 0: never "
        "(worth it only where a miss costs the gateway less CPU than a lookup)",
        minimum=0,
    )
    verdict_memo_size: int = setting(
        "DEJA_VERDICT_MEMO_SIZE",
        100_000,
        "verifier verdicts kept per (tenant, question, entry) for 10 minutes; 0 turns the memo off",
        minimum=0,
    )
    verify_nearest_first: bool = setting(
        "DEJA_VERIFY_NEAREST_FIRST",
        True,
        "verify the nearest candidate alone and serve it if it clears; the others only when it does not",
    )
    semantic_min_similarity: float = setting(
        # 0.70 keeps 98% of the verifier's QQP test recall at its default threshold (0.75: 93%); MODEL_CARD.md
        "DEJA_SEMANTIC_MIN_SIMILARITY",
        0.70,
        "cosine prefilter: candidates below it are not verified",
    )
    verifier_threshold: float = setting(
        # The floor of the judge band: below it a candidate is another question. Serving itself is
        # decided by the error budget (DEJA_MAX_ERROR_RATE); see services/gateway/error_budget.py.
        "DEJA_VERIFIER_THRESHOLD",
        0.1,
        "verifier probability below which a candidate is a miss, never judged nor served",
    )
    max_error_rate: float = setting(
        "DEJA_MAX_ERROR_RATE",
        0.01,
        "error budget: a semantic match is served unasked only where the tenant's evidence bounds its error"
        " rate (95% confidence) within this; X-Deja-Max-Error may lower it per request",
    )
    judge: bool = setting(
        "DEJA_JUDGE", True, "ask the provider (client's key, a cheap model) about matches in the uncertain band"
    )
    judge_model_openai: str = setting(
        "DEJA_JUDGE_MODEL_OPENAI", "gpt-4o-mini", "judge model for OpenAI-format requests"
    )
    judge_model_anthropic: str = setting(
        "DEJA_JUDGE_MODEL_ANTHROPIC", "claude-haiku-4-5", "judge model for Anthropic-format requests"
    )
    judge_timeout_ms: int = setting(
        "DEJA_JUDGE_TIMEOUT_MS", 3000, "longest wait for the judge; past it the request is a miss", minimum=1
    )
    judge_mode: str = setting(
        "DEJA_JUDGE_MODE",
        "sequential",
        "sequential: judge, then go upstream on a no; race: start the upstream request while the judge runs"
        " and drop it on a yes (no added latency; the provider bills the dropped call's input)",
    )
    judge_min_yes: float = setting(
        "DEJA_JUDGE_MIN_YES",
        0.25,
        "judge a match only if the tenant's match model gives it at least this chance of a yes",
    )
    audit_rate: float = setting(
        "DEJA_AUDIT_RATE",
        0.02,
        "share of auto-served semantic hits judged after the response (also: of skipped matches, to keep learning)",
    )
    error_prior: str = setting(
        "DEJA_ERROR_PRIOR",
        "",
        "reliability table every tenant's evidence starts from; empty = the shipped verifier's"
        " (services/verifier/model/reliability.json)",
    )
    error_prior_weight: float = setting(
        "DEJA_ERROR_PRIOR_WEIGHT", 100.0, "how many observations the prior counts as", minimum=0.0
    )
    evidence_refresh_s: float = setting(
        "DEJA_EVIDENCE_REFRESH_S", 10.0, "reload a tenant's observations from the store this often", minimum=0.0
    )
    semantic_min_chars: int = setting("DEJA_SEMANTIC_MIN_CHARS", 8, "shorter questions are exact-only", minimum=1)
    semantic_max_chars: int = setting("DEJA_SEMANTIC_MAX_CHARS", 2000, "longer questions are exact-only", minimum=1)
    time_sensitive_pattern: str = setting(
        "DEJA_TIME_SENSITIVE_PATTERN",
        DEFAULT_TIME_SENSITIVE,
        "regex (case-insensitive): matching prompts get a short TTL",
    )
    time_sensitive_ttl_s: int = setting(
        "DEJA_TIME_SENSITIVE_TTL_S", 300, "TTL of answers to time-sensitive prompts", minimum=1
    )
    excluded_pattern: str = setting(
        "DEJA_SEMANTIC_EXCLUDED_PATTERN", DEFAULT_EXCLUDED, "regex: matching prompts are never served semantically"
    )
    max_body_bytes: int = setting("DEJA_MAX_BODY_BYTES", 4_194_304, "request bodies over this get 413", minimum=1024)
    access_log: bool = setting("DEJA_ACCESS_LOG", True, "one JSON log line per request")
    prices: str = setting(
        "DEJA_PRICES",
        "",
        'price table for "cost saved": JSON {"model": [input, output] USD per 1M tokens}; empty: built-in list prices',
    )
    log_level: str = setting("DEJA_LOG_LEVEL", "info", "debug, info, warning or error")

    def validate(self) -> None:
        check_addr("DEJA_STORE_ADDR", self.store_addr)
        if self.redis_url and (problem := url_problem(self.redis_url)):
            raise ConfigError(f"DEJA_GATEWAY_REDIS_URL: {problem}")
        check_addr("DEJA_EMBEDDER_ADDR", self.embedder_addr)
        check_addr("DEJA_SEMANTIC_ADDR", self.semantic_addr)
        check_addr("DEJA_VERIFIER_ADDR", self.verifier_addr)
        for env, value in (
            ("DEJA_VERIFIER_THRESHOLD", self.verifier_threshold),
            ("DEJA_MAX_ERROR_RATE", self.max_error_rate),
            ("DEJA_JUDGE_MIN_YES", self.judge_min_yes),
            ("DEJA_AUDIT_RATE", self.audit_rate),
        ):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{env}: must be a probability in [0, 1]")
        if self.judge_mode not in ("sequential", "race"):
            raise ConfigError(f"DEJA_JUDGE_MODE: expected sequential or race, got {self.judge_mode!r}")
        if self.error_prior and not Path(self.error_prior).is_file():
            raise ConfigError(f"DEJA_ERROR_PRIOR: no file at {self.error_prior}")
        PriceTable.parse(self.prices)
        if not -1.0 <= self.semantic_min_similarity <= 1.0:
            raise ConfigError("DEJA_SEMANTIC_MIN_SIMILARITY: must be a cosine in [-1, 1]")
        for env, pattern in (
            ("DEJA_TIME_SENSITIVE_PATTERN", self.time_sensitive_pattern),
            ("DEJA_SEMANTIC_EXCLUDED_PATTERN", self.excluded_pattern),
        ):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{env}: not a valid regular expression ({exc})") from None
        if not self.upstream_url.startswith(("http://", "https://")):
            raise ConfigError(f"DEJA_UPSTREAM_URL: expected an http(s) URL, got {self.upstream_url!r}")
        if not self.anthropic_upstream_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"DEJA_ANTHROPIC_UPSTREAM_URL: expected an http(s) URL, got {self.anthropic_upstream_url!r}"
            )
        if self.admin_key and len(self.admin_key) < 16:
            raise ConfigError("DEJA_ADMIN_KEY: use at least 16 characters (empty turns the admin API off)")


@dataclass(frozen=True)
class MemorySettings:
    """Session memory's deadlines and recall size; its store is GatewaySettings.store_addr."""

    timeout_ms: int = setting(
        "DEJA_SESSION_TIMEOUT_MS", 2000, "deadline of the gateway's session calls (endpoints, recording)", minimum=1
    )
    recall_timeout_ms: int = setting(
        "DEJA_SESSION_RECALL_TIMEOUT_MS",
        200,
        "deadline of the recall lookup on the chat path; past it the request goes on without recall",
        minimum=1,
    )
    recall_messages: int = setting(
        "DEJA_SESSION_RECALL_MESSAGES",
        20,
        "messages `X-Deja-Memory: recall` puts in front of a request (and the default n of the session endpoints)",
        minimum=1,
    )


SHIPPED_PRIOR = Path(__file__).resolve().parents[1] / "verifier" / "model" / "reliability.json"


def prior_path(settings: GatewaySettings) -> Path | None:
    """The reliability table the tenants' evidence starts from (None: no prior, only their own)."""
    if settings.error_prior:
        return Path(settings.error_prior)
    return SHIPPED_PRIOR if SHIPPED_PRIOR.is_file() else None
