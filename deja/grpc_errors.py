"""The one mapping from a failure inside a servicer method to the gRPC status its caller sees.

The bootstrap (deja.grpc_server) installs `ErrorMappingInterceptor` on every server, so servicer
methods raise domain errors and never catch to map. A refused request is INVALID_ARGUMENT with its
reason; a dependency that is down or slow stays UNAVAILABLE or DEADLINE_EXCEEDED, so clients fail
open (deja.clients turns those into DependencyUnavailable/DependencyTimeout); anything else is
INTERNAL naming only the operation. Details of a failure stay in the service's log, never in a reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import grpc
import redis.exceptions

from deja.clients.base import DependencyTimeout, DependencyUnavailable
from deja.errors import InvalidRequest, Unavailable
from deja.logs import get_logger

log = get_logger("deja.grpc")

Details = Callable[[BaseException, str], str]  # (exception, what the operation's failure reads) -> details


def _own_message(exc: BaseException, failed: str) -> str:
    return str(exc)


def _operation_failed(exc: BaseException, failed: str) -> str:
    return failed


def _fixed(text: str) -> Details:
    return lambda exc, failed: text


# First match wins. Timeouts before outages: a timeout must stay a timeout.
RULES: tuple[tuple[type[BaseException], grpc.StatusCode, Details], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT, _own_message),
    (Unavailable, grpc.StatusCode.UNAVAILABLE, _own_message),
    (redis.exceptions.TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED, _fixed("redis timed out")),
    (redis.exceptions.ConnectionError, grpc.StatusCode.UNAVAILABLE, _fixed("redis unavailable")),
    (DependencyTimeout, grpc.StatusCode.DEADLINE_EXCEEDED, _operation_failed),
    (DependencyUnavailable, grpc.StatusCode.UNAVAILABLE, _operation_failed),
)

# How "the operation failed" reads per service; {op} is the method in snake_case (ListEntries -> list_entries).
FAILED = {
    "deja.v1.StoreService": "{op} failed",
    "deja.v1.SessionService": "session_{op} failed",
    "deja.v1.SemanticIndexService": "semantic index: {op} failed",
    "deja.v1.EmbedderService": "embedding failed",
    "deja.v1.VerifierService": "verification failed",
}

_SKIPPED = ("/grpc.health.", "/grpc.reflection.")


def operation(method: str) -> str:
    """'/deja.v1.StoreService/ListEntries' -> 'list_entries'."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method.rsplit("/", 1)[-1]).lower()


def failed_text(method: str) -> str:
    """What the caller reads when `method` failed for a reason it cannot act on."""
    service = method.strip("/").split("/", 1)[0]
    return FAILED.get(service, "{op} failed").format(op=operation(method))


def failure(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status code and details a failure of `method` answers with."""
    for kind, code, details in RULES:
        if isinstance(exc, kind):
            return code, details(exc, failed_text(method))
    return grpc.StatusCode.INTERNAL, failed_text(method)


def failure_status(exc: BaseException) -> grpc.StatusCode:
    return failure(exc, "")[0]


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Answers every unary RPC's exception with `failure`'s status and logs it (not a refusal)."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        method = details.method
        if handler is None or handler.unary_unary is None or method.startswith(_SKIPPED):
            return handler
        behaviour = handler.unary_unary

        async def mapped(request, context):
            try:
                return await behaviour(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                code, text = failure(exc, method)
                if code == grpc.StatusCode.INTERNAL:
                    log.error("rpc_failed", method=method, error=repr(exc))
                elif code != grpc.StatusCode.INVALID_ARGUMENT:
                    log.warning("rpc_dependency_failed", method=method, code=code.name, error=str(exc),
                                cause=repr(exc.__cause__) if exc.__cause__ else None)  # fmt: skip
                await context.abort(code, text)

        return grpc.unary_unary_rpc_method_handler(
            mapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
