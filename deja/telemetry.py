"""OpenTelemetry tracing for every Deja process, configured only from the standard `OTEL_*` env.

`init(service)` runs once at start-up. With no OTLP endpoint configured (or with
`OTEL_SDK_DISABLED=true` / `OTEL_TRACES_EXPORTER=none`) it installs nothing: the API stays
the no-op proxy, no interceptor is added to any channel or server, and nothing is exported.
With an endpoint it installs the SDK (resource from `OTEL_SERVICE_NAME` /
`OTEL_RESOURCE_ATTRIBUTES`, sampler from `OTEL_TRACES_SAMPLER[_ARG]`, batch export over OTLP
gRPC) and instruments the libraries that cross a process boundary: gRPC (client and server,
context carried in metadata; health checks and reflection are not traced), redis and httpx.

Domain attributes use the `deja.` prefix (`deja.tier`, `deja.outcome`, `deja.similarity`,
`deja.verifier_score`, `deja.candidates`, `deja.tenant`, `deja.model`); the tenant is the
hash the store uses, never the API key.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace

_state: dict[str, Any] = {"enabled": False, "provider": None}


def _wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def enabled() -> bool:
    return _state["enabled"]


def init(service: str) -> bool:
    """Configure tracing for this process (idempotent). Returns whether spans are exported."""
    if _state["provider"] is not None or not _wanted():
        return _state["enabled"]
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Explicit attributes beat the env in Resource.create, so name the service only when the
    # operator did not (OTEL_SERVICE_NAME, or service.name inside OTEL_RESOURCE_ATTRIBUTES).
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {SERVICE_NAME: f"deja-{service}"})
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER, default parentbased_always_on
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _state.update(enabled=True, provider=provider)
    return True


def shutdown() -> None:
    """Flush and stop the exporter (spans of the last requests are not lost on SIGTERM)."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
        _state.update(enabled=False, provider=None)


def _untraced():
    from opentelemetry.instrumentation.grpc import filters

    # Probes and reflection run every few seconds and say nothing about a request.
    return filters.negate(filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection")))


def server_interceptors() -> list:
    if not _state["enabled"]:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=_untraced())]


def client_interceptors() -> list:
    if not _state["enabled"]:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(filter_=_untraced()))


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def annotate(**attributes: Any) -> None:
    """Set `deja.<name>` attributes on the current span (no-op when not recording)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    for name, value in attributes.items():
        if value is not None:
            span.set_attribute(f"deja.{name}", value)


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span as Jaeger shows them (32 / 16 hex), or None."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
