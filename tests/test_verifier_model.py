"""The shipped same-intent verifier (services/verifier/model) and its training-data generators.

Model tests load the real int8 and fp32 ONNX files through the service's scorer and check
behaviour (symmetry, calibrated range, traps below paraphrases), not metric thresholds: those are
measured by `make train-verifier` and recorded in MODEL_CARD.md. Generator tests run the torch-free
rules of tools/training on fixed inputs.
"""

from __future__ import annotations

import gzip
import json
import random
import re

import numpy as np
import pytest

from deja.settings import load
from services.verifier.onnx_scorer import OnnxPairScorer
from services.verifier.scorer import load_calibration, load_pair_order, load_scorer
from services.verifier.settings import SHIPPED_MODEL_DIR, VerifierSettings
from tools.training import hard_cases
from tools.training.calibrate import expected_calibration_error, fit_platt
from tools.training.data import cluster_positives, mutated_pairs, read_split
from tools.training.templates import template_pairs
from tools.training.traps import TRAPS

MODEL = SHIPPED_MODEL_DIR
MAX_FILE_BYTES = 40 * 1024 * 1024


@pytest.fixture(scope="module")
def scorer():
    return load_scorer(load(VerifierSettings, {}))


@pytest.fixture(scope="module")
def fp32_scorer():
    return OnnxPairScorer(MODEL / "fp32", model_id="fp32", calibration=load_calibration(MODEL / "fp32"))


def test_the_verifier_serves_the_shipped_model_by_default():
    settings = load(VerifierSettings, {})
    assert settings.resolved_model_dir() == MODEL
    assert load(VerifierSettings, {"DEJA_VERIFIER_MODEL_DIR": "ms-marco"}).resolved_model_dir() != MODEL


def test_every_shipped_file_fits_the_repository_limit():
    files = [p for p in MODEL.rglob("*") if p.is_file()]
    assert {"model.onnx", "tokenizer.json", "calibration.json", "MODEL_CARD.md"} <= {p.name for p in files}
    too_big = [p for p in files if p.stat().st_size > MAX_FILE_BYTES]
    assert not too_big


def test_model_card_lists_base_license_data_and_every_target_metric():
    card = (MODEL / "MODEL_CARD.md").read_text()
    metrics = json.loads((MODEL / "metrics.json").read_text())
    assert "Apache-2.0" in card and "all-MiniLM-L6-v2" in card
    for name in ("qqp", "paws", "mrpc", "stsb"):
        assert f"{metrics['test'][name]['int8']['auc']:.3f}" in card
    assert f"p50 {metrics['latency']['p50_ms']} ms" in card
    assert "DEJA_SEMANTIC_MIN_SIMILARITY" in card


def test_scores_are_calibrated_probabilities_and_symmetric(scorer):
    a, b = "How do I center a div in CSS?", "css: center a div"
    forward, backward = scorer.score(a, [b])[0], scorer.score(b, [a])[0]
    assert 0.0 < forward < 1.0
    assert forward == pytest.approx(backward, abs=1e-6)
    assert load_calibration(MODEL) is not None  # a fitted Platt scaling, not the plain sigmoid


def test_the_shipped_model_scores_one_sorted_row_per_candidate_all_in_one_call(scorer):
    assert load_pair_order(MODEL) == "canonical"  # trained on both orders; its calibration fits that rule
    assert scorer.pair_order == "canonical"
    assert scorer.batches_candidates  # static int8: rows do not share activation scales


def test_an_unknown_pair_order_is_refused(tmp_path):
    (tmp_path / "calibration.json").write_text(json.dumps({"method": "platt", "a": 1, "b": 0, "pair_order": "first"}))
    with pytest.raises(ValueError, match="pair_order"):
        load_pair_order(tmp_path)
    (tmp_path / "calibration.json").write_text(json.dumps({"method": "platt", "a": 1, "b": 0}))
    assert load_pair_order(tmp_path) == "both"  # calibrations fitted before the field existed


def test_the_int8_graph_holds_the_fp32_weights_within_quantization_error():
    # The MLX backend reads the verifier's weights out of model.onnx (QDQ: per-channel DequantizeLinear).
    import onnx

    from services.verifier.onnx_weights import read_weights

    int8 = read_weights(onnx.load(str(MODEL / "model.onnx")))
    fp32 = read_weights(onnx.load(str(MODEL / "fp32" / "model.onnx")))
    assert int8.keys() == fp32.keys() and "classifier.weight" in fp32
    for name, reference in fp32.items():
        assert int8[name].shape == reference.shape, name
        # int8 steps are 1/127 of a channel's largest |weight|: a mis-read axis or scale is off by far more
        assert np.abs(int8[name] - reference).max() <= np.abs(reference).max() / 100, name


@pytest.mark.parametrize("which", ["int8", "fp32"])
def test_traps_score_below_paraphrases(which, scorer, fp32_scorer):
    model = scorer if which == "int8" else fp32_scorer
    same = [model.score(t.a, [t.b])[0] for t in TRAPS if t.label == 1]
    different = [model.score(t.a, [t.b])[0] for t in TRAPS if t.label == 0]
    assert np.median(same) > np.median(different)
    assert np.mean(same) > np.mean(different) + 0.2


def test_sort_ascending_is_not_sort_descending(scorer):
    query = "How do I sort a list in ascending order in Python?"
    descending, reworded = scorer.score(query, ["How do I sort a list in descending order in Python?",
                                                "python sort list ascending"])  # fmt: skip
    assert descending < 0.5
    assert reworded > descending


def test_fp32_and_int8_agree_on_the_ranking(scorer, fp32_scorer):
    pairs = [(t.a, t.b) for t in TRAPS]
    int8 = np.array([scorer.score(a, [b])[0] for a, b in pairs])
    fp32 = np.array([fp32_scorer.score(a, [b])[0] for a, b in pairs])
    assert np.corrcoef(np.argsort(np.argsort(int8)), np.argsort(np.argsort(fp32)))[0, 1] > 0.9


# --- training-data generators (torch-free) ---


def rng() -> random.Random:
    return random.Random(0)


def changed_words(a: str, b: str) -> tuple[list[str], list[str]]:
    wa, wb = a.split(), b.split()
    return [w for w in wa if w not in wb], [w for w in wb if w not in wa]


def test_antonym_swaps_exactly_one_word_for_its_opposite():
    out = hard_cases.swap_antonym("How do I sort a list in ascending order?", rng())
    assert out == "How do I sort a list in descending order?"
    assert hard_cases.swap_antonym("Enable dark mode", rng()) == "Disable dark mode"  # case kept
    assert hard_cases.swap_antonym("What is a list?", rng()) is None


def test_negation_is_added_or_removed():
    assert hard_cases.negate("Why doesn't my code compile?", rng()) == "Why does my code compile?"
    assert hard_cases.negate("Why does my code compile?", rng()) == "Why doesn't my code compile?"
    assert hard_cases.negate("How to lose weight", rng()) == "How to not lose weight"
    assert hard_cases.negate("Tea", rng()) is None


def test_entity_swap_stays_in_its_category():
    out = hard_cases.swap_entity("How do I read a file in Python?", rng())
    removed, added = changed_words("How do I read a file in Python?", out)
    assert removed == ["Python?"] and added[0].rstrip("?") in hard_cases.ENTITIES["programming language"]


def test_number_and_unit_changes():
    out = hard_cases.swap_number("How many bytes are in 5 GB?", rng())
    assert out != "How many bytes are in 5 GB?" and re.fullmatch(r"How many bytes are in \d+ GB\?", out)
    assert hard_cases.swap_number("Python 3.11 features", rng()) not in (None, "Python 3.11 features")
    unit = hard_cases.swap_unit("How far is 10 km?", rng())
    assert re.fullmatch(r"How far is 10 (miles|meters|feet)\?", unit)


def test_direction_is_reversed():
    assert hard_cases.swap_direction("How do I convert Celsius to Fahrenheit in Java?", rng()) == (
        "How do I convert Fahrenheit to Celsius in Java?"
    )
    assert hard_cases.swap_direction("How do I migrate from MySQL to PostgreSQL?", rng()) == (
        "How do I migrate from PostgreSQL to MySQL?"
    )
    assert hard_cases.swap_direction("What is love?", rng()) is None


def test_positives_keep_the_words_that_matter():
    text = "What is the difference between TCP and UDP?"
    assert hard_cases.reorder(text, rng()) == "What is the difference between UDP and TCP?"
    assert hard_cases.reword(text, rng()) == "What's the difference between TCP and UDP?"
    typo = hard_cases.add_typos(text, rng(), count=1)
    assert typo != text and len(changed_words(text, typo)[0]) == 1
    assert hard_cases.restyle(text, random.Random(3)) != text


def test_relation_traps_change_who_when_or_how_many():
    assert hard_cases.swap_conjunction("Is Ann a doctor or a nurse?", rng()) == "Is Ann a doctor and a nurse?"
    assert hard_cases.swap_conjunction("What is the capital of India?", rng()) is None
    assert hard_cases.swap_pronoun("If Ann and Bob marry, is his family happy?", rng()) == (
        "If Ann and Bob marry, is her family happy?"
    )
    assert hard_cases.swap_people("Does Rachel Green love Ross?", rng()) == "Does Ross love Rachel Green?"
    assert hard_cases.swap_people("Are Ann and Bob friends?", rng()) is None  # a symmetric list stays
    assert hard_cases.swap_people("How do I learn Python?", rng()) is None  # "I" is not a name
    tenses = {hard_cases.change_tense("Is Aaron Ward a player?", random.Random(seed)) for seed in range(20)}
    assert tenses == {"Was Aaron Ward a player?", "Is Aaron Ward becoming a player?"}
    assert hard_cases.change_tense("What is the capital of India?", rng()) == "What was the capital of India?"


def test_a_preamble_keeps_the_question_whole():
    out = hard_cases.add_preamble("How do I sort a list?", rng())
    assert out.endswith("how do I sort a list?") and out[: -len("how do I sort a list?")] in hard_cases.PREAMBLES
    assert hard_cases.add_preamble("I lost my key. What now?", rng()).endswith("I lost my key. What now?")
    assert hard_cases.add_preamble("?", rng()) is None


def test_template_pairs_label_paraphrases_1_and_one_slot_changes_0():
    rows = template_pairs(random.Random(5), 400)
    assert len(rows) == 400
    labels = [label for _, _, label, _ in rows]
    assert 0.3 < np.mean(labels) < 0.7
    assert all(a != b for a, b, label, _ in rows if label == 0)
    assert {kind for *_, kind in rows} >= {"template-paraphrase", "template-direction", "template-order"}
    sort_negatives = [(a, b) for a, b, label, kind in rows if kind == "template-order"]
    assert all(("ascending" in a) != ("ascending" in b) for a, b in sort_negatives)


def test_platt_fit_recovers_a_known_scaling():
    generator = np.random.default_rng(0)
    logits = generator.normal(0, 3, 20000)
    labels = (generator.random(20000) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))).astype(int)
    a, b = fit_platt(logits, labels)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1.0, abs=0.1)
    p = 1 / (1 + np.exp(-(a * logits + b)))
    assert expected_calibration_error(p, labels) < 0.02


def test_roles_swap_two_names_but_not_a_symmetric_list():
    out = hard_cases.swap_roles("He said Aamir Khan agreed after reading Mehra 's script .", rng())
    assert out == "He said Mehra agreed after reading Aamir Khan 's script ."
    # A name run that starts the sentence is skipped (its first word is capitalised anyway).
    assert hard_cases.swap_roles("Aamir Khan agreed after reading Mehra 's script .", rng()) is None
    assert hard_cases.swap_roles("the team from Paris and London won", rng()) is None  # "A and B" == "B and A"
    moved = hard_cases.swap_roles("He moved from Ohio to Texas in 1990 .", random.Random(3))
    assert sorted(changed_words("He moved from Ohio to Texas in 1990 .", moved)[0]) in (["Ohio", "Texas"], [])
    assert sorted(moved.split()) == sorted("He moved from Ohio to Texas in 1990 .".split())


