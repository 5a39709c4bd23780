"""ONNX Runtime cross-encoder: the embedded CPU backend of the verifier.

Any BERT-style sequence-pair classifier exported to ONNX fits: a directory with `model.onnx`
(inputs `input_ids`, `attention_mask`, optionally `token_type_ids`; output logits shaped
[batch, 1], or [batch, 2] for a two-class head) and the `tokenizer.json` it was trained with.

Scoring rules (symmetric logits, calibration, one call per candidate when the model's rows are
batch-dependent, as with the bundled ms-marco model, dynamically quantized int8) live in
`scorer.CrossEncoderScorer`, shared with the Triton backend; this module only runs the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from deja.v1 import common_pb2
from services.verifier.cross_encoder import Calibration, CrossEncoderScorer, model_version


class OnnxPairScorer(CrossEncoderScorer):
    def __init__(
        self,
        model_dir: Path,
        *,
        model_id: str,
        max_length: int = 256,
        threads: int = 1,
        calibration: Calibration | None = None,
        pair_order: str | None = None,
    ) -> None:
        self._info = common_pb2.ModelInfo(
            model_id=model_id, model_version=model_version(model_dir), dimension=0, backend="onnx"
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The verifier shares its cores with the embedder and the gateway: idle threads must sleep, not spin.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The graph is loaded from bytes: external-data files are looked up in the model's folder.
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(model_dir))
        # From the path, so weights kept as external data next to model.onnx are found.
        self._session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])

        names = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ValueError(f"{model_dir}/model.onnx: needs inputs input_ids and attention_mask, has {sorted(names)}")
        self._output = self._session.get_outputs()[0].name
        super().__init__(
            model_dir / "tokenizer.json",
            max_length=max_length,
            wants_type_ids="token_type_ids" in names,
            calibration=calibration,
            pair_order=pair_order,
        )

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run([self._output], feed)[0]
