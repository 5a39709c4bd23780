"""Deterministic answer text, shared by the mock's OpenAI and Anthropic endpoints."""

from __future__ import annotations

import blake3
import orjson

VOCABULARY = (
    "cache entries verify intent before serving answers agents reuse responses latency drops while "
    "providers bill only misses embeddings compare meaning tokens stream quickly"
).split()


def digest_words(body: dict, count: int) -> str:
    """`count` words derived from the whole request: the same request always gets the same words."""
    digest = blake3.blake3(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest(max(32, count))
    return " ".join(VOCABULARY[b % len(VOCABULARY)] for b in digest[:count])


def answer_for(body: dict, prompt: str) -> str:
    return f"Mock answer to {prompt[:200]!r}: " + digest_words(body, 24) + "."
