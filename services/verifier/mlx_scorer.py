"""MLX cross-encoder: the verifier's `mlx` backend (Apple silicon; `mlx[cpu]` elsewhere).

It serves the same model dir as the ONNX backend: the weights come out of `model.onnx`
(onnx_weights.py; int8 weights dequantized) and run in fp32 through deja/mlx_bert.py. Pair
encoding, symmetric logits, the two-class head rule and calibration are `CrossEncoderScorer`'s,
shared with the ONNX and Triton backends; this module only runs the model.

Scores are close to, not equal to, the ONNX backend's on the bundled int8 model: ONNX Runtime also
quantizes the *activations* of every MatMul (one scale per call), MLX does not. For the same reason
a row never depends on the other rows of its call, so all candidates, both directions, go in one
call, without the load-time probe (tests/test_mlx.py checks batched == alone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from deja.mlx_bert import Bert
from deja.settings import ConfigError
from deja.v1 import common_pb2
from services.verifier.cross_encoder import Calibration, CrossEncoderScorer, load_calibration, model_version
from services.verifier.onnx_weights import OnnxWeightsError, read_bert


class MlxPairScorer(CrossEncoderScorer):
    rows_always_independent = True  # fp32 throughout (the probe would also cost seconds on mlx-cpu)

    def __init__(
        self, model_dir: Path, *, model_id: str, max_length: int = 256, calibration: Calibration | None = None
    ) -> None:
        path = model_dir / "model.onnx"
        graph = onnx.load(str(path))  # by path: weights may be external data beside it
        try:
            weights, shape = read_bert(graph, model_dir / "config.json")
        except OnnxWeightsError as error:
            raise ConfigError(f"DEJA_VERIFIER_MODEL_DIR: {model_dir}/model.onnx: {error}") from error
        if "classifier.weight" not in weights:
            raise ConfigError(f"DEJA_VERIFIER_MODEL_DIR: {model_dir}/model.onnx has no classifier: not a cross-encoder")
        self._model = Bert.from_weights(weights, shape)
        self._info = common_pb2.ModelInfo(
            model_id=model_id, model_version=model_version(model_dir), dimension=0, backend="mlx"
        )
        super().__init__(
            model_dir / "tokenizer.json",
            max_length=max_length,
            wants_type_ids="token_type_ids" in {i.name for i in graph.graph.input},
            calibration=calibration,
        )

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self._model.logits(feed["input_ids"], feed["attention_mask"], feed.get("token_type_ids"))


def create(settings) -> MlxPairScorer:
    model_dir = settings.resolved_model_dir()
    return MlxPairScorer(
        model_dir,
        model_id=settings.resolved_model_id(),
        max_length=settings.max_length,
        calibration=load_calibration(model_dir),  # the folder's calibration.json, as the onnx backend
    )
