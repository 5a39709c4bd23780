import orjson
import pytest

from services.gateway.errors import ApiError
from services.gateway.openai.request import parse_chat_request

BASE = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "sort a list ascending"}]}


def key(**changes) -> bytes:
    body = {**BASE, **changes}
    return parse_chat_request(orjson.dumps(body)).cache_key()


def test_key_is_stable_and_32_bytes():
    assert key() == key()
    assert len(key()) == 32


def test_key_ignores_field_order_and_whitespace():
    reordered = b'{ "messages": [{"content": "sort a list ascending", "role": "user"}],\n "model": "gpt-4o-mini" }'
    assert parse_chat_request(reordered).cache_key() == key()


@pytest.mark.parametrize(
    "ignored",
    [
        {"stream": True},
        {"stream_options": {"include_usage": True}},
        {"user": "someone"},
        {"metadata": {"run": "1"}},
        {"store": True},
        {"service_tier": "auto"},
    ],
)
def test_fields_that_cannot_change_the_answer_are_not_in_the_key(ignored):
    assert key(**ignored) == key()


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "gpt-4o"},
        {"messages": [{"role": "user", "content": "sort a list descending"}]},
        {"messages": [{"role": "system", "content": "be terse"}, *BASE["messages"]]},
        {"temperature": 0.2},
        {"top_p": 0.5},
        {"max_tokens": 10},
        {"n": 2},
        {"seed": 7},
        {"stop": ["\n"]},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "none"},
        {"some_future_parameter": 1},
    ],
)
def test_everything_that_can_change_the_answer_is_in_the_key(changed):
    assert key(**changed) != key()


def test_integral_floats_share_a_key():
    assert key(temperature=1) == key(temperature=1.0)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": ["hi"]}', "messages[0]"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": ["user"], "content": "x"}]}', "messages[0].role"),  # unhashable
        (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}', "max_tokens"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}', "stop"),
    ],
)
def test_bad_requests_get_400_naming_the_field(raw, param):
    with pytest.raises(ApiError) as info:
        parse_chat_request(raw)
    assert info.value.status == 400
    assert info.value.param == param
    body = orjson.loads(info.value.body())
    assert set(body["error"]) == {"message", "type", "param", "code"}
