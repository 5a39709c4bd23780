"""Typed clients for the Deja gRPC services, built for failing open.

`base` holds what every client shares (channel, deadline, circuit breaker, error translation);
one module per service holds its typed client.
"""

from deja.clients.base import (
    BadRequest,
    CircuitBreaker,
    CircuitOpen,
    DependencyError,
    DependencyTimeout,
    DependencyUnavailable,
    GrpcClient,
    failed_open,
)
from deja.clients.embedder import EmbedderClient
from deja.clients.semantic_index import SemanticIndexClient
from deja.clients.store import StoreClient
from deja.clients.verifier import VerifierClient

__all__ = [
    "BadRequest",
    "CircuitBreaker",
    "CircuitOpen",
    "DependencyError",
    "DependencyTimeout",
    "DependencyUnavailable",
    "EmbedderClient",
    "GrpcClient",
    "SemanticIndexClient",
    "StoreClient",
    "VerifierClient",
    "failed_open",
]
