"""Typed clients for the Deja gRPC services, built for failing open.

One long-lived channel per process, a deadline on every call, and a small circuit breaker:
after a run of failures the client stops calling for a cool-down and answers "unavailable"
at once, so a dead dependency costs the request path nothing instead of a timeout each.
Errors surface as `DependencyError` subclasses; callers decide what failing open means.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deja import telemetry
from deja.logs import get_logger

R = TypeVar("R")
log = get_logger("deja.clients")


class DependencyError(Exception):
    """A Deja dependency did not answer usefully."""


class DependencyUnavailable(DependencyError):
    """Down, refused, or skipped by the open circuit breaker."""


class CircuitOpen(DependencyUnavailable):
    """Not called: the client's circuit breaker is open. The breaker logged when it opened, so a caller
    failing open logs this at debug (`failed_open`), not once per request for the whole outage."""


class DependencyTimeout(DependencyError):
    """Did not answer within its deadline."""


class BadRequest(DependencyError):
    """The service rejected the request as malformed (a bug on our side, never retried)."""


def failed_open(logger, event: str, exc: BaseException, **fields) -> None:
    """Log that a dependency failed and the request went on without it: a warning, except for a call
    the open breaker skipped (debug), which would otherwise be a line per request for the outage."""
    (logger.debug if isinstance(exc, CircuitOpen) else logger.warning)(
        event, error=str(exc) or type(exc).__name__, **fields
    )


class CircuitBreaker:
    """Open after `threshold` consecutive failures; let one call through every `cooldown_s`. Logs
    when it opens and when it closes again (`name`: what it guards, set by the client that owns it)."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 2.0, name: str = "") -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.name = name
        self._failures = 0
        self._open_until = 0.0

    def allow(self) -> bool:
        if self._failures < self.threshold:
            return True
        now = time.monotonic()
        if now >= self._open_until:
            self._open_until = now + self.cooldown_s  # half-open: this one call probes
            return True
        return False

    def record(self, ok: bool) -> None:
        if ok:
            if self.is_open:
                log.info("circuit_closed", dependency=self.name)
            self._failures = 0
        else:
            self._failures += 1
            if self._failures == self.threshold:
                log.warning("circuit_opened", dependency=self.name, failures=self._failures, cooldown_s=self.cooldown_s)
            if self._failures >= self.threshold:
                self._open_until = time.monotonic() + self.cooldown_s

    @property
    def is_open(self) -> bool:
        return self._failures >= self.threshold


class GrpcClient:
    """Channel + deadline + breaker + error translation, shared by every typed client."""

    def __init__(self, addr: str, *, timeout_s: float, breaker: CircuitBreaker | None = None) -> None:
        self.addr = addr
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker()
        self.breaker.name = self.breaker.name or addr
        self.channel = grpc.aio.insecure_channel(
            addr, options=[("grpc.enable_retries", 0)], interceptors=telemetry.client_interceptors()
        )
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def call(self, method: Callable[..., Awaitable[R]], request, timeout_s: float | None = None) -> R:
        if not self.breaker.allow():
            raise CircuitOpen(f"{self.addr}: circuit open")
        try:
            reply = await method(request, timeout=timeout_s or self.timeout_s)
        except asyncio.CancelledError:
            # The caller's own deadline (the semantic lookup's budget, which equals this call's) ran
            # out first: to the breaker that is a failure like a DEADLINE_EXCEEDED, or a hung tier
            # would never open it and every request would wait out the budget.
            self.breaker.record(False)
            raise
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                self.breaker.record(True)  # the service is fine; the request was not
                raise BadRequest(exc.details()) from None
            self.breaker.record(False)
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise DependencyTimeout(f"{self.addr}: {exc.details()}") from None
            raise DependencyUnavailable(f"{self.addr}: {code.name} {exc.details()}") from None
        self.breaker.record(True)
        return reply

    async def serving(self, service: str = "", timeout_s: float = 0.5) -> bool:
        """The standard gRPC health check (the same one Kubernetes probes)."""
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.channel.close()
