from __future__ import annotations

import re
from dataclasses import dataclass

from deja.endpoints import metrics_port_setting, port_setting
from deja.settings import ConfigError, check_choice, setting

BACKENDS = ("edge", "qdrant")


@dataclass(frozen=True)
class SemanticIndexSettings:
    host: str = setting("DEJA_SEMANTIC_HOST", "127.0.0.1", "interface the semantic index's gRPC server binds")
    port: int = port_setting("semantic-index")
    metrics_port: int = metrics_port_setting("semantic-index")
    backend: str = setting(
        "DEJA_SEMANTIC_BACKEND", "edge", "`edge` (Qdrant's engine in process, on local disk) or `qdrant` (a server)"
    )
    data_dir: str = setting(
        "DEJA_SEMANTIC_DATA_DIR", ".deja/semantic", "edge backend: index directory (one process per directory)"
    )
    qdrant_url: str = setting(
        "DEJA_QDRANT_URL", "http://127.0.0.1:6333", "qdrant backend: server URL (`:memory:` = in process, tests only)"
    )
    qdrant_api_key: str = setting("DEJA_QDRANT_API_KEY", "", "qdrant backend: API key, if the server requires one")
    qdrant_timeout_s: int = setting(
        "DEJA_QDRANT_TIMEOUT_S", 5, "qdrant backend: per-request timeout to the server", minimum=1
    )
    qdrant_prefer_grpc: bool = setting(
        "DEJA_QDRANT_PREFER_GRPC", False, "qdrant backend: talk gRPC (port 6334) instead of REST"
    )
    collection_prefix: str = setting(
        "DEJA_SEMANTIC_COLLECTION_PREFIX", "deja_", "collection name = prefix + embedding model version"
    )
    purge_interval_s: float = setting(
        "DEJA_SEMANTIC_PURGE_INTERVAL_S", 60.0, "how often expired points are deleted (and edge data flushed)",
        minimum=0.01,
    )  # fmt: skip
    workers: int = setting(
        "DEJA_SEMANTIC_WORKERS", 4, "edge backend: threads running engine calls off the event loop", minimum=1
    )
    log_level: str = setting("DEJA_LOG_LEVEL", "info", "debug, info, warning or error")

    def validate(self) -> None:
        check_choice("DEJA_SEMANTIC_BACKEND", self.backend, BACKENDS)
        if self.qdrant_url != ":memory:" and not self.qdrant_url.startswith(("http://", "https://")):
            raise ConfigError(f"DEJA_QDRANT_URL: expected an http(s):// URL or :memory:, got {self.qdrant_url!r}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", self.collection_prefix):
            raise ConfigError(
                f"DEJA_SEMANTIC_COLLECTION_PREFIX: expected 1-32 characters of [A-Za-z0-9_-], "
                f"got {self.collection_prefix!r}"
            )
