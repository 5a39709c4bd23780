"""X-Deja-Format: tauq end to end: the real openai and anthropic SDKs -> gateway -> store, the mock
provider upstream (tool calls; JSON answers via response_format or "in JSON", see
services/mock_provider/json_answers.py). A miss and a hit with the header get Tauq; the same cached
entry without the header is the provider's JSON; streams with the header are refused up front.
The first tests drive services/gateway/compact_answers.py directly."""

import json
import uuid

import anthropic
import httpx
import openai
import orjson
import pytest
from starlette.responses import Response, StreamingResponse

from deja.formats.tauq import loads
from services.gateway.compact_answers import compact, tauq_text
from tests.helpers import sdk, until_hit, upstream_calls

TAUQ = {"X-Deja-Format": "tauq"}
MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
RECORDS = {"results": [{"id": i, "title": f"result {i}"} for i in range(5)], "total": 5}


# -- the transformation ---------------------------------------------------------------------------


def test_whole_json_documents_become_tauq_and_prose_stays():
    assert loads(tauq_text(json.dumps(RECORDS))) == RECORDS
    fenced = tauq_text("```json\n" + json.dumps(RECORDS, indent=2) + "\n```\n")
    assert fenced.startswith("```tauq\n!def Result id title\n") and fenced.endswith("\n```")
    assert loads(fenced.removeprefix("```tauq\n").removesuffix("\n```")) == RECORDS
    for text in ["Plain prose.", "42", '"a string"', "[1, 2", 'Here it is: {"a": 1}', "```python\n[1]\n```", ""]:
        assert tauq_text(text) is None, text


def openai_answer(content=None, arguments=None) -> dict:
    message = {"role": "assistant", "content": content}
    if arguments is not None:
        message["tool_calls"] = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]
    return {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message}], "usage": {}}


def test_openai_answers_convert_arguments_and_json_content_only_when_asked():
    body = orjson.dumps(openai_answer(content=json.dumps(RECORDS), arguments='{"city": "Paris", "days": 3}'))
    asked = compact(Response(body, media_type="application/json"), {"x-deja-format": "TAUQ"}, "openai")
    assert asked.headers["x-deja-format"] == "tauq" and int(asked.headers["content-length"]) == len(asked.body)
    message = orjson.loads(asked.body)["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == "city Paris\ndays 3"
    assert loads(message["content"]) == RECORDS
    plain = compact(Response(body, media_type="application/json"), {}, "openai")
    assert plain.body == body and "x-deja-format" not in plain.headers


@pytest.mark.parametrize(
    "response",
    [
        Response(orjson.dumps(openai_answer(content="Just prose.")), media_type="application/json"),
        Response(orjson.dumps(openai_answer(arguments="{not json")), media_type="application/json"),
        Response(orjson.dumps(openai_answer(content="[1]")), status_code=500, media_type="application/json"),
        Response(b"not json at all", media_type="application/json"),
        StreamingResponse(iter([b"data: {}\n\n"]), media_type="text/event-stream"),
    ],
)
def test_nothing_to_convert_leaves_the_response_as_it_was(response):
    before = getattr(response, "body", None)
    after = compact(response, {"x-deja-format": "tauq"}, "openai")
    assert after is response and getattr(after, "body", None) == before and "x-deja-format" not in after.headers


def test_anthropic_tool_use_input_stays_an_object_and_json_text_blocks_convert():
    answer = {
        "type": "message",
        "content": [
            {"type": "text", "text": json.dumps(RECORDS)},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"query": "q"}},
        ],
    }
    converted = orjson.loads(compact(Response(orjson.dumps(answer)), {"x-deja-format": "tauq"}, "anthropic").body)
    assert loads(converted["content"][0]["text"]) == RECORDS
    assert converted["content"][1] == answer["content"][1]


# -- end to end -----------------------------------------------------------------------------------


def unique(text: str) -> list[dict]:
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex[:8]}]"}]


