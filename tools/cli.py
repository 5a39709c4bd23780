"""`deja`: the developer's entry point: the runtime's commands (serve, config) and the tools.

deja serve store|gateway|mock-provider   run one service (configured by DEJA_* env)
deja cluster [--upstream mock|URL] [--backend onnx|triton]   the whole local cluster
deja bench                               exact-hit latency/throughput table
deja eval [--workload qqp|checklist|coding|FILE]   pair metrics, or a workload replayed through the cluster
deja config                              every DEJA_* setting, its default and meaning
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deja.endpoints import default_port
from deja.settings import ConfigError
from services.launcher import add_commands, run_command


def _cluster(args: argparse.Namespace) -> None:
    from tools.cluster import Cluster

    cluster = Cluster(
        state_dir=Path(args.state_dir),
        upstream=args.upstream,
        gateway_port=args.port,
        mock_latency_ms=args.mock_latency_ms,
        redis_url=args.redis_url,
        backend=args.backend,
        supervised=True,  # a tier that exits is restarted, as its pod would be
    )
    cluster.start()
    upstream = "the mock provider" if args.upstream == "mock" else (args.upstream or "DEJA_UPSTREAM_URL / OpenAI")
    cluster.sink("cluster", f"gateway on {cluster.gateway_url}/v1 in front of {upstream}; Ctrl-C stops")
    cluster.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="deja", description="Deja: a verified semantic cache for LLM responses.")
    sub = parser.add_subparsers(dest="command", required=True)

    add_commands(sub)  # serve, config: the runtime's own commands
    cluster = sub.add_parser("cluster", help="run the whole local cluster (what `make run` does)")
    cluster.add_argument("--upstream", help="'mock' for the built-in mock provider, or a provider base URL")
    cluster.add_argument("--port", type=int, default=default_port("gateway"), help="gateway port (default 8080)")
    cluster.add_argument("--state-dir", default=".deja", help="local state: Redis data (default .deja)")
    cluster.add_argument("--redis-url", help="use this Redis instead of starting one")
    cluster.add_argument("--mock-latency-ms", type=int, default=300, help="mock provider latency (default 300)")
    cluster.add_argument(
        "--backend",
        choices=("onnx", "triton"),
        default="onnx",
        help="embedder/verifier models: onnx in process (default) or triton (starts a local Triton, CPU configs)",
    )

    bench = sub.add_parser("bench", help="exact-hit latency and throughput through the gateway")
    bench.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    bench.add_argument("--requests", type=int, default=2000, help="sequential requests per latency row")
    bench.add_argument("--access-log", action="store_true", help="keep the gateway's per-request log line on")
    bench.add_argument(
        "--semantic",
        action="store_true",
        help="only the semantic tier: 100 cached questions as paraphrases, 1/4/16 clients",
    )

    chaos = sub.add_parser("chaos", help="a mixed workload while random tiers are killed and stopped (one JSON line)")
    chaos.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 10 minutes)")
    chaos.add_argument("--rate", type=float, default=20.0, help="requests per second, open loop")
    chaos.add_argument("--tenants", type=int, default=4)
    chaos.add_argument("--warmup", type=float, default=30.0, help="seconds before the first fault (RSS baseline)")
    chaos.add_argument("--fault-every", type=float, default=8.0, help="mean seconds between faults (0: none)")
    chaos.add_argument("--mock-latency-ms", type=int, default=50, help="the mock provider's answer time")
    chaos.add_argument("--backend", choices=("onnx", "triton"), default="onnx")
    chaos.add_argument("--seed", type=int, default=7)
    chaos.add_argument("--state-dir", default=None, help="cluster state and log (default: a fresh temp dir)")

    evaluate = sub.add_parser("eval", help="cosine vs verifier on labeled pairs (AUC, recall at precision)")
    evaluate.add_argument("--pairs", help="TSV (optionally .gz) with text_a, text_b, label: prints one JSON object")
    evaluate.add_argument("--datasets", default="../shared/datasets", help="without --pairs: run every test split")
    evaluate.add_argument("--limit", type=int, default=0, help="sample at most this many pairs per file")
    evaluate.add_argument("--seed", type=int, default=0, help="sampling / workload order seed")
    evaluate.add_argument(
        "--workload",
        help="replay a workload through the real cluster: qqp, checklist, coding or a JSONL file of "
        '{"question", "cluster", "tenant"} lines (prints one JSON object; --limit N: the first N requests)',
    )
    evaluate.add_argument(
        "--max-error", type=float, action="append", help="(--workload) error budget of a deja row; repeatable (0.01)"
    )
    evaluate.add_argument("--judge-noise", type=float, default=0.0, help="(--workload) share of judge verdicts flipped")
    evaluate.add_argument(
        "--judge", choices=("on", "off"), action="append", help="(--workload) only these judge rows (default: both)"
    )

    args = parser.parse_args(argv)
    try:
        if run_command(args):  # serve, config
            return
        if args.command == "cluster":
            _cluster(args)
        elif args.command == "bench" and args.semantic:
            from tools.bench.overload import print_overload
            from tools.bench.semantic import print_semantic, run_semantic_bench

            rows, overloaded = run_semantic_bench(seconds=args.seconds * 2)
            print_semantic(rows)
            print_overload(overloaded)
        elif args.command == "bench":
            from tools.bench.gateway import run_bench

            run_bench(seconds=args.seconds, requests=args.requests, access_log=args.access_log)
        elif args.command == "chaos":
            from tools.chaos import run_chaos

            sys.exit(run_chaos(args))
        elif args.command == "eval" and args.workload:
            from tools.eval.workload import run_eval_workload

            run_eval_workload(args)
        elif args.command == "eval":
            from tools.eval.pairs import run_eval

            run_eval(args.pairs, args.datasets, args.limit, args.seed)
    except ConfigError as exc:
        print(f"deja: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
