"""The one way every Deja gRPC service starts and stops.

`run_grpc_service` binds a `grpc.aio` server, registers the standard health and reflection
services, keeps health in step with the service's own dependency probe, and on SIGTERM or
SIGINT flips every service to NOT_SERVING before stopping with a grace period, so Kubernetes
stops routing to the pod before in-flight calls are cut. It also sets up what every service
shares: tracing from the `OTEL_*` env (deja.telemetry), Prometheus metrics on `metrics_port`, and
one mapping of a servicer's exceptions to gRPC status codes (deja.grpc_errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from deja import metrics, telemetry
from deja.grpc_errors import ErrorMappingInterceptor
from deja.logs import get_logger

log = get_logger("deja.grpc")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

Probe = Callable[[], Awaitable[bool]]


async def _watch_health(
    health: health_aio.HealthServicer, names: Sequence[str], probe: Probe, interval_s: float
) -> None:
    """Mirror the dependency probe into the named services' health; log only on transitions."""
    healthy: bool | None = None
    while True:
        try:
            ok = await probe()
        except Exception:
            ok = False
        if ok != healthy:
            # Only the named services follow the dependency: "" is the process's own liveness, so a
            # Redis/Qdrant outage takes pods out of rotation (readiness) without restarting them.
            for name in names:
                await health.set(name, SERVING if ok else NOT_SERVING)
            (log.info if ok else log.warning)("health_changed", serving=ok)
            healthy = ok
        await asyncio.sleep(interval_s)


async def run_grpc_service(
    *,
    name: str,
    host: str,
    port: int,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    probe: Probe | None = None,
    probe_interval_s: float = 1.0,
    grace_s: float = 5.0,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    metrics_port: int = 0,
) -> None:
    telemetry.init(name)
    metrics.serve(metrics_port, host)
    # Innermost last: the error mapping turns a servicer's exception into its status before metrics
    # and tracing record the call.
    interceptors = [metrics.MetricsInterceptor(), *telemetry.server_interceptors(), ErrorMappingInterceptor()]
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            # Clients keep one long-lived channel; closing connections after a while (gracefully) makes
            # them reconnect through the Service, so pods added by an autoscaler get their share.
            ("grpc.max_connection_age_ms", 30_000),
            ("grpc.max_connection_age_grace_ms", 5_000),
        ],
        interceptors=interceptors,
    )
    register(server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    address = f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"{name}: cannot bind {address}")
    await server.start()
    for svc in ("", *service_names):
        await health.set(svc, SERVING)
    log.info("grpc_started", address=address, metrics_port=metrics_port or None, tracing=telemetry.enabled())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_watch_health(health, service_names, probe, probe_interval_s)) if probe else None

    await stop.wait()
    log.info("grpc_stopping", grace_s=grace_s)
    if watcher:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    await health.enter_graceful_shutdown()
    await server.stop(grace_s)
    if on_stop:
        await on_stop()
    telemetry.shutdown()
    log.info("grpc_stopped")
