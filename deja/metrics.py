"""Prometheus metrics shared by the services: the per-RPC server metrics and the metrics port.

Each gRPC service exposes the default registry on its own port (`DEJA_<SERVICE>_METRICS_PORT`,
0 = off) with `prometheus_client`'s threaded HTTP server, so a scrape never waits on the
event loop. The gateway serves the same registry at `GET /metrics` on its HTTP port.
Service-specific metrics (batch sizes, scores, entries) are declared next to the code that
observes them; names all start with `deja_`.
"""

from __future__ import annotations

import time

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from deja.logs import get_logger

log = get_logger("deja.metrics")

# Buckets from 0.25 ms to 10 s: a cache hop is ~1 ms, a model call ~5-50 ms, an upstream call seconds.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_HANDLED = Counter(
    "deja_grpc_server_handled_total", "RPCs completed by this service, by method and status code", ["method", "code"]
)
GRPC_SECONDS = Histogram(
    "deja_grpc_server_handling_seconds", "time to handle one RPC", ["method"], buckets=LATENCY_BUCKETS
)


def serve(port: int, host: str = "0.0.0.0") -> bool:
    """Expose /metrics on `port` in a daemon thread (port 0: metrics off).

    A port that cannot be bound is logged, not fatal: losing metrics must not take the cache down."""
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("metrics_port_unavailable", port=port, error=str(exc))
        return False
    return True


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary RPC except health checks and reflection."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        if handler is None or handler.unary_unary is None or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        behaviour = handler.unary_unary

        async def observed(request, context):
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                response = await behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN  # context.abort() set it before raising
                raise
            finally:
                GRPC_HANDLED.labels(method, code.name).inc()
                GRPC_SECONDS.labels(method).observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
