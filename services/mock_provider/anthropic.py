"""The mock provider's Anthropic Messages endpoint (`POST /v1/messages`), in Anthropic's wire format.

Like the OpenAI side: deterministic answers, `usage` filled, the same fault-injection headers
(x-mock-status, x-mock-latency-ms, x-mock-break-after, x-mock-stream-error-after). Tools offered
are called one per turn, in order (text + tool_use block, stop_reason "tool_use"), until each has
a tool_result; `thinking: {"type": "enabled"}` adds a signed thinking block first. A known workload
question is answered with its cluster, and a judge call (see `judge.py`) gets "yes"/"no".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import blake3
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from services.mock_provider import truth as ground_truth
from services.mock_provider.answers import answer_for, cluster_for, digest_words
from services.mock_provider.json_answers import json_text
from services.mock_provider.judge import Judge, Pair
from services.mock_provider.wire import anthropic_error, anthropic_error_event, anthropic_error_type, message_events


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse(anthropic_error(anthropic_error_type(status), message), status)


def _prompt(messages: list[dict]) -> str | None:
    """The last user turn's text when it is all text (a turn with tool results or images has none)."""
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
    content = None if last is None else last.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "\n".join(str(p.get("text")) for p in content)
    return content if isinstance(content, str) else None


def _tool_results(messages: list[dict]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m.get("content"), list)
        for block in m["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    )


def _digest(body: dict) -> str:
    return blake3.blake3(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest(12)


def _message(body: dict, content: list[dict], stop_reason: str, output_tokens: int) -> dict:
    input_tokens = sum(len(str(m.get("content") or "").split()) + 3 for m in body["messages"])
    return {
        "id": "msg_mock_" + _digest(body),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        },
    }


def judge_message(body: dict, text: str) -> dict:
    """A judge's verdict: one short text block, as a real model answers under max_tokens 3."""
    return _message(body, [{"type": "text", "text": text}], "end_turn", len(text.split()))


def message_for(body: dict, truth: Mapping[str, str] | None = None) -> dict:
    prompt = _prompt(body["messages"]) or "(tool results)"
    digest = _digest(body)
    tools = body.get("tools") or []
    step = _tool_results(body["messages"])
    content: list[dict] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        thinking = "The user asks: " + prompt[:80] + ". " + digest_words(body, 12) + "."
        content.append({"type": "thinking", "thinking": thinking, "signature": "sig_" + digest})
    calls_tool = step < len(tools) and (body.get("tool_choice") or {}).get("type") != "none"
    if calls_tool:
        name = tools[step].get("name", "tool")
        content.append({"type": "text", "text": f"I'll use {name} for this."})
        content.append({"type": "tool_use", "id": "toolu_" + digest, "name": name, "input": {"query": prompt}})
    else:
        text = json_text(body, prompt) or answer_for(body, prompt, cluster_for(body, truth))
        content.append({"type": "text", "text": text})
    output_tokens = sum(len(str(block).split()) for block in content)
    return _message(body, content, "tool_use" if calls_tool else "end_turn", output_tokens)


async def messages(
    request: Request, *, latency_ms: int, models: list[str], judge: Judge | None = None, pair: Pair | None = None
) -> Response:
    """`pair`: the two questions when this is a judge call (the app classifies requests to count them)."""
    headers = request.headers
    if "x-api-key" not in headers and "authorization" not in headers:
        return error(401, "x-api-key header is required")
    if pair is not None and judge is not None:
        latency_ms = judge.latency(latency_ms)
    await asyncio.sleep(int(headers.get("x-mock-latency-ms", latency_ms)) / 1000)
    if "x-mock-status" in headers:
        status = int(headers["x-mock-status"])
        return error(status, f"mock provider error {status}")
    if "anthropic-version" not in headers:
        return error(400, "anthropic-version: header is required")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return error(400, "There was an error parsing the body of your request")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return error(400, "messages: field required")
    if not isinstance(body.get("max_tokens"), int):
        return error(400, "max_tokens: field required")
    if body.get("model") not in models:
        return error(404, f"model: {body.get('model')}")
    if pair is not None and judge is not None:
        if judge.fault == "500":
            return error(500, "mock judge fault: 500")
        message = judge_message(body, await judge.reply(pair, ground_truth.tenant_of(headers)))
    else:
        message = message_for(
            body, ground_truth.Scoped(judge.truth, ground_truth.tenant_of(headers)) if judge else None
        )
    if not body.get("stream"):
        return JSONResponse(message)
    break_after = int(headers.get("x-mock-break-after", -1))
    error_after = int(headers.get("x-mock-stream-error-after", -1))

    async def stream():
        for i, chunk in enumerate(message_events(message)):
            if i == break_after:
                raise ConnectionResetError("mock provider: stream broken on purpose")
            if i == error_after:
                yield anthropic_error_event("overloaded_error", "Overloaded")
                return
            yield chunk
            await asyncio.sleep(0)

    return StreamingResponse(stream(), media_type="text/event-stream")
