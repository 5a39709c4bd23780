"""Micro-batching: concurrent embed calls share one model run.

One model run over 32 short texts costs a few times one run over one text, so under load
coalescing calls multiplies throughput. A batch opens when a call arrives, waits up to
`window_ms` for more (or until `max_batch` texts are queued), then runs in a worker thread:
ONNX Runtime releases the GIL, so the event loop keeps accepting calls for the next batch
while this one computes. One worker, because one run already uses every core it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Histogram

from deja.logs import get_logger
from deja.metrics import LATENCY_BUCKETS
from services.embedder.base import EmbeddingBackend

log = get_logger("deja.embedder")
_tracer = trace.get_tracer("deja.embedder")

BATCH_TEXTS = Histogram("deja_embedder_batch_texts", "texts per model run", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
QUEUE_SECONDS = Histogram(
    "deja_embedder_queue_seconds", "wait of one call before its batch ran", buckets=LATENCY_BUCKETS
)
INFERENCE_SECONDS = Histogram(
    "deja_embedder_inference_seconds", "time of one model run (one batch)", buckets=LATENCY_BUCKETS
)


@dataclass
class _Call:
    texts: list[str]
    future: asyncio.Future[np.ndarray]
    # The caller's trace context: the batch's inference span is a child of its first call's span
    # and links to the others, so every caller's trace shows the model run it waited for.
    context: otel_context.Context = field(default_factory=otel_context.get_current)
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, backend: EmbeddingBackend, *, window_ms: float = 2.0, max_batch: int = 64) -> None:
        self._backend = backend
        self._window_s = window_ms / 1000
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deja-embed")
        self._queue: asyncio.Queue[_Call] = asyncio.Queue()
        self._carry: _Call | None = None  # a call that did not fit the last batch opens the next
        self._worker: asyncio.Task[None] | None = None
        # counters, read by tests and logs
        self.calls = 0  # embed() calls
        self.batches = 0  # model runs
        self.texts = 0  # texts sent to the model
        self.largest_batch = 0

    @property
    def healthy(self) -> bool:
        return self._worker is None or not self._worker.done()

    async def embed(self, texts: list[str]) -> np.ndarray:
        """float32 [len(texts), dim] for this caller's texts, in order, computed with whoever else is waiting."""
        if not texts:
            return np.empty((0, self._backend.info.dimension), dtype=np.float32)
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="deja-embed-batcher")
        elif self._worker.done():
            raise RuntimeError("embedding batcher is closed")
        self.calls += 1
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Call(list(texts), future))
        return await future

    async def _collect(self) -> list[_Call]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], len(first.texts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._window_s
        while size < self._max_batch:
            try:
                remaining = deadline - loop.time()
                if remaining <= 0:  # past the window, still take what is already queued (backlog of the last run)
                    call = self._queue.get_nowait()
                else:
                    call = await asyncio.wait_for(self._queue.get(), remaining)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if size + len(call.texts) > self._max_batch:
                self._carry = call
                break
            batch.append(call)
            size += len(call.texts)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [call for call in await self._collect() if not call.future.done()]  # drop cancelled callers
            if not batch:
                continue
            texts = [text for call in batch for text in call.texts]
            started = time.perf_counter()
            for call in batch:
                QUEUE_SECONDS.observe(started - call.queued_at)
            BATCH_TEXTS.observe(len(texts))
            try:
                vectors = await loop.run_in_executor(self._executor, self._infer, batch, texts)
                INFERENCE_SECONDS.observe(time.perf_counter() - started)
            except asyncio.CancelledError:
                for call in batch:  # closed mid-run: nobody may wait forever
                    if not call.future.done():
                        call.future.set_exception(RuntimeError("embedding batcher closed"))
                raise
            except Exception as exc:
                log.error("embed_failed", texts=len(texts), error=repr(exc))
                for call in batch:
                    if not call.future.done():
                        call.future.set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(texts)
            self.largest_batch = max(self.largest_batch, len(texts))
            start = 0
            for call in batch:
                end = start + len(call.texts)
                if not call.future.done():
                    call.future.set_result(vectors[start:end])
                start = end

    def _infer(self, batch: list[_Call], texts: list[str]) -> np.ndarray:
        """On the worker thread: one model run inside the first caller's trace context."""
        links = [trace.Link(trace.get_current_span(call.context).get_span_context()) for call in batch[1:]]
        token = otel_context.attach(batch[0].context)
        try:
            attributes = {"deja.batch_texts": len(texts), "deja.batch_calls": len(batch)}
            with _tracer.start_as_current_span("embedder.infer", links=links, attributes=attributes):
                return self._backend.embed(texts)
        finally:
            otel_context.detach(token)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        pending = [self._carry] if self._carry else []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for call in pending:
            if not call.future.done():
                call.future.set_exception(RuntimeError("embedding batcher closed"))
        self._executor.shutdown(wait=True)
