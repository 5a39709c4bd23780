"""Deterministic answer text, shared by the mock's OpenAI and Anthropic endpoints."""

from __future__ import annotations

from collections.abc import Mapping

import blake3
import orjson

from services.mock_provider import truth as ground_truth

VOCABULARY = (
    "cache entries verify intent before serving answers agents reuse responses latency drops while "
    "providers bill only misses embeddings compare meaning tokens stream quickly"
).split()


def digest_words(body: dict, count: int) -> str:
    """`count` words derived from the whole request: the same request always gets the same words."""
    digest = blake3.blake3(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest(max(32, count))
    return " ".join(VOCABULARY[b % len(VOCABULARY)] for b in digest[:count])


def cluster_for(body: dict, truth: Mapping[str, str] | None) -> str | None:
    """The workload cluster of the request's last user question, when the ground truth knows it."""
    if not truth:
        return None
    return ground_truth.cluster_of(truth, ground_truth.last_user_text(body["messages"]))


def answer_for(body: dict, prompt: str, cluster: str | None = None) -> str:
    # The cluster leads the text so a served cache hit shows which question's answer it was.
    prefix = f"[cluster {cluster}] " if cluster is not None else ""
    return prefix + f"Mock answer to {prompt[:200]!r}: " + digest_words(body, 24) + "."
