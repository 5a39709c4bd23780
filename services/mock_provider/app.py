"""The mock provider: OpenAI's chat completions wire format, streaming included.

Answers are deterministic in the prompt (the same request always gets the same text), `usage`
is filled, and a configurable latency (default 300 ms) makes hits and misses easy to tell
apart. Tests steer it with request headers:

    x-mock-status: 429|500|...   answer with that error status (OpenAI error body)
    x-mock-latency-ms: N         override the latency for this request
    x-mock-break-after: N        streaming only: send N chunks, then drop the connection

`GET /mock/stats` counts the chat completions it answered, so a test can prove a hit never
reached the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import blake3
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.gateway.sse import replay_chunks

VOCABULARY = (
    "cache entries verify intent before serving answers agents reuse responses latency drops while "
    "providers bill only misses embeddings compare meaning tokens stream quickly"
).split()


def _error(status: int, message: str, type: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": None, "code": code}}, status)


def answer_for(body: dict) -> str:
    """Deterministic text derived from the whole request."""
    digest = blake3.blake3(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest(32)
    words = [VOCABULARY[b % len(VOCABULARY)] for b in digest[:24]]
    last = next((m.get("content") for m in reversed(body["messages"]) if m.get("role") == "user"), "")
    prompt = last if isinstance(last, str) else "(multi-part message)"
    return f"Mock answer to {prompt[:200]!r}: " + " ".join(words) + "."


def _tool_call_for(body: dict) -> dict | None:
    """With tools offered (and not refused), the mock calls the first one, unless the last turn is
    already a tool result: then it answers in text, as a model finishing a tool loop would."""
    tools = body.get("tools") or []
    if not tools or body.get("tool_choice") == "none" or body["messages"][-1].get("role") == "tool":
        return None
    name = (tools[0].get("function") or {}).get("name", "tool")
    last = body["messages"][-1].get("content")
    arguments = orjson.dumps({"query": last if isinstance(last, str) else ""}).decode()
    call_id = "call_" + blake3.blake3(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest(12)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion_for(body: dict) -> dict:
    call = _tool_call_for(body)
    text = None if call else answer_for(body)
    message = {"role": "assistant", "content": text, "refusal": None}
    if call:
        message["tool_calls"] = [call]
    prompt_tokens = sum(len(str(m.get("content") or "").split()) + 3 for m in body["messages"])
    completion_tokens = len((text or call["function"]["arguments"]).split())
    return {
        "id": "chatcmpl-mock-" + blake3.blake3(orjson.dumps(message)).hexdigest(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_deja_mock",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if call else "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def create_app(*, latency_ms: int, models: list[str]) -> Starlette:
    calls: Counter[str] = Counter()

    async def chat_completions(request: Request) -> Response:
        calls["chat_completions"] += 1
        headers = request.headers
        if "authorization" not in headers:
            return _error(401, "You didn't provide an API key.", "invalid_request_error", "missing_api_key")
        await asyncio.sleep(int(headers.get("x-mock-latency-ms", latency_ms)) / 1000)
        if "x-mock-status" in headers:
            status = int(headers["x-mock-status"])
            return _error(
                status,
                f"mock provider error {status}",
                "server_error" if status >= 500 else "invalid_request_error",
            )
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if body.get("model") not in models:
            return _error(
                404,
                f"The model `{body.get('model')}` does not exist.",
                "invalid_request_error",
                "model_not_found",
            )
        completion = completion_for(body)
        if not body.get("stream"):
            return JSONResponse(completion)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        break_after = int(headers.get("x-mock-break-after", -1))

        async def stream():
            for i, chunk in enumerate(replay_chunks(completion, include_usage)):
                if i == break_after:
                    raise ConnectionResetError("mock provider: stream broken on purpose")
                yield chunk
                await asyncio.sleep(0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def list_models(request: Request) -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "deja-mock"} for m in models]
        return JSONResponse({"object": "list", "data": data})

    async def stats(request: Request) -> Response:
        return JSONResponse(dict(calls))

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/mock/stats", stats, methods=["GET"]),
            Route("/healthz", lambda r: JSONResponse({"status": "ok"}), methods=["GET"]),
        ]
    )
