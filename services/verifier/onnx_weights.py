"""BERT cross-encoder weights read out of an ONNX graph, under Hugging Face's names, as float32.

The verifier's model dir holds only `model.onnx` + `tokenizer.json`, so the MLX backend takes its
weights from the graph's initializers. A torch export keeps a parameter's name where the graph
uses it as it is (embedding tables, LayerNorm, Linear biases) but stores each Linear weight
transposed under a generated name (`onnx::MatMul_1662`). So a Linear is found from its bias: the
Add that consumes `<linear>.bias` adds it to the output of the Linear's MatMul, whose second input
is the weight `[in, out]`. Two layouts are understood:

- fp32: `MatMul(x, W)`, or `Gemm(x, W, bias)` (pooler and classifier of some exports);
- dynamic int8 (onnxruntime `quantize_dynamic`, the bundled ms-marco model): `MatMulInteger(x_q, W_q,
  x_zp, W_zp) -> Cast -> Mul(x_scale * W_scale)`, and embedding tables stored as
  `<name>_quantized`, `<name>_scale`, `<name>_zero_point` feeding Gather -> DequantizeLinear;
- static int8 in QDQ form (`quantize_static`, the trained verifier): each weight is
  `DequantizeLinear(W_q, scale, zero_point, axis)` of initializers (per-channel scales), and
  activations pass through QuantizeLinear -> DequantizeLinear pairs, which are looked through.

A named tensor may also be the output of a Concat of initializers (a table split into parts to
keep external-data files small, as the trained verifier's fp32 export does).

Quantized weights are dequantized, `(q - zero_point) * scale`; the model then runs in fp32 (its
activations are not quantized, so scores differ slightly from ONNX Runtime's int8 run).

What the weights do not say: attention heads are read off the Reshape that splits the query
into heads (`[..., heads, head_dim]`), LayerNorm epsilon off the graph's LayerNorm (fused op or
its `Sqrt(ReduceMean(..) + eps)` form). A `config.json` next to the model overrides both.
Graphs fused by an optimiser (Attention / SkipLayerNormalization ops) are refused with a message:
export a plain graph.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

if TYPE_CHECKING:  # mlx is imported only where a shape is built: training reads weights without it
    from deja.mlx_bert import BertShape

_EMBEDDINGS = ("word_embeddings", "position_embeddings", "token_type_embeddings")
_LAYER_LINEARS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
_LAYER_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


class OnnxWeightsError(ValueError):
    pass


def read_bert(model: onnx.ModelProto, config_path: Path | None = None) -> tuple[dict[str, np.ndarray], BertShape]:
    """(weights named like `BertForSequenceClassification` minus its `bert.` prefix, shape).

    `pooler.*` and `classifier.*` are there when the graph has them (a plain BertModel has neither)."""
    graph = _Graph(model.graph)
    weights = _read_weights(graph)
    hidden = weights["embeddings.word_embeddings.weight"].shape[1]
    return weights, _shape(graph, graph.prefix(), hidden, config_path)


def read_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The weights of `read_bert` alone (no shape, no mlx): e.g. to continue training a shipped model."""
    return _read_weights(_Graph(model.graph))


def _read_weights(graph: _Graph) -> dict[str, np.ndarray]:
    prefix = graph.prefix()
    weights: dict[str, np.ndarray] = {}
    for table in _EMBEDDINGS:
        weights[f"embeddings.{table}.weight"] = graph.named(f"{prefix}embeddings.{table}.weight")
    _norm(graph, weights, prefix, "embeddings.LayerNorm")
    layer = 0
    while graph.has(f"{prefix}encoder.layer.{layer}.attention.self.query.bias"):
        for linear in _LAYER_LINEARS:
            _linear(graph, weights, prefix, f"encoder.layer.{layer}.{linear}")
        for norm in _LAYER_NORMS:
            _norm(graph, weights, prefix, f"encoder.layer.{layer}.{norm}")
        layer += 1
    if not layer:
        raise OnnxWeightsError(f"no {prefix}encoder.layer.0.attention.self.query.bias: not a BERT encoder")
    if graph.has(f"{prefix}pooler.dense.bias"):
        _linear(graph, weights, prefix, "pooler.dense")
    if graph.has("classifier.bias"):
        _linear(graph, weights, "", "classifier")
    return weights


