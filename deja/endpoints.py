"""Where each service listens by default, and the one declaration of each `DEJA_*_PORT` / `DEJA_*_ADDR`.

A service's settings declare its port with `port_setting`, a caller's settings declare the callee's
address with `addr_setting`, so a default port is written once (here) and a variable shared by two
settings classes (the store's address: the gateway and session memory) is declared once. The Helm
chart's values.yaml repeats these ports; tests/test_k8s_chart.py holds it to this table.
"""

from __future__ import annotations

from typing import Any

from deja.settings import setting

# service -> (variable prefix, default port, default Prometheus port (0: /metrics on the main port), what)
SERVICES: dict[str, tuple[str, int, int, str]] = {
    "store": ("DEJA_STORE", 50051, 9151, "the store service (L1)"),
    "embedder": ("DEJA_EMBEDDER", 50052, 9152, "the embedder service"),
    "semantic-index": ("DEJA_SEMANTIC", 50053, 9153, "the semantic index service"),
    "verifier": ("DEJA_VERIFIER", 50054, 9154, "the verifier service"),
    "gateway": ("DEJA_GATEWAY", 8080, 0, "the gateway (HTTP)"),
}
TRITON_GRPC_PORT = 8001  # a local Triton's gRPC endpoint (tools.triton_server, the triton backends)
TRITON_HTTP_PORT = 8000


def default_port(service: str) -> int:
    return SERVICES[service][1]


def default_metrics_port(service: str) -> int:
    return SERVICES[service][2]


def default_addr(service: str) -> str:
    return f"127.0.0.1:{default_port(service)}"


def port_setting(service: str) -> Any:
    """The service's own listening port: `DEJA_<SERVICE>_PORT`."""
    prefix, port, _, what = SERVICES[service]
    kind = "HTTP" if service == "gateway" else "gRPC"
    return setting(f"{prefix}_PORT", port, f"{kind} port of {what}", minimum=1)


def metrics_port_setting(service: str) -> Any:
    """The service's Prometheus port: `DEJA_<SERVICE>_METRICS_PORT` (0: off)."""
    prefix, _, metrics, what = SERVICES[service]
    return setting(f"{prefix}_METRICS_PORT", metrics, f"Prometheus /metrics port of {what} (0: off)", minimum=0)


def addr_setting(service: str) -> Any:
    """Where a caller reaches the service: `DEJA_<SERVICE>_ADDR` (host:port)."""
    prefix, _, _, what = SERVICES[service]
    return setting(f"{prefix}_ADDR", default_addr(service), f"host:port of {what}")