def test_a_leading_phrase_moves_to_the_end():
    out = hard_cases.move_phrase("In 1972 , the family moved to Camp Hill .", rng())
    assert out == "The family moved to Camp Hill in 1972 ."
    assert hard_cases.move_phrase("The family moved in 1972 .", rng()) is None


def write_tsv(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("text_a\ttext_b\tlabel\n" + "".join(f"{a}\t{b}\t{label}\n" for a, b, label in rows))


def write_clusters(path, clusters: dict[int, list[str]]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"question": q, "cluster_id": c}) + "\n" for c, qs in clusters.items() for q in qs)


def test_cluster_positives_pair_unlabelled_train_questions_of_one_cluster_only(tmp_path):
    train = [("a1", "a2", 1), ("a2", "a3", 1), ("b1", "x", 0)]
    write_tsv(tmp_path / "qqp" / "train.tsv.gz", train)
    # t*: another split's questions
    write_clusters(tmp_path / "qqp" / "clusters.jsonl.gz", {0: ["a1", "a2", "a3"], 1: ["b1", "t1"], 2: ["t2", "t3"]})
    rows = cluster_positives(tmp_path, read_split(tmp_path, "qqp", "train"), random.Random(1))
    assert rows == [("a1", "a3", 1, "qqp-cluster")]  # the one pair not labelled already; no mixed cluster
    write_tsv(tmp_path / "qqp" / "train.tsv.gz", [(f"q{i}", f"q{i + 1}", 1) for i in range(9)])
    write_clusters(tmp_path / "qqp" / "clusters.jsonl.gz", {0: [f"q{i}" for i in range(10)]})
    rows = cluster_positives(tmp_path, read_split(tmp_path, "qqp", "train"), random.Random(1), per_cluster=4)
    assert len(rows) == 4 and len({frozenset(r[:2]) for r in rows}) == 4


def test_contrast_gives_every_negative_mutations_question_a_harmless_edit():
    questions = ["How do I convert Celsius to Fahrenheit in Python?", "How do I sort a list in ascending order?"]
    rows = mutated_pairs(questions, random.Random(2), per_kind=2, contrast=True)
    negatives = [r for r in rows if r[2] == 0]
    contrasts = [r for r in rows if r[3] == "mutation-contrast"]
    assert negatives and len(contrasts) == len(negatives)
    assert all(label == 1 and a in questions and b != a for a, b, label, _ in contrasts)
    assert not [r for r in mutated_pairs(questions, random.Random(2), per_kind=2) if r[3] == "mutation-contrast"]


# --- mined neighbours, CheckList train, the verifier's workload replay ---


def test_mined_neighbours_are_the_nearest_others_above_the_floor_best_first():
    from tools.training.mine import neighbours

    vectors = np.array([[1.0, 0.0], [0.96, 0.28], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    found = neighbours(vectors, [0, 3], k=2, floor=0.5)
    assert [i for i, _ in found[0]] == [1, 2]  # itself excluded, nearest first
    assert found[0][0][1] == pytest.approx(0.96)
    assert [i for i, _ in found[1]] == [2]  # 0.28 is under the floor


def test_mined_pairs_take_labels_only_from_clusters_wholly_in_train(tmp_path):
    from tools.training.mine import clusters_of

    (tmp_path / "qqp").mkdir()
    write_clusters(tmp_path / "qqp" / "clusters.jsonl.gz", {0: ["a1", "a2"], 1: ["b1", "t1"], 2: ["c1"]})
    assert clusters_of(tmp_path, {"a1", "a2", "b1", "c1"}) == {"a1": 0, "a2": 0, "c1": 2}


def write_checklist(path, tests: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("text_a\ttext_b\tlabel\tcapability\ttest\n")
        handle.writelines(f"{t} q{i}\t{t} r{i}\t{i % 2}\tcap\t{t}\n" for t, n in tests.items() for i in range(n))


def test_checklist_training_takes_at_most_n_pairs_of_every_train_test(tmp_path):
    from tools.training.data import checklist_rows, checklist_tests

    write_checklist(tmp_path / "checklist" / "train.tsv.gz", {"negation": 10, "roles": 3})
    write_checklist(tmp_path / "checklist" / "test.tsv.gz", {"held out": 5})
    rows = checklist_rows(tmp_path, random.Random(0), per_test=4)
    assert sorted(r[0].split()[0] for r in rows) == ["negation"] * 4 + ["roles"] * 3
    assert {r[3] for r in rows} == {"checklist"} and not [r for r in rows if "held" in r[0]]
    assert checklist_tests(tmp_path, "test") == ["held out"] * 5


def test_a_recipe_with_mined_pairs_needs_the_miner_first(tmp_path, monkeypatch):
    from tools.training import data

    monkeypatch.setattr(data, "MINED_PATH", tmp_path / "mined.tsv.gz")
    with pytest.raises(SystemExit, match="mine"):
        data.read_mined(data.MINED_PATH)
    with gzip.open(data.MINED_PATH, "wt", encoding="utf-8") as handle:
        handle.write("text_a\ttext_b\tlabel\trank\tcosine\nq\tr\t0\t1\t0.9\n")
    assert data.read_mined(data.MINED_PATH) == [("q", "r", 0, "qqp-mined")]


def test_the_workload_replay_serves_the_verified_neighbour_and_caches_misses():
    from tools.eval.workload import neighbours
    from tools.training.evaluate import embedder
    from tools.training.workload_eval import Replay

    requests = [
        {"question": "How do I sort a list in ascending order in Python?", "cluster": "asc"},
        {"question": "How do I sort a list in descending order in Python?", "cluster": "desc"},
        {"question": "How can I sort a Python list in ascending order?", "cluster": "asc"},
        {"question": "How do I sort a list in descending order in Python?", "cluster": "desc"},
    ]
    vectors = embedder().embed([r["question"] for r in requests])
    index, cosine = neighbours(vectors, [""] * len(requests))
    replay = Replay(requests, index, cosine, MODEL)
    strict = replay.run(1.01)  # nothing clears: every new text a miss; the same text again an exact hit
    assert strict["semantic_hits"] == 0 and strict["exact_hits"] == 1 and strict["repeats_served"] == 0.5
    loose = replay.run(0.0)  # the best of the cached candidates is served, whatever its score
    assert loose["semantic_hits"] >= 1 and loose["requests"] == 4
    assert replay.memo  # scores were computed once per (request, entry) pair and kept
    # Nearest first, as the gateway: when it clears, one call of one candidate; else a second call.
    assert loose["verify_calls_per_lookup"] == 1.0 == loose["candidates_verified_per_lookup"]
    assert strict["verify_calls_per_lookup"] > 1.0
    at_once = Replay(requests, index, cosine, MODEL, nearest_first=False).run(1.01)
    assert at_once["verify_calls_per_lookup"] == 1.0
    assert at_once["candidates_verified_per_lookup"] == strict["candidates_verified_per_lookup"]


def test_model_card_of_a_distilled_student_names_its_layers_and_teacher(tmp_path):
    """A student stage (`keep_layers`, `distill` in train.py) is described as what it is: fewer layers of
    the stage before it, learning from that teacher's probabilities as well as from the labels."""
    from tools.training import model_card

    teacher = json.loads((MODEL / "training.json").read_text())
    student = {
        **teacher,
        "init": "services/verifier/model",
        "init_training": teacher,
        "hyper": {**teacher["hyper"], "keep_layers": ["0", "1", "3", "5"], "distill": 0.85},
    }
    metrics = json.loads((MODEL / "metrics.json").read_text())
    card = model_card.render(metrics, student, tmp_path)
    stages = len(model_card._stages(teacher))
    assert "# Deja same-intent verifier (MiniLM-L6 cross-encoder distilled to 4 layers)" in card
    assert f"### Stage {stages + 1} (from encoder layers 0, 1, 3, 5 of the model of stage {stages})" in card
    assert "0.85 x the previous stage's own probability" in card and "0.15 x its label" in card
    # the shipped (undistilled) model's card keeps its plain title and no distillation line
    plain = model_card.render(metrics, teacher, tmp_path)
    assert "# Deja same-intent verifier (MiniLM-L6 cross-encoder)" in plain and "Distilled:" not in plain