def _linear(graph: _Graph, weights: dict[str, np.ndarray], prefix: str, name: str) -> None:
    weights[f"{name}.weight"] = graph.linear_weight(f"{prefix}{name}.bias").T  # [in, out] -> [out, in]
    weights[f"{name}.bias"] = graph.named(f"{prefix}{name}.bias")


def _norm(graph: _Graph, weights: dict[str, np.ndarray], prefix: str, name: str) -> None:
    for part in ("weight", "bias"):
        weights[f"{name}.{part}"] = graph.named(f"{prefix}{name}.{part}")


def _shape(graph: _Graph, prefix: str, hidden: int, config_path: Path | None) -> BertShape:
    from deja.mlx_bert import BertShape

    config = json.loads(config_path.read_text()) if config_path and config_path.is_file() else {}
    query_bias = f"{prefix}encoder.layer.0.attention.self.query.bias"
    heads = config.get("num_attention_heads") or graph.heads(query_bias, hidden)
    eps = config.get("layer_norm_eps") or graph.layer_norm_eps()
    return BertShape(heads=int(heads), layer_norm_eps=float(eps))


class _Graph:
    def __init__(self, graph: onnx.GraphProto) -> None:
        fused = {n.op_type for n in graph.node} & {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"}
        if fused:
            raise OnnxWeightsError(f"graph has fused {sorted(fused)} ops (an optimised graph): export a plain one")
        self._initializers = {i.name: i for i in graph.initializer}
        self._constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
        self._nodes = graph.node
        self._producer = {out: n for n in graph.node for out in n.output}
        self._consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self._consumers[name].append(node)

    def has(self, name: str) -> bool:
        return name in self._initializers or f"{name}_quantized" in self._initializers or name in self._producer

    def prefix(self) -> str:
        """What the export put before `embeddings.` (`bert.` for BertForSequenceClassification)."""
        suffix = "embeddings.word_embeddings.weight"
        for name in [*self._initializers, *self._producer]:
            base = name.removesuffix("_quantized")
            if base.endswith(suffix):
                return base[: -len(suffix)]
        raise OnnxWeightsError(f"no initializer named *{suffix}: not a BERT graph")

    def constant(self, name: str) -> np.ndarray | None:
        if name in self._initializers:
            return numpy_helper.to_array(self._initializers[name])
        if name in self._constants:
            return numpy_helper.to_array(self._constants[name].attribute[0].t)
        node = self._producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":  # a QDQ weight: dequantize it here
            return self._dequantize_node(node)
        return None

    def _dequantize_node(self, node: onnx.NodeProto) -> np.ndarray | None:
        quantized = self.constant(node.input[0])
        if quantized is None:
            return None  # an activation's fake-quant pair, not a weight
        scale = self.constant(node.input[1])
        zero_point = self.constant(node.input[2]) if len(node.input) > 2 else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale is not None and scale.ndim == 1 and scale.size > 1:  # per-channel: along `axis`
            shape = [1] * quantized.ndim
            shape[axis] = scale.size
            scale = scale.reshape(shape)
            zero_point = None if zero_point is None else zero_point.reshape(shape)
        return _dequantize(quantized, scale, zero_point)

    def _through_fake_quant(self, name: str) -> str:
        """The tensor an activation's QuantizeLinear -> DequantizeLinear pair (static int8) stands for."""
        node = self._producer.get(name)
        while node is not None and node.op_type == "DequantizeLinear":
            quantize = self._producer.get(node.input[0])
            if quantize is None or quantize.op_type != "QuantizeLinear":
                break
            name = quantize.input[0]
            node = self._producer.get(name)
        return name

    def named(self, name: str) -> np.ndarray:
        """A parameter the graph kept under its own name, dequantized when stored as `<name>_quantized`."""
        value = self.constant(name)
        if value is not None:
            return value.astype(np.float32)
        node = self._producer.get(name)
        if node is not None and node.op_type == "Concat":  # a large table stored in parts (size-limited files)
            axis = next(a.i for a in node.attribute if a.name == "axis")
            return np.concatenate([self.named(part) for part in node.input], axis=axis)
        quantized = self.constant(f"{name}_quantized")
        if quantized is None:
            raise OnnxWeightsError(f"no initializer {name} (nor {name}_quantized)")
        for node in self._consumers.get(f"{name}_quantized", []):
            if node.op_type == "DequantizeLinear":  # its axis says how per-channel scales broadcast
                return self._dequantize_node(node)
        return _dequantize(quantized, self.constant(f"{name}_scale"), self.constant(f"{name}_zero_point"))

    def linear_weight(self, bias: str) -> np.ndarray:
        """The `[in, out]` weight of the Linear whose bias is the initializer `bias`."""
        for node in self._consumers.get(bias, []):
            if node.op_type == "Gemm" and node.input[2] == bias:
                weight = self.tensor(node.input[1])
                transposed = any(a.name == "transB" and a.i for a in node.attribute)
                return weight.T if transposed else weight
            if node.op_type == "Add":
                (product,) = [name for name in node.input if name != bias]
                return self._matmul_weight(product, bias)
        raise OnnxWeightsError(f"{bias}: no Add or Gemm uses it")

    def _matmul_weight(self, product: str, bias: str) -> np.ndarray:
        node = self._producer.get(self._through_fake_quant(product))
        if node is not None and node.op_type == "MatMul":
            return self.tensor(node.input[1])
        if node is not None and node.op_type == "Mul":  # dynamic int8: MatMulInteger -> Cast -> Mul(scales)
            for side in (0, 1):
                cast = self._producer.get(node.input[side])
                integer = cast and cast.op_type == "Cast" and self._producer.get(cast.input[0])
                if integer and integer.op_type == "MatMulInteger":
                    scales = self._producer[node.input[1 - side]]  # Mul(x_scale, W_scale)
                    (scale,) = [s for s in (self.constant(name) for name in scales.input) if s is not None]
                    zero_point = self.constant(integer.input[3]) if len(integer.input) > 3 else None
                    return _dequantize(self.constant(integer.input[1]), scale, zero_point)
        raise OnnxWeightsError(f"{bias}: added to {node.op_type if node else product}, not to a MatMul's output")

    def tensor(self, name: str) -> np.ndarray:
        value = self.constant(name)
        if value is None:
            raise OnnxWeightsError(f"{name}: a MatMul weight that is neither an initializer nor dequantized from one")
        return value.astype(np.float32)

    def heads(self, query_bias: str, hidden: int) -> int:
        """Heads from the Reshape that splits the query into [..., heads, head_dim]."""
        for add in self._consumers.get(query_bias, []):
            for reshape in self._consumers.get(add.output[0], []):
                if reshape.op_type == "Reshape":
                    dims = self._static_dims(reshape.input[1])
                    heads, head_dim = dims[-2:] if len(dims) >= 2 else (None, None)
                    if heads and heads > 0:
                        return heads
                    if head_dim and head_dim > 0:
                        return hidden // head_dim
        raise OnnxWeightsError("cannot read the number of attention heads from the graph: add a config.json")

    def _static_dims(self, name: str) -> list[int | None]:
        value = self.constant(name)
        if value is not None:
            return [int(v) for v in value.ravel()]
        node = self._producer.get(name)
        if node is None or node.op_type != "Concat":
            return []
        dims: list[int | None] = []
        for part in node.input:
            value = self.constant(part)
            dims.extend([None] if value is None else (int(v) for v in value.ravel()))
        return dims

    def layer_norm_eps(self) -> float:
        for node in self._nodes:
            if node.op_type == "LayerNormalization":
                return next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            if node.op_type == "Sqrt":  # decomposed: Sqrt(ReduceMean((x - mean)^2) + eps)
                add = self._producer.get(node.input[0])
                if add is not None and add.op_type == "Add":
                    variance = [self._producer.get(name) for name in add.input]
                    eps = [self.constant(name) for name in add.input]
                    if any(v is not None and v.op_type == "ReduceMean" for v in variance):
                        return float(next(e for e in eps if e is not None))
        raise OnnxWeightsError("cannot read LayerNorm epsilon from the graph: add a config.json")


def _dequantize(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None) -> np.ndarray:
    zero = 0.0 if zero_point is None else zero_point.astype(np.float32)
    return ((quantized.astype(np.float32) - zero) * scale.astype(np.float32)).astype(np.float32)
