from __future__ import annotations

from dataclasses import dataclass

from deja.endpoints import addr_setting
from deja.settings import ConfigError, check_addr, setting


@dataclass(frozen=True)
class SessionSettings:
    window: int = setting("DEJA_SESSION_WINDOW", 20, "messages per session kept hot in Redis", minimum=1)
    spill_batch: int = setting(
        "DEJA_SESSION_SPILL_BATCH",
        20,
        "the hot window grows this far past DEJA_SESSION_WINDOW before its oldest messages move to the archive",
        minimum=1,
    )
    hot_ttl_s: int = setting(
        "DEJA_SESSION_HOT_TTL_S",
        86_400,
        "Redis TTL of a session's hot keys, renewed on each append (a safety net: idle sessions are archived first)",
        minimum=1,
    )
    idle_after_s: float = setting(
        "DEJA_SESSION_IDLE_AFTER_S",
        3600.0,
        "a session without appends this long moves wholly to the archive",
        minimum=0.1,
    )
    retention_s: int = setting(
        "DEJA_SESSION_RETENTION_S",
        2_592_000,
        "archived sessions idle longer than this are purged (0: kept forever)",
        minimum=0,
    )
    purge_interval_s: float = setting(
        "DEJA_SESSION_PURGE_INTERVAL_S",
        60.0,
        "how often idle sessions are archived, old ones purged and missing turn vectors filled in",
        minimum=0.05,
    )
    max_message_chars: int = setting(
        "DEJA_SESSION_MAX_MESSAGE_CHARS", 32_768, "longer message contents are truncated (and marked so)", minimum=1
    )
    archive_dir: str = setting(
        "DEJA_SESSION_ARCHIVE_DIR", ".deja/sessions", "directory of the session archive (one file per session)"
    )
    zstd_level: int = setting("DEJA_SESSION_ZSTD_LEVEL", 9, "zstandard level of archive files (1-19)", minimum=1)
    embedder_addr: str = addr_setting("embedder")
    embed_timeout_ms: int = setting(
        "DEJA_SESSION_EMBED_TIMEOUT_MS",
        1000,
        "deadline of the store's embedder calls (turn vectors, context queries); past it `relevant` is empty",
        minimum=1,
    )
    min_similarity: float = setting(
        "DEJA_SESSION_MIN_SIMILARITY", 0.3, "archived messages less similar to a context query are not relevant"
    )

    def validate(self) -> None:
        check_addr("DEJA_EMBEDDER_ADDR", self.embedder_addr)
        if self.idle_after_s + self.purge_interval_s >= self.hot_ttl_s:
            # the sweep must archive an idle session before Redis expires its hot turns
            raise ConfigError(
                "DEJA_SESSION_IDLE_AFTER_S + DEJA_SESSION_PURGE_INTERVAL_S: must be below DEJA_SESSION_HOT_TTL_S"
            )
        if self.zstd_level > 19:
            raise ConfigError("DEJA_SESSION_ZSTD_LEVEL: must be 1-19")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError("DEJA_SESSION_MIN_SIMILARITY: must be a cosine in [-1, 1]")
