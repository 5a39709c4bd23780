"""A workload's ground truth (question -> cluster), so the mock can answer like a provider that knows it.

`deja eval --workload` asks every question of a workload through the gateway; when the mock
answers each question with its cluster in the text, a served hit is visibly right or wrong, and
the mock's judge can rule on two questions the way a perfect judge would (same cluster = "yes").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def add(truth: dict[str, str], question: str, cluster: str, tenant: str = "") -> None:
    """Index the exact question and its whitespace-stripped form: clients often trim what they send.
    A row with a tenant is that tenant's only (the same question may be in other clusters elsewhere)."""
    prefix = f"{tenant}\x00" if tenant else ""
    truth[prefix + question] = cluster
    truth.setdefault(prefix + question.strip(), cluster)


class Scoped(Mapping[str, str]):
    """The truth as one tenant sees it: its own rows first, then the rows without a tenant."""

    def __init__(self, truth: Mapping[str, str], tenant: str) -> None:
        self._truth = truth
        self._prefix = f"{tenant}\x00" if tenant else ""

    def __getitem__(self, question: str) -> str:
        if self._prefix and self._prefix + question in self._truth:
            return self._truth[self._prefix + question]
        return self._truth[question]

    def __iter__(self):
        return iter(self._truth)

    def __len__(self) -> int:
        return len(self._truth)


def tenant_of(headers: Mapping[str, str]) -> str:
    """The workload tenant a request speaks for: an API key `<anything>/<tenant>` names it (the
    convention of `deja eval --workload`, which gives each workload tenant a key of its own)."""
    key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
    return key.rsplit("/", 1)[1] if "/" in key else ""


def load(path: str) -> dict[str, str]:
    """Read a workload JSONL file ({"question", "cluster", "tenant"?} per line); blank lines are skipped."""
    truth: dict[str, str] = {}
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = orjson.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("question"), str) or "cluster" not in row:
                raise ValueError(f"{path}:{number}: expected {{'question': str, 'cluster': ...}}")
            add(truth, row["question"], str(row["cluster"]), str(row.get("tenant") or ""))
    return truth


def cluster_of(truth: Mapping[str, str], question: str | None) -> str | None:
    if question is None:
        return None
    return truth.get(question) or truth.get(question.strip())


def text_of(content: Any) -> str | None:
    """A message's text: a plain string, or its text parts joined (either API's part shape)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str)) if texts else None
    return None


def last_user_text(messages: list) -> str | None:
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
    return None if last is None else text_of(last.get("content"))


def same_question(a: str, b: str) -> bool:
    """Equal up to case and whitespace: a judge that says "no" to these would be useless."""
    return " ".join(a.lower().split()) == " ".join(b.lower().split())
