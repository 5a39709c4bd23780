"""OpenAI chat completions' piece of session memory: the answer's text, and recalled history put
in front of a request (after its leading system/developer messages, which stay first)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from services.gateway.api_format import message_text
from services.gateway.openai.request import ChatRequest

LEADING_ROLES = ("system", "developer")


def answer_text(completion: dict[str, Any]) -> str | None:
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message") or {}
    return message_text(message.get("content")) or None  # tool calls only: nothing to remember as text


def with_history(chat: ChatRequest, history: list[dict[str, str]]) -> ChatRequest:
    messages = chat.body["messages"]
    lead = 0
    while lead < len(messages) and isinstance(messages[lead], dict) and messages[lead].get("role") in LEADING_ROLES:
        lead += 1
    body = {**chat.body, "messages": [*messages[:lead], *history, *messages[lead:]]}
    return dataclasses.replace(chat, raw=orjson.dumps(body), body=body)
