"""gRPC face of the verifier: validates, scores in a worker thread, returns verdicts in order.

Inference runs on one dedicated worker thread: the event loop stays free for health checks
and new calls, and concurrent requests queue for the model instead of oversubscribing the
cores that ONNX Runtime's own intra-op threads already use. Failures are raised, not mapped here:
the bootstrap's one mapping (deja.grpc_errors) answers a refused call with INVALID_ARGUMENT, a
scorer dependency timing out or down with DEADLINE_EXCEEDED / UNAVAILABLE, and anything else
with INTERNAL ("verification failed").
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace
from prometheus_client import Histogram

from deja.errors import InvalidRequest
from deja.logs import get_logger
from deja.metrics import LATENCY_BUCKETS
from deja.v1 import verifier_pb2, verifier_pb2_grpc
from services.verifier.scorer import PairScorer

log = get_logger("deja.verifier")
_tracer = trace.get_tracer("deja.verifier")

SCORES = Histogram(
    "deja_verifier_score", "probability of same intent, per verified candidate", buckets=[i / 10 for i in range(11)]
)
SCORE_SECONDS = Histogram("deja_verifier_score_seconds", "model time of one Verify call", buckets=LATENCY_BUCKETS)


class VerifierServicer(verifier_pb2_grpc.VerifierServiceServicer):
    def __init__(self, scorer: PairScorer, *, max_candidates: int, max_text_chars: int) -> None:
        self._scorer = scorer
        self._max_candidates = max_candidates
        self._max_text_chars = max_text_chars
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verifier-infer")

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _problem(self, request: verifier_pb2.VerifyRequest) -> str | None:
        if not request.query.strip():
            return "query is empty"
        if len(request.candidates) > self._max_candidates:
            return f"{len(request.candidates)} candidates; at most {self._max_candidates} per request"
        if len(request.query) > self._max_text_chars:
            return f"query is {len(request.query)} characters; at most {self._max_text_chars}"
        for i, candidate in enumerate(request.candidates):
            if not candidate.prompt.strip():
                return f"candidates[{i}].prompt is empty"
            if len(candidate.prompt) > self._max_text_chars:
                return f"candidates[{i}].prompt is {len(candidate.prompt)} characters; at most {self._max_text_chars}"
        return None

    async def Verify(self, request, context):
        problem = self._problem(request)
        if problem:
            raise InvalidRequest(problem)
        if not request.candidates:
            return verifier_pb2.VerifyResponse(model=self._scorer.info)
        prompts = [c.prompt for c in request.candidates]
        started = time.perf_counter()
        probabilities = await asyncio.get_running_loop().run_in_executor(
            self._worker, contextvars.copy_context().run, self._score, request.query, prompts
        )
        elapsed = time.perf_counter() - started
        SCORE_SECONDS.observe(elapsed)
        for p in probabilities:
            SCORES.observe(float(p))
        log.debug("verified", candidates=len(prompts), ms=round(elapsed * 1000, 2))
        verdicts = [
            verifier_pb2.Verdict(entry_id=c.entry_id, probability=float(p))
            for c, p in zip(request.candidates, probabilities, strict=True)
        ]
        return verifier_pb2.VerifyResponse(verdicts=verdicts, model=self._scorer.info)

    def _score(self, query: str, prompts: list[str]):
        """On the worker thread, inside the caller's trace context (copied in), as a child span."""
        with _tracer.start_as_current_span("verifier.score", attributes={"deja.candidates": len(prompts)}):
            return self._scorer.score(query, prompts)

    async def Info(self, request, context):
        return self._scorer.info
