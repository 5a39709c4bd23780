from __future__ import annotations

from dataclasses import dataclass

from deja.endpoints import metrics_port_setting, port_setting
from deja.redis_client import url_problem
from deja.settings import ConfigError, setting


@dataclass(frozen=True)
class StoreSettings:
    host: str = setting("DEJA_STORE_HOST", "127.0.0.1", "interface the store's gRPC server binds")
    port: int = port_setting("store")
    metrics_port: int = metrics_port_setting("store")
    redis_url: str = setting(
        "DEJA_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis/Valkey URL of the store's exact cache; redis+cluster://host:port for a Redis Cluster (any node)",
    )
    redis_timeout_ms: int = setting(
        "DEJA_REDIS_TIMEOUT_MS", 250, "per-command Redis timeout; past it the call fails (open)", minimum=1
    )
    redis_pool_size: int = setting("DEJA_REDIS_POOL_SIZE", 64, "Redis connections per store process", minimum=1)
    default_ttl_s: int = setting("DEJA_CACHE_TTL_S", 86_400, "TTL of an entry when the request names none", minimum=1)
    max_ttl_s: int = setting("DEJA_CACHE_MAX_TTL_S", 2_592_000, "upper bound on any entry's TTL", minimum=1)
    max_entry_bytes: int = setting(
        "DEJA_CACHE_MAX_ENTRY_BYTES", 1_048_576, "larger responses are served but not cached", minimum=1
    )
    max_observations: int = setting(
        "DEJA_MAX_OBSERVATIONS",
        5000,
        "labeled semantic matches (judge, audit, feedback) kept per tenant for its error budget",
        minimum=1,
    )
    log_level: str = setting("DEJA_LOG_LEVEL", "info", "debug, info, warning or error")

    def validate(self) -> None:
        if self.default_ttl_s > self.max_ttl_s:
            raise ConfigError("DEJA_CACHE_TTL_S: must not exceed DEJA_CACHE_MAX_TTL_S")
        if problem := url_problem(self.redis_url):
            raise ConfigError(f"DEJA_REDIS_URL: {problem}")
