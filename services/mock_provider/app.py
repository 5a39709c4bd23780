"""The mock provider: OpenAI's chat completions wire format, streaming included.

Answers are deterministic in the prompt (the same request always gets the same text), `usage`
is filled, and a configurable latency (default 300 ms) makes hits and misses easy to tell
apart. Tests steer it with request headers:

    x-mock-status: 429|500|...      answer with that error status (the API's error body)
    x-mock-latency-ms: N            override the latency for this request
    x-mock-break-after: N           streaming only: send N chunks, then drop the connection
    x-mock-stream-error-after: N    streaming only: send N chunks, then an in-band error event

Tools offered are called one per turn, in order, until each has a result; then the answer is
text (so a request offering three tools drives a three-step tool loop). `reasoning_effort` adds
`reasoning_content` to the message, as reasoning providers (DeepSeek, vLLM) stream it. A request
for JSON (`response_format` json_object, or "in JSON" in the prompt) gets a JSON answer
(`json_answers.py`).

`POST /v1/messages` speaks Anthropic's Messages format the same way (see `anthropic.py`).

With a workload's ground truth (`DEJA_MOCK_TRUTH`, see `truth.py`), a known question's answer
names its cluster (`[cluster C] Mock answer to ...`), so a served hit shows whose answer it was.
A request whose system prompt carries "Deja cache judge" is a judge call (see `judge.py`): the
answer is "yes" when its two questions share a cluster (or are the same words), else "no",
flipped for a reproducible share of pairs by `DEJA_MOCK_JUDGE_NOISE`. Tests steer the judge with

    POST /mock/judge {"truth": {question: cluster}, "noise": 0.1, "latency_ms": N,
                      "fault": null|"timeout"|"500"|"garbage", "reset": true}   (any subset)
    GET  /mock/judge                the current configuration (truth_size, noise, fault, latency_ms)

`GET /mock/stats` counts the requests each endpoint answered (`chat_completions`, `messages`;
judge calls only under `judge`, with `judge_yes`/`judge_no`; any other path under `unrouted`,
answered with a plain-text 404 as a real provider would), so a test can prove a hit, or a probe of
Deja's own paths, never reached the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping

import blake3
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from services.mock_provider import anthropic
from services.mock_provider import truth as ground_truth
from services.mock_provider.answers import answer_for, cluster_for, digest_words
from services.mock_provider.json_answers import json_text
from services.mock_provider.judge import Judge, Pair, anthropic_pair, openai_pair
from services.mock_provider.wire import completion_chunks, data_line, openai_error


def _error(status: int, message: str, type: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(openai_error(message, type, code), status)


def _prompt(body: dict) -> str:
    last = next((m.get("content") for m in reversed(body["messages"]) if m.get("role") == "user"), "")
    return last if isinstance(last, str) else "(multi-part message)"


def _tool_call_for(body: dict) -> dict | None:
    """With tools offered (and not refused), the mock calls them one per turn, in order, until each
    has a tool result: then it answers in text, as a model finishing a tool loop would."""
    tools = body.get("tools") or []
    step = sum(1 for m in body["messages"] if m.get("role") == "tool")
    if step >= len(tools) or body.get("tool_choice") == "none":
        return None
    name = (tools[step].get("function") or {}).get("name", "tool")
    arguments = orjson.dumps({"query": _prompt(body), "step": step}).decode()
    call_id = "call_" + blake3.blake3(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest(12)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _completion(body: dict, message: dict, finish_reason: str, completion_tokens: int) -> dict:
    prompt_tokens = sum(len(str(m.get("content") or "").split()) + 3 for m in body["messages"])
    return {
        "id": "chatcmpl-mock-" + blake3.blake3(orjson.dumps(message)).hexdigest(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_deja_mock",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def completion_for(body: dict, truth: Mapping[str, str] | None = None) -> dict:
    call = _tool_call_for(body)
    text = None if call else json_text(body, _prompt(body)) or answer_for(body, _prompt(body), cluster_for(body, truth))
    message = {"role": "assistant", "content": text, "refusal": None}
    if body.get("reasoning_effort"):
        message["reasoning_content"] = f"Thinking about {_prompt(body)[:60]!r}: " + digest_words(body, 10) + "."
    if call:
        message["tool_calls"] = [call]
    completion_tokens = len((text or call["function"]["arguments"]).split())
    return _completion(body, message, "tool_calls" if call else "stop", completion_tokens)


def judge_completion(body: dict, text: str) -> dict:
    """A judge's verdict: a bare one-word answer, as a real model gives under max_tokens 3."""
    return _completion(body, {"role": "assistant", "content": text, "refusal": None}, "stop", len(text.split()))


