"""ONNX Runtime in process vs the same models through a local Triton (CPU configs): latency table.

    .venv/bin/python deploy/triton/bench.py [--rounds 200]

Starts its own tritonserver on free ports (tools/triton_server.py), then times, one call at a time:
a single-text embed and a 5-candidate verify, through each backend; and the server's start.
"""

from __future__ import annotations

import argparse
import time

from deja.settings import load
from services.embedder import triton_backend
from services.embedder.backends import create_backend
from services.embedder.settings import EmbedderSettings
from services.verifier import triton_scorer
from services.verifier.scorer import load_scorer
from services.verifier.settings import VerifierSettings
from tools.bench.gateway import time_sync
from tools.cluster import free_port
from tools.triton_server import TritonServer

QUERY = "How do I sort a list in ascending order?"
CANDIDATES = [
    "How do I sort a list in descending order?",
    "sort a list ascending in python",
    "What is the capital of France?",
    "How do I reverse a string in Python?",
    "Explain how quicksort partitions an array around a pivot element.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    server = TritonServer(grpc_port=free_port(), http_port=0, metrics_port=0)
    started = time.perf_counter()
    server.start()
    start_s = time.perf_counter() - started
    try:
        embed_env = {"DEJA_EMBEDDER_TRITON_URL": server.grpc_url}
        verify_env = {"DEJA_VERIFIER_TRITON_URL": server.grpc_url}
        embedders = {
            "onnx": create_backend(load(EmbedderSettings, {})),
            "triton": triton_backend.create(load(EmbedderSettings, embed_env)),
        }
        scorers = {
            "onnx": load_scorer(load(VerifierSettings, {})),
            "triton": triton_scorer.create(load(VerifierSettings, verify_env)),
        }
        print(f"tritonserver ready in {start_s:.2f} s (embedder + verifier, CPU configs)")
        print("| call | backend | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
        for name, backend in embedders.items():
            latency = time_sync(lambda b=backend: b.embed(["How do I center a div?"]), args.rounds)
            print(f"| embed 1 text | {name} | {latency.p50_ms:.2f} | {latency.p99_ms:.2f} |")
        for name, scorer in scorers.items():
            latency = time_sync(lambda s=scorer: s.score(QUERY, CANDIDATES), args.rounds // 4)
            print(f"| verify 5 candidates | {name} | {latency.p50_ms:.2f} | {latency.p99_ms:.2f} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