@pytest.mark.integration
def test_openai_tool_call_arguments_in_tauq_on_a_miss_and_a_hit_and_json_without_the_header(cluster):
    create = sdk(cluster).chat.completions.with_raw_response.create
    tools = [{"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object"}}}]
    request = {"model": MODEL, "messages": unique("Find the cache docs"), "tools": tools}
    miss = create(**request, extra_headers=TAUQ)
    assert miss.headers["x-deja-cache"] == "miss" and miss.headers["x-deja-format"] == "tauq"
    arguments = miss.parse().choices[0].message.tool_calls[0].function.arguments
    assert loads(arguments) == {"query": request["messages"][0]["content"], "step": 0}
    calls = upstream_calls(cluster)

    hit = until_hit(create, **request, extra_headers=TAUQ)
    assert hit.headers["x-deja-cache"] == "hit-exact" and hit.headers["x-deja-format"] == "tauq"
    assert hit.parse().choices[0].message.tool_calls[0].function.arguments == arguments

    plain = create(**request)  # the same entry, as the provider sent it
    assert plain.headers["x-deja-cache"] == "hit-exact" and "x-deja-format" not in plain.headers
    assert plain.headers["x-deja-entry"] == hit.headers["x-deja-entry"] == miss.headers["x-deja-entry"]
    assert json.loads(plain.parse().choices[0].message.tool_calls[0].function.arguments) == loads(arguments)
    assert upstream_calls(cluster) == calls


@pytest.mark.integration
def test_openai_json_mode_content_in_tauq_and_prose_untouched(cluster):
    create = sdk(cluster).chat.completions.with_raw_response.create
    request = {"model": MODEL, "messages": unique("List results"), "response_format": {"type": "json_object"}}
    plain = create(**request)
    original = json.loads(plain.parse().choices[0].message.content)
    assert len(original["results"]) == 5

    hit = until_hit(create, **request, extra_headers=TAUQ)
    content = hit.parse().choices[0].message.content
    assert hit.headers["x-deja-format"] == "tauq" and "!def Result id title score tags verified" in content
    assert loads(content) == original and len(content) < len(plain.parse().choices[0].message.content)
    assert hit.parse().usage == plain.parse().usage  # the provider's token counts, unchanged

    prose = create(model=MODEL, messages=unique("How do I center a div?"), extra_headers=TAUQ)
    assert "x-deja-format" not in prose.headers and prose.parse().choices[0].message.content.startswith("Mock answer")


@pytest.mark.integration
def test_a_stream_with_the_header_is_refused_before_the_provider(cluster):
    calls = upstream_calls(cluster)
    with pytest.raises(openai.BadRequestError) as info:
        sdk(cluster).chat.completions.create(model=MODEL, messages=unique("hi"), stream=True, extra_headers=TAUQ)
    assert info.value.status_code == 400 and info.value.body["code"] == "format_unsupported_for_stream"
    assert upstream_calls(cluster) == calls


def claude(cluster) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=cluster.gateway_url, api_key="sk-ant-tenant-a", max_retries=0, timeout=10)


def upstream_messages(cluster) -> int:
    return httpx.get(f"{cluster.mock_url}/mock/stats").json().get("messages", 0)


@pytest.mark.integration
def test_anthropic_json_text_in_tauq_through_the_sdk_and_the_entry_unchanged(cluster):
    create = claude(cluster).messages.with_raw_response.create
    request = {"model": CLAUDE, "max_tokens": 256, "messages": unique("Give me the results in JSON")}
    miss = create(**request, extra_headers=TAUQ)
    text = miss.parse().content[0].text
    assert miss.headers["x-deja-format"] == "tauq" and text.startswith("```tauq\n!def Result ")
    value = loads(text.removeprefix("```tauq\n").removesuffix("\n```"))
    calls = upstream_messages(cluster)

    hit = until_hit(create, **request, extra_headers=TAUQ)
    assert hit.headers["x-deja-cache"] == "hit-exact" and hit.parse().content[0].text == text
    plain = create(**request)
    fenced = plain.parse().content[0].text
    assert plain.headers["x-deja-cache"] == "hit-exact" and "x-deja-format" not in plain.headers
    assert fenced.startswith("```json\n")
    assert json.loads(fenced.removeprefix("```json\n").removesuffix("\n```")) == value
    assert upstream_messages(cluster) == calls


@pytest.mark.integration
def test_anthropic_tool_use_keeps_its_input_object_for_the_sdk(cluster):
    tools = [{"name": "search_docs", "description": "search", "input_schema": {"type": "object", "properties": {}}}]
    messages = unique("Find the cache docs")
    raw = claude(cluster).messages.with_raw_response.create(
        model=CLAUDE, max_tokens=256, messages=messages, tools=tools, extra_headers=TAUQ
    )
    blocks = raw.parse().content
    assert [b.type for b in blocks] == ["text", "tool_use"] and blocks[1].input == {"query": messages[0]["content"]}
    assert "x-deja-format" not in raw.headers  # nothing in this answer is a JSON document to convert
    with pytest.raises(anthropic.BadRequestError) as info:
        claude(cluster).messages.create(model=CLAUDE, max_tokens=64, messages=messages, stream=True, extra_headers=TAUQ)
    assert info.value.status_code == 400 and "cannot apply to a stream" in info.value.body["error"]["message"]
