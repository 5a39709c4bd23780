"""The errors a Deja service raises when it refuses a call or cannot reach what it needs.

They live in the library, not in each service, so that one table (deja.grpc_errors) can turn
them into gRPC status codes for every service: a servicer method only raises, it never maps.
"""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The caller sent something the service refuses (INVALID_ARGUMENT); the message is shown to it."""


class Unavailable(RuntimeError):
    """What the service needs is down, closed or busy (UNAVAILABLE); the message is safe to show."""