async def _judge_pair(request: Request, pair_of: Callable[[object], Pair | None]) -> Pair | None:
    """Classify before answering, so judge calls never count as answers (tests rely on that)."""
    try:
        return pair_of(orjson.loads(await request.body()))
    except orjson.JSONDecodeError:
        return None


def create_app(
    *,
    latency_ms: int,
    models: list[str],
    truth: Mapping[str, str] | None = None,
    judge_noise: float = 0.0,
    judge_latency_ms: int = 0,
) -> Starlette:
    """`truth`: question -> cluster; `judge_latency_ms` -1 gives judge calls the normal latency."""
    calls: Counter[str] = Counter()
    judge = Judge(truth=truth or {}, noise=judge_noise, latency_ms=judge_latency_ms, counts=calls)

    async def chat_completions(request: Request) -> Response:
        pair = await _judge_pair(request, openai_pair)
        calls["chat_completions" if pair is None else "judge"] += 1
        headers = request.headers
        if "authorization" not in headers:
            return _error(401, "You didn't provide an API key.", "invalid_request_error", "missing_api_key")
        normal_ms = latency_ms if pair is None else judge.latency(latency_ms)
        await asyncio.sleep(int(headers.get("x-mock-latency-ms", normal_ms)) / 1000)
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
        if pair is None:
            completion = completion_for(body, ground_truth.Scoped(judge.truth, ground_truth.tenant_of(headers)))
        elif judge.fault == "500":
            return _error(500, "mock judge fault: 500", "server_error")
        else:
            completion = judge_completion(body, await judge.reply(pair, ground_truth.tenant_of(headers)))
        if not body.get("stream"):
            return JSONResponse(completion)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        break_after = int(headers.get("x-mock-break-after", -1))
        error_after = int(headers.get("x-mock-stream-error-after", -1))

        async def stream():
            for i, chunk in enumerate(completion_chunks(completion, include_usage)):
                if i == break_after:
                    raise ConnectionResetError("mock provider: stream broken on purpose")
                if i == error_after:
                    yield data_line(openai_error("overloaded", "server_error"))
                    return
                yield chunk
                await asyncio.sleep(0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def list_models(request: Request) -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "deja-mock"} for m in models]
        return JSONResponse({"object": "list", "data": data})

    async def messages(request: Request) -> Response:
        pair = await _judge_pair(request, anthropic_pair)
        calls["messages" if pair is None else "judge"] += 1
        return await anthropic.messages(request, latency_ms=latency_ms, models=models, judge=judge, pair=pair)

    async def stats(request: Request) -> Response:
        return JSONResponse(dict(calls))

    async def unrouted(request: Request) -> Response:
        calls["unrouted"] += 1
        return PlainTextResponse("Not Found", status_code=404)

    async def judge_config(request: Request) -> Response:
        if request.method == "POST":
            try:
                judge.configure(orjson.loads(await request.body()))
            except ValueError as exc:  # orjson.JSONDecodeError included
                return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(judge.describe())

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/mock/stats", stats, methods=["GET"]),
            Route("/mock/judge", judge_config, methods=["GET", "POST"]),
            Route("/healthz", lambda r: JSONResponse({"status": "ok"}), methods=["GET"]),
            Route("/{path:path}", unrouted, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )
