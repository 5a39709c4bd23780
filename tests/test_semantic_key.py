import orjson
import pytest

from services.gateway.openai.request import parse_chat_request, semantic_parts
from services.gateway.openai.sse import calls_tools
from services.gateway.semantic_key import split_question
from services.gateway.semantic_policy import DEFAULT_EXCLUDED, DEFAULT_TIME_SENSITIVE, SemanticPolicy


def chat(*messages, **params):
    return parse_chat_request(orjson.dumps({"model": "gpt-4o-mini", "messages": list(messages), **params}))


def user(content):
    return {"role": "user", "content": content}


AGENT_TURN = """<environment_details>
cwd: /home/me/project
time: 2026-11-22T10:00:00Z
</environment_details>

# AGENTS.md instructions for /home/me/project
<INSTRUCTIONS>
Use tabs. Run make test.
</INSTRUCTIONS>

How do I center a div?"""


def test_the_query_is_the_last_user_turn_without_agent_boilerplate():
    assert semantic_parts(chat(user(AGENT_TURN))).query == "How do I center a div?"
    assert semantic_parts(chat(user([{"type": "text", "text": "How do I"}, {"type": "text", "text": "sort?"}]))).query
    assert split_question("What does <b>bold</b> do? Is 3 < 4?")[0] == "What does <b>bold</b> do? Is 3 < 4?"


def test_volatile_blocks_do_not_change_the_context_but_attachments_do():
    base = semantic_parts(chat(user(AGENT_TURN)))
    moved = semantic_parts(chat(user(AGENT_TURN.replace("/home/me/project\ntime: 2026", "/tmp/x\ntime: 2027"))))
    assert moved.context_hash == base.context_hash
    other_rules = semantic_parts(chat(user(AGENT_TURN.replace("Use tabs.", "Use spaces."))))
    assert other_rules.context_hash != base.context_hash
    file_a = semantic_parts(chat(user("Explain this code\n<file>\nprint(1)\n</file>")))
    file_b = semantic_parts(chat(user("Explain this code\n<file>\nprint(2)\n</file>")))
    assert file_a.query == file_b.query == "Explain this code"
    assert file_a.context_hash != file_b.context_hash


def test_only_the_question_may_differ_within_a_context():
    a = semantic_parts(chat(user("How do I center a div?")))
    b = semantic_parts(chat(user("CSS to center a div?")))
    assert a.context_hash == b.context_hash and a.query != b.query
    assert semantic_parts(chat(user("CSS to center a div?"), stream=True, user="u1")).context_hash == a.context_hash
    for different in (
        chat({"role": "system", "content": "Answer in French."}, user("CSS to center a div?")),
        chat(user("CSS to center a div?"), temperature=0.0),
        parse_chat_request(orjson.dumps({"model": "gpt-4o", "messages": [user("CSS to center a div?")]})),
        chat(user("earlier"), {"role": "assistant", "content": "ok"}, user("CSS to center a div?")),
    ):
        assert semantic_parts(different).context_hash != a.context_hash


@pytest.mark.parametrize(
    "request_",
    [
        chat(user("hi"), {"role": "assistant", "content": "hello"}),  # does not end with a user turn
        chat(user([{"type": "image_url", "image_url": {"url": "data:,"}}, {"type": "text", "text": "what is this?"}])),
        chat(user("<environment_details>\nonly noise\n</environment_details>")),
    ],
)
def test_requests_without_a_plain_question_have_no_query(request_):
    assert semantic_parts(request_).query is None


POLICY = SemanticPolicy.from_patterns(
    DEFAULT_TIME_SENSITIVE, DEFAULT_EXCLUDED, time_sensitive_ttl_s=300, min_chars=8, max_chars=200
)


@pytest.mark.parametrize(
    ("query", "allowed"),
    [
        ("How do I center a div?", True),
        ("What's the weather in Paris?", False),
        ("latest news about Python", False),
        ("hi", False),
        ("x" * 201, False),
        (None, False),
    ],
)
def test_semantic_policy(query, allowed):
    assert POLICY.may_use_semantic(query, {"messages": [user(query)]}) is allowed


def test_tool_turns_are_never_semantic_and_time_sensitive_prompts_get_a_short_ttl():
    body = {"messages": [user("What does this tool output mean?"), {"role": "tool", "content": "42"}]}
    assert not POLICY.may_use_semantic("What does this tool output mean?", body)
    assert POLICY.ttl_for("What is the latest version of Django?") == 300
    assert POLICY.ttl_for("How do I center a div?") == 0
    assert calls_tools({"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]})
    assert not calls_tools({"choices": [{"message": {"content": "hi"}}]})
