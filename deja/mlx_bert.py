"""A BERT encoder in MLX: the model behind the embedder's and the verifier's `mlx` backends.

MLX is Apple's array framework (Metal on Apple silicon; `mlx[cpu]` runs the same code on Linux,
which is how CI tests it). Weights are plain `mx.array`s named like Hugging Face's `BertModel`
(`embeddings.word_embeddings.weight`, `encoder.layer.3.attention.self.query.weight`, Linear
weights given `[out, in]`), so a sentence-transformers `model.safetensors` loads as it is and the
verifier's ONNX initializers are renamed to these names once (services/verifier/onnx_weights.py).
`pooler.dense` and `classifier` are built only when the weights have them (cross-encoders).

Padding: attention ignores masked keys, so a padded row gives its unpadded result; callers pool or
read [CLS] themselves. The activation is GELU in its exact erf form, as BERT's "gelu".

Threads: an MLX array belongs to the stream of the thread that made it, and the services call
the model from a worker thread. So `from_weights` evaluates every weight at load, and each call
runs on a stream of the calling thread (made on its first call).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np


@dataclass(frozen=True)
class BertShape:
    """What the weights do not say; every size else is read off the weight shapes."""

    heads: int
    layer_norm_eps: float


class _Dense(nn.Module):
    """A Linear layer that keeps its weight [in, out] and contiguous (given [out, in], see `from_weights`).

    x @ W runs 2.3x faster than nn.Linear's x @ W.T on the reference BLAS that the mlx[cpu] wheel
    bundles; on Apple silicon both are one GEMM."""

    def __init__(self, dims_in: int, dims_out: int) -> None:
        super().__init__()
        self.weight = mx.zeros((dims_in, dims_out))
        self.bias = mx.zeros((dims_out,))

    def __call__(self, x: mx.array) -> mx.array:
        return x @ self.weight + self.bias


class _Linear(nn.Module):
    def __init__(self, dims_in: int, dims_out: int) -> None:
        super().__init__()
        self.dense = _Dense(dims_in, dims_out)


class _AddNorm(nn.Module):
    """dense(x) + residual, then LayerNorm: BERT's `*.output` blocks."""

    def __init__(self, dims_in: int, dims_out: int, eps: float) -> None:
        super().__init__()
        self.dense = _Dense(dims_in, dims_out)
        self.LayerNorm = nn.LayerNorm(dims_out, eps=eps)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dense(x) + residual)


