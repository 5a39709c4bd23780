"""The mock as a "judge" model: rules whether two cached questions ask the same thing.

The gateway asks a judge model in the ordinary wire formats (OpenAI chat completions, Anthropic
messages) with a system prompt carrying `MARKER` and the two questions in `<request>` blocks. With
a workload's ground truth loaded, the mock answers as a perfect judge would ("yes" when both
questions are in one cluster), so an evaluation measures the cache, not a model; `noise` flips a
fixed, reproducible share of pairs to model an imperfect judge, and faults (timeout, 500, garbage)
let tests drive the gateway's fallbacks. Everything is steerable at run time via `/mock/judge`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping

import blake3

from services.mock_provider import truth as ground_truth

MARKER = "Deja cache judge"
GARBAGE = "Perhaps; it depends on the context."
FAULTS = (None, "timeout", "500", "garbage")
TIMEOUT_S = 30.0  # longer than any sane judge deadline: the "timeout" fault always trips the gateway's
_REQUEST = re.compile(r"<request>\n(.*?)\n</request>", re.DOTALL)

Pair = tuple[str, str]


def _pair(user: str | None) -> Pair:
    """The first two `<request>` blocks; an unreadable prompt gives empty questions (ruled "no")."""
    found = _REQUEST.findall(user or "")[:2]
    return (found[0].strip(), found[1].strip()) if len(found) == 2 else ("", "")


def openai_pair(body: object) -> Pair | None:
    """The questions of an OpenAI-format judge call, or None when `body` is an ordinary request."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return None
    system = [
        ground_truth.text_of(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    ]
    if not any(MARKER in (text or "") for text in system):
        return None
    return _pair(ground_truth.last_user_text(messages))


def anthropic_pair(body: object) -> Pair | None:
    """The questions of an Anthropic-format judge call (`system` is top-level there), or None."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    if MARKER not in (ground_truth.text_of(body.get("system")) or ""):
        return None
    return _pair(ground_truth.last_user_text(body["messages"]))


def flipped(a: str, b: str, noise: float) -> bool:
    """Whether noise flips this pair: a hash of the unordered pair, so a replay flips the same pairs."""
    key = "\x00".join(sorted((a, b))).encode()
    return int.from_bytes(blake3.blake3(key).digest()[:8], "big") / 2**64 < noise


class Judge:
    """The judge's configuration (start-up values, plus what `/mock/judge` changed) and its verdicts."""

    def __init__(self, *, truth: Mapping[str, str], noise: float, latency_ms: int, counts: Counter[str]) -> None:
        self._start = (dict(truth), noise, latency_ms)
        self.counts = counts  # the app's /mock/stats counter: verdicts are counted there too
        self.reset()

    def reset(self) -> None:
        truth, self.noise, self.latency_ms = self._start
        self.truth: dict[str, str] = dict(truth)  # a copy: runtime additions never leak into a reset
        self.fault: str | None = None

    def configure(self, body: object) -> None:
        """Apply a `/mock/judge` body; validates everything first, so a bad body changes nothing."""
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        unknown = set(body) - {"reset", "truth", "noise", "fault", "latency_ms"}
        if unknown:
            raise ValueError(f"unknown keys: {sorted(unknown)}")
        truth = body.get("truth", {})
        if not isinstance(truth, dict) or not all(isinstance(q, str) for q in truth):
            raise ValueError("truth: expected {question: cluster}")
        noise = body.get("noise", self.noise)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise <= 1:
            raise ValueError("noise: expected a number in [0, 1]")
        if body.get("fault", self.fault) not in FAULTS:
            raise ValueError(f"fault: expected one of {list(FAULTS)}")
        latency = body.get("latency_ms", self.latency_ms)
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < -1:
            raise ValueError("latency_ms: expected an integer >= -1 (-1: the normal latency)")
        if body.get("reset"):
            self.reset()
        for question, cluster in truth.items():
            ground_truth.add(self.truth, question, str(cluster))
        self.noise = float(body.get("noise", self.noise))
        self.fault = body.get("fault", self.fault)
        self.latency_ms = body.get("latency_ms", self.latency_ms)

    def describe(self) -> dict:
        return {"truth_size": len(self.truth), "noise": self.noise, "fault": self.fault, "latency_ms": self.latency_ms}

    def latency(self, normal_ms: int) -> int:
        return normal_ms if self.latency_ms < 0 else self.latency_ms

    def verdict(self, a: str, b: str, tenant: str = "") -> bool:
        """What a perfect judge says (same cluster, or the same words), then flipped by the noise."""
        truth = ground_truth.Scoped(self.truth, tenant)
        cluster = ground_truth.cluster_of(truth, a)
        same = bool(a and b) and (
            (cluster is not None and cluster == ground_truth.cluster_of(truth, b)) or ground_truth.same_question(a, b)
        )
        return same != flipped(a, b, self.noise) if self.noise > 0 else same

    async def reply(self, pair: Pair, tenant: str = "") -> str:
        """The reply text. The caller answers the "500" fault itself: its error shape is the API's."""
        if self.fault == "timeout":
            await asyncio.sleep(TIMEOUT_S)
        if self.fault == "garbage":
            return GARBAGE
        answer = "yes" if self.verdict(*pair, tenant) else "no"
        self.counts["judge_" + answer] += 1
        return answer
