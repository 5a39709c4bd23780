"""The training, calibration and test sets, built from ../shared/datasets plus generated hard cases.

Torch-free and deterministic for a seed. Every row is (text_a, text_b, label, source); `source`
feeds the per-source counts written next to the model.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tools.eval.labeled import cluster_members, labeled_pairs, pair_rows, tsv_rows
from tools.training import hard_cases
from tools.training.templates import template_pairs

Row = tuple[str, str, int, str]

# Written by mine.py (the cache's own embedder; not in the repository): QQP train neighbours by cluster.
MINED_PATH = Path(".deja/verifier-train/mined-qqp.tsv.gz")


@dataclass(frozen=True)
class Recipe:
    """How much of each source goes into training; recorded in training.json."""

    seed: int = 13
    qqp_train: int = 30000  # pairs sampled from QQP train (56,772)
    mrpc_train: int = 1500  # of 4,076
    stsb_train: int = 2000  # of 5,749; label = score >= 4 (the datasets' rule)
    mutated_per_kind: int = 600  # hard negatives / positives per mutation kind, from QQP train questions
    templates: int = 3000  # synthetic cache-style pairs
    both_orders: tuple[str, ...] = ("paws",)  # the others: one random order each (see MODEL_CARD.md)
    paws_repeats: int = 1  # PAWS dev is the only word-order data (2,000 pairs): repeat it
    sentence_mutations: int = 0  # PAWS-style pairs per sentence rule, from MRPC / STS-B / PAWS dev sentences
    contrast_positives: bool = False  # a harmless edit of every negative mutation's question (label 1)
    qqp_cluster_positives: int = 0  # unlabelled same-cluster pairs of QQP train questions (transitive duplicates)
    qqp_mined: int = 0  # top cosine neighbours of QQP train questions, labelled by cluster (mine.py)
    mined_negative_max_p: float = 1.0  # drop mined negatives the previous verifier scores at or above this
    checklist_per_test: int = 0  # pairs from each CheckList train test (23 tests; the 14 test ones never)
    relation_traps: int = 0  # per kind of hard_cases.RELATION_*: and/or, his/her, tense, two people, preambles


def read_mined(path: Path, negative_max_p: float = 1.0) -> list[Row]:
    """Mined pairs; a negative the previous verifier scored >= `negative_max_p` is dropped (an
    unlinked duplicate more often than not: see mine.py)."""
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run python -m tools.training.mine first")
    return [
        (r["text_a"], r["text_b"], int(r["label"]), "qqp-mined")
        for r in tsv_rows(path)
        if r["label"] == "1" or float(r.get("p_previous") or 0.0) < negative_max_p
    ]


def checklist_rows(datasets: Path, rng: random.Random, per_test: int) -> list[Row]:
    """Up to `per_test` pairs of each CheckList train test (templated: a few hundred teach the skill)."""
    by_test: dict[str, list[Row]] = {}
    for r in tsv_rows(datasets / "checklist" / "train.tsv.gz"):
        by_test.setdefault(r["test"], []).append((r["text_a"], r["text_b"], int(r["label"]), "checklist"))
    return [row for test in sorted(by_test) for row in rng.sample(by_test[test], min(per_test, len(by_test[test])))]


def checklist_tests(datasets: Path, split: str) -> list[str]:
    """The CheckList test name of each row, in read_split's order (the same rows, the same filter)."""
    return [r["test"] for r in pair_rows(datasets / "checklist" / f"{split}.tsv.gz")]


def read_split(datasets: Path, name: str, split: str) -> list[Row]:
    return [(a, b, label, name) for a, b, label in labeled_pairs(datasets / name / f"{split}.tsv.gz")]


def mutated_pairs(
    questions: list[str],
    rng: random.Random,
    per_kind: int,
    negatives: dict[str, hard_cases.Mutation] = hard_cases.NEGATIVES,
    positives: dict[str, hard_cases.Mutation] = hard_cases.POSITIVES,
    contrast: bool = False,
) -> list[Row]:
    """(question, mutation) rows: label 0 for the meaning-changing rules, 1 for rewordings/typos.

    With `contrast`, each negative's question also gets a harmless edit (label 1): otherwise a
    near-copy that matches a negative rule's pattern ("convert A to B") reads as a negative by itself.
    """
    rows: list[Row] = []
    for label, rules in ((0, negatives), (1, positives)):
        for kind, rule in rules.items():
            made = 0
            for question in rng.sample(questions, len(questions)):
                if made == per_kind:
                    break
                other = rule(question, rng)
                if other and other != question:
                    rows.append((question, other, label, f"mutation-{kind}"))
                    made += 1
                    if contrast and label == 0:
                        rows += harmless_edit(question, rng, positives)
    return rows