class _QKV(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query = _Dense(hidden, hidden)
        self.key = _Dense(hidden, hidden)
        self.value = _Dense(hidden, hidden)


class _Attention(nn.Module):
    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.self = _QKV(hidden)
        self.output = _AddNorm(hidden, hidden, eps)


class _Layer(nn.Module):
    def __init__(self, hidden: int, intermediate: int, heads: int, eps: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        self.heads = heads
        self.scale = 1 / math.sqrt(hidden // heads)
        self.attention = _Attention(hidden, eps)
        self.intermediate = _Linear(hidden, intermediate)
        self.output = _AddNorm(intermediate, hidden, eps)

    def __call__(self, x: mx.array, keep: mx.array) -> mx.array:
        batch, tokens, hidden = x.shape
        qkv = self.attention.self

        def split(t: mx.array) -> mx.array:  # [B, T, H] -> [B, heads, T, H / heads]
            return t.reshape(batch, tokens, self.heads, -1).transpose(0, 2, 1, 3)

        context = mx.fast.scaled_dot_product_attention(
            split(qkv.query(x)), split(qkv.key(x)), split(qkv.value(x)), scale=self.scale, mask=keep
        )
        x = self.attention.output(context.transpose(0, 2, 1, 3).reshape(batch, tokens, hidden), x)
        return self.output(nn.gelu(self.intermediate.dense(x)), x)


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, positions: int, token_types: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(token_types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def __call__(self, ids: mx.array, token_types: mx.array) -> mx.array:
        positions = mx.arange(ids.shape[1])
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings(token_types)
        return self.LayerNorm(x)


class _Encoder(nn.Module):
    def __init__(self, layers: list[_Layer]) -> None:
        super().__init__()
        self.layer = layers


class Bert(nn.Module):
    def __init__(
        self,
        *,
        vocab: int,
        positions: int,
        token_types: int,
        hidden: int,
        intermediate: int,
        layers: int,
        shape: BertShape,
        pooler: bool,
        labels: int,
    ) -> None:
        super().__init__()
        eps = shape.layer_norm_eps
        self.embeddings = _Embeddings(vocab, positions, token_types, hidden, eps)
        self.encoder = _Encoder([_Layer(hidden, intermediate, shape.heads, eps) for _ in range(layers)])
        if pooler:
            self.pooler = _Linear(hidden, hidden)
        if labels:
            self.classifier = _Dense(hidden, labels)
        self.hidden = hidden
        self.labels = labels

    @classmethod
    def from_weights(cls, weights: Mapping[str, mx.array | np.ndarray], shape: BertShape) -> Bert:
        """A model holding exactly `weights` (Hugging Face names and layout, no `bert.` prefix), evaluated now."""
        weights = {name: np.asarray(w) for name, w in weights.items() if name != "embeddings.position_ids"}
        layers = 0
        while f"encoder.layer.{layers}.attention.self.query.weight" in weights:
            layers += 1
        if not layers or "embeddings.word_embeddings.weight" not in weights:
            raise ValueError("not BERT weights: no embeddings.word_embeddings.weight / encoder.layer.0")
        vocab, hidden = weights["embeddings.word_embeddings.weight"].shape
        model = cls(
            vocab=vocab,
            positions=weights["embeddings.position_embeddings.weight"].shape[0],
            token_types=weights["embeddings.token_type_embeddings.weight"].shape[0],
            hidden=hidden,
            intermediate=weights["encoder.layer.0.intermediate.dense.weight"].shape[0],
            layers=layers,
            shape=shape,
            pooler="pooler.dense.weight" in weights,
            labels=weights["classifier.weight"].shape[0] if "classifier.weight" in weights else 0,
        )
        weights = {name: mx.array(_dense_layout(name, w)) for name, w in weights.items()}
        model.load_weights(list(weights.items()), strict=True)  # names and shapes must all match
        mx.eval(model.parameters())  # load now, on this thread: later calls come from worker threads
        return model

    def __call__(self, ids: mx.array, mask: mx.array, token_types: mx.array | None = None) -> mx.array:
        """Last hidden states [B, T, hidden]; rows past a row's mask are padding (not meaningful)."""
        keep = (mask != 0)[:, None, None, :]  # [B, 1, 1, T]: every query sees only real keys
        x = self.embeddings(ids, mx.zeros_like(ids) if token_types is None else token_types)
        for layer in self.encoder.layer:
            x = layer(x, keep)
        return x

    def mean_pooled(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean of the real tokens' last hidden states, L2-normalised (sentence-transformers' pooling)."""
        with mx.stream(_thread_stream()):
            weights = mx.array(mask, dtype=mx.float32)[:, :, None]
            hidden = self(mx.array(ids), mx.array(mask))
            mean = (hidden * weights).sum(axis=1) / mx.maximum(weights.sum(axis=1), 1e-9)
            unit = mean / mx.maximum(mx.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
            return np.array(unit, dtype=np.float32)

    def logits(self, ids: np.ndarray, mask: np.ndarray, token_types: np.ndarray | None = None) -> np.ndarray:
        """Classifier logits [B, labels] from [CLS]: pooler (dense + tanh) when present, then `classifier`."""
        if not self.labels:
            raise ValueError("these weights have no classifier head")
        with mx.stream(_thread_stream()):
            types = None if token_types is None else mx.array(token_types)
            cls = self(mx.array(ids), mx.array(mask), types)[:, 0]
            if "pooler" in self:
                cls = mx.tanh(self.pooler.dense(cls))
            return np.array(self.classifier(cls), dtype=np.float32)


def _dense_layout(name: str, weight: np.ndarray) -> np.ndarray:
    """Linear weights [out, in] -> [in, out], contiguous (see _Dense); embedding tables and 1-D weights as they are."""
    if weight.ndim == 2 and name.endswith(".weight") and not name.startswith("embeddings."):
        return np.ascontiguousarray(weight.T)
    return weight


_local = threading.local()


def _thread_stream() -> mx.Stream:
    stream = getattr(_local, "stream", None)
    if stream is None:
        stream = _local.stream = mx.new_stream(mx.default_device())
    return stream
