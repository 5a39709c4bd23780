"""Triton's `onnxruntime` backend as a Python-based backend: the CPU-only stand-in.

NVIDIA's Triton images ship a compiled ONNX Runtime backend (`backends/onnxruntime/
libtriton_onnxruntime.so`); the `tritonserver` inside the nvidia-pytriton wheel, which is what
runs on hosts without that image (CI, laptops), ships only the python backend. Triton loads a
backend directory that holds a `model.py` instead of a shared library as a "Python-based
backend", so this file, placed at `<backend-directory>/onnxruntime/model.py`, serves every model
whose config says `platform: "onnxruntime_onnx"`: the production config.pbtxt files load
unchanged. On GPU nodes NVIDIA's image uses its real backend and this file is not used.

What it mirrors of the real backend: it reads inputs, outputs and data types from the model's
config, loads `<version>/<default_model_filename or model.onnx>`, honours the
`intra_op_thread_count` / `inter_op_thread_count` parameters, and runs the requests that Triton's
dynamic batcher hands it in one session run per input shape (the batcher only groups requests of
the same shape, as with the real backend).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _parameter(config: dict, key: str, default: int) -> int:
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return int(value) if value.strip() else default


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        path = Path(args["model_repository"]) / args["model_version"]
        path /= config.get("default_model_filename") or "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = _parameter(config, "intra_op_thread_count", 0)
        options.inter_op_num_threads = _parameter(config, "inter_op_thread_count", 1)
        # Hosts that use this stand-in are small and shared (CI, a laptop): idle threads sleep.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        graph_inputs = {i.name for i in self._session.get_inputs()}
        graph_outputs = {o.name for o in self._session.get_outputs()}
        self._inputs = [(i["name"], pb_utils.triton_string_to_numpy(i["data_type"])) for i in config["input"]]
        self._outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]
        unknown = [name for name, _ in self._inputs if name not in graph_inputs]
        unknown += [name for name, _ in self._outputs if name not in graph_outputs]
        if unknown:
            raise pb_utils.TritonModelException(f"{path}: the config names tensors the graph lacks: {unknown}")

    def execute(self, requests: list) -> list:
        feeds = [self._feed(request) for request in requests]
        groups: dict[tuple, list[int]] = {}  # same input shapes -> one session run
        for index, feed in enumerate(feeds):
            groups.setdefault(tuple((name, array.shape[1:]) for name, array in feed.items()), []).append(index)
        responses: list = [None] * len(requests)
        for indices in groups.values():
            try:
                merged = {name: np.concatenate([feeds[i][name] for i in indices]) for name in feeds[indices[0]]}
                results = self._session.run([name for name, _ in self._outputs], merged)
            except Exception as exc:  # one bad group fails only its own requests
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
                continue
            start = 0
            for i in indices:
                end = start + len(next(iter(feeds[i].values())))
                tensors = [
                    pb_utils.Tensor(name, np.ascontiguousarray(result[start:end], dtype=dtype))
                    for (name, dtype), result in zip(self._outputs, results, strict=True)
                ]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start = end
        return responses

    def _feed(self, request) -> dict[str, np.ndarray]:
        feed = {}
        for name, dtype in self._inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:  # optional inputs may be left out
                feed[name] = tensor.as_numpy().astype(dtype, copy=False)
        return feed
