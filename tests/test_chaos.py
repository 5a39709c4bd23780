"""The chaos tool's own judgement of an answer: a complete stream, a broken one, a wrong tenant's."""

import pytest

from tools.chaos import json_text, question, stream_text

OPENAI_STREAM = (
    b'data: {"choices": [{"delta": {"content": "Hello "}}]}\n\n'
    b'data: {"choices": [{"delta": {"content": "world"}}]}\n\n'
    b"data: [DONE]\n\n"
)
ANTHROPIC_STREAM = (
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"text": "Hi"}}\n\n'
    b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
)


def test_complete_streams_give_their_text():
    assert stream_text("openai", OPENAI_STREAM) == "Hello world"
    assert stream_text("anthropic", ANTHROPIC_STREAM) == "Hi"


@pytest.mark.parametrize(
    "api, raw",
    [
        ("openai", OPENAI_STREAM.replace(b"data: [DONE]\n\n", b"")),  # broke off before its end
        ("anthropic", ANTHROPIC_STREAM.split(b"event: message_stop")[0]),
        ("anthropic", b'data: {"type": "error", "error": {"type": "api_error"}}\n\n'),
        ("openai", b'data: {"error": {"message": "upstream stream broke off"}}\n\ndata: [DONE]\n\n'),
    ],
)
def test_a_broken_or_failed_stream_is_a_client_error(api, raw):
    with pytest.raises(RuntimeError):
        stream_text(api, raw)


def test_json_answers_and_tenant_tags():
    assert json_text("openai", b'{"choices": [{"message": {"content": "ok"}}]}') == "ok"
    assert json_text("anthropic", b'{"content": [{"type": "text", "text": "ok"}]}') == "ok"
    assert "(team t1," in question(1, 7) and "(team t1," in question(1, 7, paraphrase=True)
    assert question(1, 7) != question(1, 7, paraphrase=True) and question(1, 7) != question(2, 7)
