"""The gRPC status a Deja service answers with when a dependency of its own failed (e.g. Triton).

A timeout stays a timeout and an outage stays an outage, so the caller's client sees
DEADLINE_EXCEEDED / UNAVAILABLE (and fails open); anything else is the service's own INTERNAL.
"""

from __future__ import annotations

import grpc

from deja.clients.base import DependencyTimeout, DependencyUnavailable


def failure_status(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, DependencyTimeout):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, DependencyUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL
