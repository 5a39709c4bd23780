import re
from collections import Counter, defaultdict

import pytest

from tools.eval.workload_coding import (
    MAX_ASKS,
    MIN_ASKS,
    all_intents,
    coding_intents,
    coding_workload,
    differing_slots,
    intent_of,
    paraphrases,
    trap_pairs,
)


@pytest.fixture(scope="module")
def workload():
    return coding_workload()


@pytest.fixture(scope="module")
def intents():
    return coding_intents()


def _asks(requests):
    by_cluster = defaultdict(list)
    for request in requests:
        by_cluster[request["cluster"]].append(request["question"])
    return by_cluster


def _normalized(question):
    return " ".join(re.sub(r"[^\w#+]+", " ", question.casefold()).split())


def test_deterministic_for_a_seed_and_different_across_seeds(workload):
    assert coding_workload(seed=0) == workload
    assert coding_intents(seed=0) == coding_intents(seed=0)
    other = coding_workload(seed=1)
    assert other != workload
    assert {r["cluster"] for r in other} != {r["cluster"] for r in workload}


def test_requests_are_question_and_cluster_strings(workload):
    for request in workload:
        assert set(request) == {"question", "cluster"}
        assert isinstance(request["question"], str) and request["question"].strip()
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", request["cluster"]), request["cluster"]


def test_no_question_in_two_clusters_and_no_duplicate_strings(workload):
    questions = [r["question"] for r in workload]
    assert len(set(questions)) == len(questions)
    owners = defaultdict(set)
    for request in workload:
        owners[_normalized(request["question"])].add(request["cluster"])
    assert all(len(clusters) == 1 for clusters in owners.values())  # not even up to case and punctuation


def test_every_surface_form_of_every_intent_is_unique():
    # The whole template space, not only one draw: no seed can produce a string shared by two clusters.
    owner = {}
    for intent in all_intents():
        forms = paraphrases(intent)
        assert len(set(forms)) == len(forms) >= MAX_ASKS
        for form in forms:
            assert owner.setdefault(_normalized(form), intent.cluster) == intent.cluster, form


def test_each_cluster_is_asked_two_to_five_times(workload):
    counts = Counter(len(questions) for questions in _asks(workload).values())
    assert min(counts) >= MIN_ASKS >= 2 and max(counts) <= MAX_ASKS
    assert len(counts) >= 3  # the number of asks varies


def test_sizes():
    for n in (1, 10, 57, 200):
        requests = coding_workload(n, seed=3)
        clusters = {r["cluster"] for r in requests}
        assert len(clusters) == n
        assert MIN_ASKS * n <= len(requests) <= MAX_ASKS * n
    assert coding_workload(0) == []
    assert 600 <= len(coding_workload()) <= 800  # ~3.5 asks per intent
    with pytest.raises(ValueError):
        coding_workload(-1)
    with pytest.raises(ValueError):
        coding_workload(len(all_intents()) + 1)


def test_the_template_space_is_broad():
    pool = all_intents()
    assert len(pool) >= 300
    assert len({intent.task for intent in pool}) >= 25
    languages = {intent.slot("language") for intent in pool if "language" in dict(intent.slots)}
    assert len(languages) >= 8
    assert len({intent.cluster for intent in pool}) == len(pool)
    default = {intent.task for intent in coding_intents()}
    assert len(default) == len({intent.task for intent in pool})  # every task is drawn on


def test_intents_match_the_workload(workload, intents):
    asks = _asks(workload)
    assert {i.cluster: Counter(i.questions) for i in intents} == {c: Counter(q) for c, q in asks.items()}
    for intent in intents:
        assert intent_of(intent.cluster).slots == intent.slots
        assert set(intent.questions) <= set(paraphrases(intent))


def test_trap_siblings_differ_in_exactly_one_slot_and_share_templates(intents):
    by_cluster = {intent.cluster: intent for intent in intents}
    with_sibling = [intent for intent in intents if intent.sibling]
    assert with_sibling
    for intent in with_sibling:
        sibling = by_cluster[intent.sibling]
        assert sibling.sibling == intent.cluster
        assert len(differing_slots(intent, sibling)) == 1
        # Same question templates and wording, in the same order: the strings differ only in the slot.
        mine = [paraphrases(intent).index(q) for q in intent.questions]
        theirs = [paraphrases(sibling).index(q) for q in sibling.questions]
        shared = min(len(mine), len(theirs))
        assert mine[:shared] == theirs[:shared]


def test_only_the_designed_pairs_are_one_slot_apart(workload, intents):
    designed = {frozenset((i.cluster, i.sibling)) for i in intents if i.sibling}
    found = trap_pairs(workload)
    assert {frozenset(pair[:2]) for pair in found} == designed
    with_trap = {cluster for pair in found for cluster in pair[:2]}
    assert 0.40 <= len(with_trap) / len({r["cluster"] for r in workload}) <= 0.50


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_named_traps_are_present(seed):
    pairs = [(intent_of(a), intent_of(b), slot) for a, b, slot in trap_pairs(coding_workload(seed=seed))]

    def values(slot):
        return {frozenset((a.slot(slot), b.slot(slot))) for a, b, s in pairs if s == slot}

    assert frozenset({"asc", "desc"}) in values("order")
    assert frozenset({"time", "space"}) in values("measure")
    assert frozenset({"bytes", "bits"}) in values("small")
    assert frozenset({"c2f", "f2c"}) in values("direction")
    assert values("language")  # e.g. Python vs Rust


def test_trap_pair_strings_are_nearly_identical(intents):
    by_cluster = {intent.cluster: intent for intent in intents}
    base = next(i for i in intents if i.sibling and differing_slots(i, by_cluster[i.sibling]) == ["small"])
    a, b = base.questions[0], by_cluster[base.sibling].questions[0]
    assert a != b and a.replace("bytes", "bits") == b.replace("bytes", "bits")


def test_asks_of_a_cluster_are_interleaved(workload):
    positions = defaultdict(list)
    for index, request in enumerate(workload):
        positions[request["cluster"]].append(index)
    contiguous = sum(1 for p in positions.values() if p[-1] - p[0] == len(p) - 1)
    assert contiguous < len(positions) / 10
