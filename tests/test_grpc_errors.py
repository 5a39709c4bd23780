"""The one mapping from a servicer's exception to the gRPC status its caller sees (deja.grpc_errors)."""

import grpc
import pytest
import redis.exceptions

from deja.clients.base import BadRequest, DependencyTimeout, DependencyUnavailable
from deja.errors import InvalidRequest, Unavailable
from deja.grpc_errors import ErrorMappingInterceptor, failed_text, failure, operation
from services.semantic_index.backend import BackendUnavailable
from services.store.entries import InvalidFilter
from services.store.observations import InvalidObservation
from services.store.sessions.locks import SessionBusy
from tools.cluster import free_port

C = grpc.StatusCode
STORE = "/deja.v1.StoreService/ListEntries"


@pytest.mark.parametrize(
    ("exc", "code", "details"),
    [
        (InvalidRequest("tenant must be"), C.INVALID_ARGUMENT, "tenant must be"),
        (InvalidFilter("entry_id must be"), C.INVALID_ARGUMENT, "entry_id must be"),
        (InvalidObservation("counters"), C.INVALID_ARGUMENT, "counters"),
        (BackendUnavailable("qdrant unavailable"), C.UNAVAILABLE, "qdrant unavailable"),
        (SessionBusy("session busy"), C.UNAVAILABLE, "session busy"),
        (Unavailable("closed"), C.UNAVAILABLE, "closed"),
        (redis.exceptions.TimeoutError("slow"), C.DEADLINE_EXCEEDED, "redis timed out"),
        (redis.exceptions.ConnectionError("refused"), C.UNAVAILABLE, "redis unavailable"),
        (DependencyTimeout("triton slow"), C.DEADLINE_EXCEEDED, "list_entries failed"),
        (DependencyUnavailable("triton down"), C.UNAVAILABLE, "list_entries failed"),
        (BadRequest("a bug of ours"), C.INTERNAL, "list_entries failed"),
        (ValueError("secret detail"), C.INTERNAL, "list_entries failed"),
    ],
)
def test_each_failure_has_one_status_and_details(exc, code, details):
    assert failure(exc, STORE) == (code, details)


def test_the_operation_failed_text_keeps_each_services_wording():
    assert operation("/deja.v1.StoreService/CountMisses") == "count_misses"
    assert failed_text("/deja.v1.StoreService/RecordObservation") == "record_observation failed"
    assert failed_text("/deja.v1.SessionService/Append") == "session_append failed"
    assert failed_text("/deja.v1.SemanticIndexService/DropTenant") == "semantic index: drop_tenant failed"
    assert failed_text("/deja.v1.EmbedderService/Embed") == "embedding failed"
    assert failed_text("/deja.v1.VerifierService/Verify") == "verification failed"


async def test_the_interceptor_answers_a_raised_error_with_its_status():
    async def refuse(request, context):
        raise InvalidRequest(request.decode())

    async def crash(request, context):
        raise RuntimeError("a stack trace nobody should see")

    async def abort(request, context):
        await context.abort(C.FAILED_PRECONDITION, "aborted by hand")

    async def echo(request, context):
        return request

    handlers = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in
                {"Refuse": refuse, "Crash": crash, "Abort": abort, "Echo": echo}.items()}  # fmt: skip
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("deja.v1.StoreService", handlers),))
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:

            async def call(method: str) -> tuple[C, str] | bytes:
                try:
                    return await channel.unary_unary(f"/deja.v1.StoreService/{method}")(b"k must be at least 1")
                except grpc.aio.AioRpcError as exc:
                    return exc.code(), exc.details()

            assert await call("Echo") == b"k must be at least 1"
            assert await call("Refuse") == (C.INVALID_ARGUMENT, "k must be at least 1")
            assert await call("Crash") == (C.INTERNAL, "crash failed")
            assert await call("Abort") == (C.FAILED_PRECONDITION, "aborted by hand")
    finally:
        await server.stop(0)
