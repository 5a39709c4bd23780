"""Which requests the semantic tier may answer or learn from, and for how long.

- Excluded topics (weather, news, prices, the current time...) are never served semantically and
  never indexed: their right answer changes with the world, not with the wording.
- Time-sensitive wording ("today", "latest", "right now", "current"...) is still cached, but with
  a short TTL, in both tiers.
- Prompts shorter or longer than the configured bounds are not semantic: too short says too
  little to verify, too long is a document, not a question.
- Turns that carry tool results, and answers that call tools, never go through the semantic
  tier (a tool loop must never replay a stale step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_TIME_SENSITIVE = (
    r"\b(today|tonight|tomorrow|yesterday|latest|newest|right now|currently|current|this (week|month|year)|recent)\b"
)
DEFAULT_EXCLUDED = (
    r"\b(weather|forecast|news|headlines|stock price|share price|exchange rate|what time is it|current time|score of)\b"
)


@dataclass(frozen=True)
class SemanticPolicy:
    time_sensitive: re.Pattern
    excluded: re.Pattern
    time_sensitive_ttl_s: int
    min_chars: int
    max_chars: int

    @classmethod
    def from_patterns(cls, time_sensitive: str, excluded: str, **limits: int) -> SemanticPolicy:
        return cls(re.compile(time_sensitive, re.IGNORECASE), re.compile(excluded, re.IGNORECASE), **limits)

    def ttl_for(self, query: str | None) -> int:
        """0 = the store's default; a short TTL for time-sensitive wording."""
        return self.time_sensitive_ttl_s if query and self.time_sensitive.search(query) else 0

    def may_use_semantic(self, query: str | None, body: dict[str, Any]) -> bool:
        if query is None or not self.min_chars <= len(query) <= self.max_chars:
            return False
        if has_tool_turns(body["messages"]):
            return False
        return not self.excluded.search(query)


TOOL_BLOCKS = ("tool_use", "tool_result", "server_tool_use")  # a tuple: an unhashable "type" is just "not in"


def has_tool_turns(messages: list[dict[str, Any]]) -> bool:
    """A conversation that carries tool calls or results (OpenAI roles or Anthropic content blocks)."""
    for message in messages:
        if message.get("role") in ("tool", "function"):
            return True
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") in TOOL_BLOCKS for b in content):
            return True
    return False
