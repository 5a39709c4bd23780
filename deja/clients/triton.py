"""A thin wrapper around one model on a Triton server, shared by the embedder and the verifier.

One long-lived `tritonclient.grpc` client per process, a deadline on every call, tritonclient's
errors translated into the project's own exceptions (so the services can map them to gRPC status
codes and the gateway fails open), the caller's trace context injected into every request and
each inference wrapped in a `triton.infer` span. Blocking: call it from a worker thread.
"""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as grpcclient
from opentelemetry import propagate, trace
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from deja.clients.base import DependencyError, DependencyTimeout, DependencyUnavailable
from deja.settings import ConfigError

_MAX_MESSAGE = 2**31 - 1  # tritonclient's own default: batches of long texts exceed gRPC's 4 MiB
# After Triton restarts, reconnect within a second instead of gRPC's default backoff (up to 120 s).
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]
VERSION_PARAMETER = "deja_model_version"  # written into config.pbtxt by deploy/triton/prepare_repository.py


class TritonUnavailable(DependencyUnavailable):
    """Triton is down, unreachable, or does not serve the model."""


class TritonTimeout(DependencyTimeout):
    """Triton did not answer within the call's deadline."""


class TritonBadResponse(DependencyError):
    """Triton answered with an error or without the expected outputs."""


def translate(exc: InferenceServerException, where: str) -> DependencyError:
    status = exc.status() or ""
    message = f"{where}: {status.removeprefix('StatusCode.') or 'error'} {exc.message()}"
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return TritonTimeout(message)
    if status in ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED", "StatusCode.NOT_FOUND"):
        return TritonUnavailable(message)
    return TritonBadResponse(message)


def connect(url: str, model: str, *, timeout_ms: int, tracer: str, setting: str) -> TritonModel:
    """At start-up: the model on its server, or a ConfigError naming `setting` (a message, not a traceback)."""
    try:
        return TritonModel(url, model, timeout_s=timeout_ms / 1000, tracer=tracer)
    except DependencyError as exc:
        raise ConfigError(f"{setting}: {exc}") from None


class TritonModel:
    """`model` on the Triton at `url` (host:port of its gRPC endpoint). Loads the model's config at once."""

    def __init__(self, url: str, model: str, *, timeout_s: float, tracer: str) -> None:
        self.url = url
        self.model = model
        self.timeout_s = timeout_s
        self._where = f"triton {url} model {model!r}"
        self._tracer = trace.get_tracer(tracer)
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)
        try:
            reply = self._client.get_model_config(model, as_json=True, client_timeout=timeout_s)
        except InferenceServerException as exc:
            self._client.close()
            raise translate(exc, self._where) from None
        self.config: dict = reply["config"]
        self.max_batch_size = int(self.config.get("max_batch_size", 0))

    def parameter(self, key: str) -> str | None:
        value = self.config.get("parameters", {}).get(key, {}).get("string_value")
        return value or None

    def version(self, where: str) -> str:
        """The model's `deja_model_version` parameter (written by `make models`): a server without it
        is refused with a ConfigError naming `where`, never guessed at."""
        version = self.parameter(VERSION_PARAMETER)
        if not version:
            raise ConfigError(f"{where} has no {VERSION_PARAMETER!r} parameter in its config (run `make models`)")
        return version

    def input_names(self) -> list[str]:
        return [i["name"] for i in self.config.get("input", [])]

    def output_dims(self, name: str) -> list[int] | None:
        for output in self.config.get("output", []):
            if output["name"] == name:
                return [int(d) for d in output["dims"]]
        return None

    def infer(self, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        """One inference call; `output` of the reply. Raises TritonUnavailable/TritonTimeout/TritonBadResponse."""
        tensors = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        rows = len(next(iter(inputs.values())))
        with self._tracer.start_as_current_span(
            "triton.infer",
            kind=trace.SpanKind.CLIENT,
            attributes={"deja.triton.model": self.model, "deja.triton.rows": rows, "server.address": self.url},
        ):
            headers: dict[str, str] = {}
            propagate.inject(headers)  # W3C traceparent into the gRPC metadata: Triton's trace joins ours
            try:
                result = self._client.infer(
                    self.model,
                    tensors,
                    outputs=[grpcclient.InferRequestedOutput(output)],
                    client_timeout=self.timeout_s,
                    headers=headers,
                )
            except InferenceServerException as exc:
                raise translate(exc, self._where) from None
            values = result.as_numpy(output)
            if values is None or len(values) != rows:
                raise TritonBadResponse(f"{self._where}: reply lacks {rows} rows of {output!r}")
            return values

    def ready(self) -> bool:
        """Triton answers and has the model loaded (blocking; for health probes, off the event loop)."""
        try:
            return bool(self._client.is_model_ready(self.model, client_timeout=min(self.timeout_s, 1.0)))
        except InferenceServerException:
            return False

    def close(self) -> None:
        self._client.close()


class OnTriton:
    """What a backend whose model runs on Triton (`self.model`) answers for health and shutdown."""

    model: TritonModel

    def ready(self) -> bool:
        return self.model.ready()

    def close(self) -> None:
        self.model.close()
