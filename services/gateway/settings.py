from __future__ import annotations

from dataclasses import dataclass

from deja.settings import ConfigError, check_addr, setting

OPENAI_API = "https://api.openai.com/v1"


@dataclass(frozen=True)
class GatewaySettings:
    host: str = setting("DEJA_GATEWAY_HOST", "127.0.0.1", "interface the HTTP gateway binds (0.0.0.0 in a pod)")
    port: int = setting("DEJA_GATEWAY_PORT", 8080, "HTTP port of the gateway", minimum=1)
    upstream_url: str = setting(
        "DEJA_UPSTREAM_URL", OPENAI_API, "OpenAI-compatible provider base URL that misses are forwarded to"
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
    store_addr: str = setting("DEJA_STORE_ADDR", "127.0.0.1:50051", "host:port of the store service (L1)")
    store_timeout_ms: int = setting(
        "DEJA_STORE_TIMEOUT_MS", 100, "deadline of a store call; past it the request fails open", minimum=1
    )
    max_body_bytes: int = setting("DEJA_MAX_BODY_BYTES", 4_194_304, "request bodies over this get 413", minimum=1024)
    access_log: bool = setting("DEJA_ACCESS_LOG", True, "one JSON log line per request")
    log_level: str = setting("DEJA_LOG_LEVEL", "info", "debug, info, warning or error")

    def validate(self) -> None:
        check_addr("DEJA_STORE_ADDR", self.store_addr)
        if not self.upstream_url.startswith(("http://", "https://")):
            raise ConfigError(f"DEJA_UPSTREAM_URL: expected an http(s) URL, got {self.upstream_url!r}")
