"""Verifier scores from a Triton server running the cross-encoder (deploy/triton/model_repository/verifier).

Everything but the model run is `CrossEncoderScorer`'s, exactly as in the ONNX backend: the pair
encoding with the model dir's tokenizer.json, both orders in one call, the symmetric combination,
calibration, and the per-candidate rule (probed through Triton at load: the int8 model's rows
depend on their neighbours, so each candidate goes in its own request).

`model_version` is the `deja_model_version` parameter of the model's config (blake3 of the ONNX
file and its external-data files, written by `make models`), so the same model folder reports the
same version in both backends. Triton serves the int8 model as `verifier` and the fp32 export as
`verifier-fp32` (GPU nodes; DEJA_VERIFIER_MODEL_DIR then names the fp32 folder).
"""

from __future__ import annotations

import numpy as np

from deja.clients.triton import VERSION_PARAMETER, OnTriton, TritonModel, connect
from deja.logs import get_logger
from deja.settings import ConfigError
from deja.v1 import common_pb2
from services.verifier.cross_encoder import Calibration, CrossEncoderScorer, load_calibration, model_version
from services.verifier.settings import VerifierSettings

log = get_logger("deja.verifier")
REQUIRED = ("input_ids", "attention_mask")


class TritonPairScorer(OnTriton, CrossEncoderScorer):
    def __init__(
        self,
        model: TritonModel,
        tokenizer_path,
        *,
        model_id: str,
        max_length: int = 256,
        calibration: Calibration | None = None,
    ) -> None:
        where = f"DEJA_VERIFIER_TRITON_MODEL: {model.model!r} on {model.url}"
        names = model.input_names()
        if not set(REQUIRED) <= set(names) or len(model.config.get("output", [])) != 1:
            raise ConfigError(f"{where}: not a pair classifier (inputs {names}, one logits output expected)")
        version = model.version(where)
        self.model = model
        self._output = model.config["output"][0]["name"]
        self._info = common_pb2.ModelInfo(model_id=model_id, model_version=version, dimension=0, backend="triton")
        super().__init__(
            tokenizer_path, max_length=max_length, wants_type_ids="token_type_ids" in names, calibration=calibration
        )
        if not self.batches_candidates and "dynamic_batching" in model.config:
            # Triton would merge concurrent per-candidate requests into one run, coupling their scores again.
            log.warning("verifier_triton_batching_couples_rows", model=model.model, url=model.url)

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        rows = len(feed["input_ids"])
        step = self.model.max_batch_size or rows
        parts = [
            self.model.infer({name: array[start : start + step] for name, array in feed.items()}, self._output)
            for start in range(0, rows, step)
        ]  # more rows than max_batch_size only when rows are independent (one call per candidate otherwise)
        return np.concatenate(parts)


def create(settings: VerifierSettings) -> TritonPairScorer:
    """Tokenizer and calibration come from the model dir; they must belong to the model Triton serves."""
    model = connect(
        settings.triton_url,
        settings.triton_model,
        timeout_ms=settings.triton_timeout_ms,
        tracer="deja.verifier",
        setting="DEJA_VERIFIER_TRITON_URL",
    )
    model_dir = settings.resolved_model_dir()
    served, local = model.parameter(VERSION_PARAMETER), model_dir / "model.onnx"
    # The model file is optional next to a remote model; when it is there it must be the served one.
    if served and local.is_file() and model_version(model_dir) != served:
        model.close()
        raise ConfigError(
            f"DEJA_VERIFIER_MODEL_DIR: {model_dir} holds another model than Triton's {settings.triton_model!r}"
            f" ({served}): its tokenizer and calibration would not fit"
        )
    return TritonPairScorer(
        model,
        model_dir / "tokenizer.json",
        model_id=settings.resolved_model_id(),
        max_length=settings.max_length,
        calibration=load_calibration(model_dir),
    )