def harmless_edit(question: str, rng: random.Random, positives: dict[str, hard_cases.Mutation]) -> list[Row]:
    """(question, the first positive rule's edit that applies, 1), rules tried in a random order."""
    for rule in rng.sample(list(positives.values()), len(positives)):
        other = rule(question, rng)
        if other and other != question:
            return [(question, other, 1, "mutation-contrast")]
    return []


def cluster_positives(datasets: Path, qqp_train: list[Row], rng: random.Random, per_cluster: int = 6) -> list[Row]:
    """Pairs of QQP train questions in one same-intent cluster that the train split does not label.

    clusters.jsonl.gz spans every split, but the splits follow the question graph's components,
    so a cluster holding a train question holds train questions only (checked: no test text here).
    At most `per_cluster` pairs from one cluster: a big cluster would otherwise add its size squared.
    """
    train_texts = {text for a, b, _, _ in qqp_train for text in (a, b)}
    labelled = {frozenset((a, b)) for a, b, _, _ in qqp_train}
    members = cluster_members(datasets / "qqp" / "clusters.jsonl.gz")
    rows: list[Row] = []
    for cluster_id in sorted(members):
        questions = sorted(set(members[cluster_id]))
        if not all(q in train_texts for q in questions):
            continue
        new = [(a, b) for i, a in enumerate(questions) for b in questions[i + 1 :] if frozenset((a, b)) not in labelled]
        rows += [(a, b, 1, "qqp-cluster") for a, b in rng.sample(new, min(per_cluster, len(new)))]
    return rows


def training_rows(datasets: Path, recipe: Recipe) -> list[Row]:
    rng = random.Random(recipe.seed)
    qqp = read_split(datasets, "qqp", "train")
    rows = rng.sample(qqp, min(recipe.qqp_train, len(qqp)))
    if recipe.qqp_cluster_positives:
        extra = cluster_positives(datasets, qqp, rng)
        rows += rng.sample(extra, min(recipe.qqp_cluster_positives, len(extra)))
    if recipe.qqp_mined:
        mined = read_mined(MINED_PATH, recipe.mined_negative_max_p)
        rows += rng.sample(mined, min(recipe.qqp_mined, len(mined)))
    if recipe.checklist_per_test:
        rows += checklist_rows(datasets, rng, recipe.checklist_per_test)
    rows += rng.sample(read_split(datasets, "mrpc", "train"), recipe.mrpc_train)
    rows += rng.sample(read_split(datasets, "stsb", "train"), recipe.stsb_train)
    paws = read_split(datasets, "paws", "dev")
    rows += paws * recipe.paws_repeats
    questions = sorted({text for a, b, _, _ in qqp for text in (a, b)})
    rows += mutated_pairs(questions, rng, recipe.mutated_per_kind, contrast=recipe.contrast_positives)
    if recipe.relation_traps:
        rows += mutated_pairs(
            questions, rng, recipe.relation_traps, hard_cases.RELATION_NEGATIVES, hard_cases.RELATION_POSITIVES
        )
    rows += [(a, b, label, "template") for a, b, label, _ in template_pairs(rng, recipe.templates)]
    if recipe.sentence_mutations:
        news = read_split(datasets, "mrpc", "train") + read_split(datasets, "stsb", "train") + paws
        sentences = sorted({text for a, b, _, _ in news for text in (a, b) if len(text.split()) >= 6})
        rows += mutated_pairs(
            sentences, rng, recipe.sentence_mutations, hard_cases.SENTENCE_NEGATIVES, hard_cases.SENTENCE_POSITIVES
        )
    out: list[Row] = []
    for a, b, label, source in rows:
        family = source.split("-")[0]
        if family in recipe.both_orders:
            out += [(a, b, label, source), (b, a, label, source)]
        else:
            out.append((a, b, label, source) if rng.random() < 0.5 else (b, a, label, source))
    rng.shuffle(out)
    return out


def calibration_rows(datasets: Path, seed: int, qqp_limit: int = 4000) -> list[Row]:
    """Held-out dev data (never trained on, never the test split): QQP dev sample + STS-B dev."""
    rng = random.Random(seed)
    qqp = read_split(datasets, "qqp", "dev")
    return rng.sample(qqp, min(qqp_limit, len(qqp))) + read_split(datasets, "stsb", "dev")


def counts(rows: list[Row]) -> dict[str, dict[str, int]]:
    by = Counter((source, label) for _, _, label, source in rows)
    return {s: {"pairs": by[(s, 0)] + by[(s, 1)], "positives": by[(s, 1)]} for s in sorted({s for s, _ in by})}
