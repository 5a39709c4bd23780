"""Anthropic Messages' piece of session memory: the answer's text (its text blocks; thinking and
tool_use are not kept), and recalled history put in front of the messages (`system` is a field,
not a message, so nothing has to stay ahead of it)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from services.gateway.anthropic.request import MessagesRequest
from services.gateway.api_format import message_text


def answer_text(message: dict[str, Any]) -> str | None:
    return message_text(message.get("content")) or None


def with_history(request: MessagesRequest, history: list[dict[str, str]]) -> MessagesRequest:
    body = {**request.body, "messages": [*history, *request.body["messages"]]}
    return dataclasses.replace(request, raw=orjson.dumps(body), body=body)
