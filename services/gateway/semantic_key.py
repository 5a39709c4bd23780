"""What the semantic tier compares: the user's actual question, and the context it was asked in.

The **query** is the last user turn with agent boilerplate taken out: multi-line XML-tagged
blocks that agents wrap around context (`<environment_details>`, `<system-reminder>`,
`<INSTRUCTIONS>`, `<file>`...) and the "# AGENTS.md instructions for ..." headings above them.
Only the question is embedded and verified.

The **context hash** is blake3 over the canonical request with the last user turn replaced by
the blocks taken out of it: system prompt, model, tools, every earlier turn, every
answer-changing parameter and any attached file or snippet must match exactly. Only blocks
known to be volatile session noise (working directory, clock, reminders) are dropped from both,
so "explain this code" over two different files never matches, while an agent whose
environment block changes every call still can.

Format-neutral: both APIs' bodies have `messages` with text parts; each format's `request.py`
passes its keyed body and key schema to `parts_of`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import blake3
import orjson

# A tagged block that spans lines: how agents attach context. Inline tags (`<b>x</b>`) stay.
_TAGGED_BLOCK = re.compile(r"<([A-Za-z][\w.-]*)(?:\s[^>]*)?>(?=[^\n]*\n).*?</\1>", re.DOTALL)
VOLATILE_TAGS = frozenset(
    {"environment_details", "environment_context", "system-reminder", "system_reminder", "current_time", "env"}
)
_INSTRUCTION_HEADING = re.compile(r"^#+\s*(?:AGENTS|CLAUDE|GEMINI|COPILOT)(?:\.md)?\b.*$", re.MULTILINE)
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class SemanticParts:
    query: str | None  # None: this request cannot be served semantically
    context_hash: bytes


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # only text parts: an image or file part makes it non-semantic
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                return None
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def split_question(text: str) -> tuple[str, list[str]]:
    """(the question, the attached blocks that are part of its context)."""
    attached: list[str] = []

    def take(match: re.Match) -> str:
        if match.group(1).lower() not in VOLATILE_TAGS:
            attached.append(match.group(0))
        return ""

    question = _TAGGED_BLOCK.sub(take, text)
    question = _INSTRUCTION_HEADING.sub("", question)
    question = _BLANK_LINES.sub("\n\n", _SPACES.sub(" ", question)).strip()
    return question, attached


def _last_user_index(messages: list[dict]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None


def last_user_text(messages: list[dict]) -> str | None:
    """The text of the last user turn (text parts only), or None when there is none."""
    index = _last_user_index(messages)
    return None if index is None else _text_of(messages[index].get("content"))


def parts_of(keyed: dict[str, Any], key_schema: bytes) -> SemanticParts:
    """Any API whose body has `messages` with OpenAI/Anthropic-style text parts; `keyed` is the
    body as the exact key sees it, `key_schema` the API's key prefix (formats never share a context)."""
    body = dict(keyed)
    messages = list(body["messages"])
    index = _last_user_index(messages)
    text = _text_of(messages[index].get("content")) if index == len(messages) - 1 else None
    query, attached = split_question(text) if text is not None else (None, [])
    if query is not None:
        messages[index] = {**messages[index], "content": attached}
    body["messages"] = messages
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return SemanticParts(query or None, blake3.blake3(key_schema + b"context|" + canonical).digest())
