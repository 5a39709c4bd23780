#!/usr/bin/env bash
# `make mac-workers`: the embedder and the verifier on this machine with the MLX backend (Metal on
# Apple silicon), listening on every interface so a gateway elsewhere - `make run` on another
# host, or a Kubernetes cluster (components.<name>.externalAddr) - can call them. Ctrl-C stops both.
# Environment: MAC_WORKERS_HOST (default 0.0.0.0), DEJA_EMBEDDER_PORT (50052), DEJA_VERIFIER_PORT
# (50054), and any other DEJA_* setting (e.g. DEJA_EMBEDDING_CACHE_URL).
set -euo pipefail
cd "$(dirname "$0")/../.."
deja=.venv/bin/deja

if [[ "$(uname -s)/$(uname -m)" != Darwin/arm64 ]]; then
    echo "mac-workers: not Apple silicon: MLX runs on the CPU here (mlx[cpu]); fine for trying, slow for serving" >&2
fi
export DEJA_EMBEDDER_BACKEND=mlx DEJA_VERIFIER_BACKEND=mlx
export DEJA_EMBEDDER_HOST=${MAC_WORKERS_HOST:-0.0.0.0} DEJA_VERIFIER_HOST=${MAC_WORKERS_HOST:-0.0.0.0}
embedder_port=${DEJA_EMBEDDER_PORT:-50052}
verifier_port=${DEJA_VERIFIER_PORT:-50054}

pids=()
stop() {
    trap - INT TERM EXIT
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
"$deja" serve embedder &
pids+=($!)
"$deja" serve verifier &
pids+=($!)

host=$(hostname)
cat >&2 <<MSG
mac-workers: embedder on ${DEJA_EMBEDDER_HOST}:${embedder_port}, verifier on ${DEJA_VERIFIER_HOST}:${verifier_port} (MLX)
  a local gateway:   DEJA_EMBEDDER_ADDR=${host}:${embedder_port} DEJA_VERIFIER_ADDR=${host}:${verifier_port} deja serve gateway
  a cluster:         helm upgrade deja deploy/k8s --reuse-values \\
                       --set components.embedder.externalAddr=${host}:${embedder_port} \\
                       --set components.verifier.externalAddr=${host}:${verifier_port}
MSG
# Either one exiting (a bad setting, a port in use) stops the other.
wait -n "${pids[@]}"
