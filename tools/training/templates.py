"""Synthetic cache-style questions with known intent: paraphrases of one intent, and one-slot changes.

Each intent has several wordings and slots. Two questions are the same intent exactly when every
slot has the same value, so a positive is (wording i, wording j, same slots) and a hard negative
changes one slot (the order, the language, the direction, a number...), often across wordings,
which is what a semantic cache sees: near-identical prompts whose answers differ.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

LANGS = ["Python", "Java", "JavaScript", "TypeScript", "Go", "Rust", "C++", "C#", "Ruby", "Kotlin", "Swift", "PHP"]
TYPES = ["a string", "an integer", "a list", "a dictionary", "a float", "bytes", "JSON", "a date", "a set", "a tuple"]
CITIES = ["Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo", "New York", "Boston", "Delhi", "Mumbai", "Sydney"]
TONGUES = ["English", "Spanish", "French", "German", "Italian", "Japanese", "Hindi", "Portuguese"]
PRODUCTS = ["Windows 11", "macOS", "Ubuntu", "Chrome", "Firefox", "VS Code", "an iPhone", "Android", "GitHub"]
FEATURES = ["dark mode", "two-factor authentication", "autosave", "notifications", "the firewall", "auto-update",
            "location services", "spell check"]  # fmt: skip
DBS = ["PostgreSQL", "MySQL", "SQLite", "MongoDB", "Oracle", "SQL Server"]
UNIT_PAIRS = [("kilometers", "miles"), ("kilograms", "pounds"), ("Celsius", "Fahrenheit"), ("inches", "centimeters"),
              ("liters", "gallons"), ("GB", "MB"), ("hours", "minutes")]  # fmt: skip


@dataclass(frozen=True)
class Intent:
    wordings: tuple[str, ...]
    slots: dict[str, list]  # slot name -> values; a tuple value fills several {name0}, {name1}...


INTENTS = [
    Intent(("How do I sort a list in {order} order in {lang}?", "{lang}: sort a list {order}",
            "What's the way to sort an array in {order} order using {lang}?",
            "sort list {order} {lang}", "How can I sort values {order} in {lang}?"),
           {"order": ["ascending", "descending"], "lang": LANGS}),
    Intent(("How do I convert {src} to {dst} in {lang}?", "{lang}: convert {src} to {dst}",
            "What is the easiest way to turn {src} into {dst} in {lang}?", "{src} to {dst} conversion in {lang}"),
           {"src": TYPES, "dst": TYPES, "lang": LANGS}),
    Intent(("How do I {toggle} {feature} on {product}?", "{toggle} {feature} in {product}",
            "Steps to {toggle} {feature} on {product}?", "How can I {toggle} {feature} for {product}?"),
           {"toggle": ["enable", "disable"], "feature": FEATURES, "product": PRODUCTS}),
    Intent(("How do I {edit} a column {prep} a table in {db}?", "{db}: {edit} a column {prep} an existing table",
            "SQL to {edit} a column {prep} a table ({db})"),
           {"edit": [("add", "to"), ("remove", "from"), ("rename", "in")], "db": DBS}),
    Intent(("How many {u1} are in {n} {u2}?", "Convert {n} {u2} to {u1}", "{n} {u2} in {u1}?",
            "What is {n} {u2} in {u1}?"),
           {"u1": [u for p in UNIT_PAIRS for u in p], "u2": [u for p in UNIT_PAIRS for u in p],
            "n": [1, 2, 5, 10, 12, 20, 50, 100]}),
    Intent(("How do I get from {a} to {b} by train?", "Train from {a} to {b}: how?",
            "What's the best train route from {a} to {b}?"),
           {"a": CITIES, "b": CITIES}),
    Intent(("Translate 'good morning' from {l1} to {l2}", "How do you say 'good morning' in {l2} if you speak {l1}?",
            "'good morning' {l1} to {l2} translation"),
           {"l1": TONGUES, "l2": TONGUES}),
    Intent(("How do I find the {ext} value in an array in {lang}?", "{lang}: get the {ext} element of an array",
            "Find {ext} of a list in {lang}"),
           {"ext": ["maximum", "minimum"], "lang": LANGS}),
    Intent(("How do I convert a string to {case} in {lang}?", "{lang} string to {case}",
            "Make a string {case} in {lang}"),
           {"case": ["uppercase", "lowercase"], "lang": LANGS}),
    Intent(("How do I get the {end} {k} elements of a list in {lang}?", "{lang}: take the {end} {k} items of a list",
            "Get {end} {k} elements from an array in {lang}"),
           {"end": ["first", "last"], "k": [2, 3, 5, 10], "lang": LANGS}),
    Intent(("Write a {lang} function that prints the first {k} prime numbers", "{lang} code to print {k} primes",
            "Print the first {k} primes in {lang}"),
           {"k": [10, 20, 50, 100], "lang": LANGS}),
    Intent(("What does HTTP status code {code} mean?", "HTTP {code} meaning", "Why do I get an HTTP {code} error?"),
           {"code": [200, 201, 301, 302, 400, 401, 403, 404, 500, 502, 503]}),
    Intent(("How do I {verb} a file in {lang}?", "{lang}: {verb} a file", "Code to {verb} a file using {lang}"),
           {"verb": ["read", "write", "delete", "compress", "encrypt", "decrypt", "upload", "download"],
            "lang": LANGS}),
    Intent(("Why does my {lang} program {fail}?", "My {lang} code {fail}, why?",
            "{lang} program {fail}: what causes it?"),
           {"fail": ["crash", "not crash", "run slowly", "leak memory", "hang"], "lang": LANGS}),
    Intent(("How do I {act} a package with {tool}?", "{tool} {act} package",
            "Command to {act} a package using {tool}"),
           {"act": ["install", "uninstall", "upgrade", "downgrade"], "tool": ["pip", "npm", "apt", "brew", "cargo"]}),
    Intent(("What is the time complexity of {algo}?", "Big-O of {algo}", "How fast is {algo} asymptotically?"),
           {"algo": ["binary search", "quicksort", "merge sort", "heap sort", "bubble sort", "BFS",
                     "Dijkstra's algorithm", "insertion into a hash map"]}),
    Intent(("How do I {io} a {fmt} file in {lang}?", "{lang}: {io} {fmt}", "{io} {fmt} with {lang}"),
           {"io": ["parse", "write"], "fmt": ["CSV", "JSON", "YAML", "XML"], "lang": LANGS}),
]  # fmt: skip


def _fill(wording: str, values: dict) -> str:
    flat = {}
    for name, value in values.items():
        if isinstance(value, tuple):
            flat[name], flat["prep"] = value[0], value[1]
        else:
            flat[name] = value
    text = wording.format(**flat)
    return text[:1].upper() + text[1:] if re.match(r"[a-z]", text) and wording.startswith("{") else text


def _draw(intent: Intent, rng: random.Random) -> dict:
    values = {name: rng.choice(options) for name, options in intent.slots.items()}
    if "src" in values:
        while values["dst"] == values["src"]:
            values["dst"] = rng.choice(intent.slots["dst"])
    if "u1" in values:  # a unit question converts within one dimension
        values["u1"], values["u2"] = rng.sample(rng.choice(UNIT_PAIRS), 2)
    for a, b in (("a", "b"), ("l1", "l2")):
        while a in values and values[a] == values[b]:
            values[b] = rng.choice(intent.slots[b])
    return values


def template_pairs(rng: random.Random, count: int) -> list[tuple[str, str, int, str]]:
    """`count` (text_a, text_b, label, kind) rows, about half positives (paraphrases) and half one-slot changes."""
    rows = []
    while len(rows) < count:
        intent = rng.choice(INTENTS)
        values = _draw(intent, rng)
        first, second = rng.choice(intent.wordings), rng.choice(intent.wordings)
        if rng.random() < 0.5:
            if first == second and len(intent.wordings) > 1:
                continue
            rows.append((_fill(first, values), _fill(second, values), 1, "template-paraphrase"))
            continue
        changed = dict(values)
        swappable = [(a, b) for a, b in (("src", "dst"), ("u1", "u2"), ("a", "b"), ("l1", "l2")) if a in values]
        if swappable and rng.random() < 0.4:
            a, b = rng.choice(swappable)
            changed[a], changed[b] = values[b], values[a]
            kind = "template-direction"
        else:
            name = rng.choice(list(intent.slots))
            options = [v for v in intent.slots[name] if v != values[name]]
            changed[name] = rng.choice(options)
            kind = f"template-{name}"
        if any(changed.get(a) == changed.get(b) for a, b in (("src", "dst"), ("u1", "u2"), ("a", "b"), ("l1", "l2"))
               if a in changed):  # fmt: skip
            continue
        rows.append((_fill(first, values), _fill(second, changed), 0, kind))
    return rows
