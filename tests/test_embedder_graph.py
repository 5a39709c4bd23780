"""The embedder's ONNX graph as `make models` builds it without torch (tools/models/build_onnx.py).

Its equality with the torch export (cosine >= 0.9999) is the developer target
`make check-embedder-export`: CI has no torch. Here: the build is reproducible and torch-free, it is
the file `make models` serves, the graph keeps its contract (names, types, dynamic axes, unit rows,
padding-invariant) and the weights stay readable by name for the MLX backend.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from services.embedder.backends import OnnxBackend
from services.embedder.base import default_tokenizer_path, resolve
from services.embedder.settings import EmbedderSettings
from services.verifier.onnx_weights import read_weights
from tools.models.build_onnx import build, model_dir, read_safetensors
from tools.models.common import EMBEDDER_INT8_ONNX, EMBEDDER_ONNX
from tools.models.quantize_embedder import quantize

REPO = resolve(".")
MODEL = EMBEDDER_ONNX  # the fp32 graph (Triton's)
INT8 = EMBEDDER_INT8_ONNX  # its int8 form: the CPU default
TEXTS = [
    "How do I center a div?",
    "",
    "x",
    "Wie spät ist es in Tokio? 東京は今何時ですか 🙂",
    "Explain the difference between a process and a thread, with an example of each, and when a Python "
    "web service should use one or the other. " * 20,  # past the 256-token cap
]


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return read_safetensors(model_dir() / "model.safetensors")


@pytest.fixture(scope="module")
def built(weights) -> bytes:
    config = json.loads((model_dir() / "config.json").read_text())
    return build(weights, config).SerializeToString(deterministic=True)


@pytest.fixture(scope="module")
def session(built) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(built, options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    return tokenizer


def embed(session, tokenizer, texts: list[str], width: int = 0) -> np.ndarray:
    """Right-padded to the longest text (or to `width`), as the embedder's backends send them."""
    encodings = tokenizer.encode_batch(texts)
    width = max(width, *(len(e.ids) for e in encodings))
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    (vectors,) = session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
    return vectors


def test_the_cli_builds_the_same_bytes_without_torch(built, tmp_path):
    """A second build, through the CLI in a fresh interpreter where torch and transformers cannot be
    imported, gives identical bytes: the model_version (blake3 of the file) is the same everywhere."""
    out = tmp_path / "model.onnx"
    script = (
        "import sys, runpy; sys.modules.update(torch=None, transformers=None); "  # importing either now fails
        f"sys.argv = ['build_onnx', '--out', {str(out)!r}]; "
        "runpy.run_module('tools.models.build_onnx', run_name='__main__')"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=120)
    assert out.read_bytes() == built


def test_make_models_builds_this_file_with_no_torch_on_the_way():
    """`make setup models run test`, dry-run from scratch (-B): the graph comes from build_onnx.py in
    .venv, and no step touches the export venv or export_onnx.py."""
    plan = subprocess.run(
        ["make", "-n", "-B", "setup", "models", "run", "test"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert f".venv/bin/python tools/models/build_onnx.py --out {MODEL.relative_to(REPO)}" in plan
    source, out = MODEL.relative_to(REPO), INT8.relative_to(REPO)
    int8 = f".venv/bin/python tools/models/quantize_embedder.py --source {source} --out {out}"
    assert int8 in plan and resolve(EmbedderSettings.model_path) == INT8
    assert ".venv-export" not in plan and "export_onnx" not in plan and "torch" not in plan
    installed = (REPO / "requirements.lock").read_text() + (REPO / "requirements-models.txt").read_text()
    assert not [line for line in installed.splitlines() if line.lower().startswith(("torch", "transformers"))]


def test_make_models_wrote_these_bytes(built):
    if not MODEL.is_file():
        pytest.skip(f"no ONNX model at {MODEL}: run `make models` (`make test` builds it first)")
    assert MODEL.read_bytes() == built, "the served model is not the build_onnx.py graph: run `make models`"


def test_the_graph_keeps_the_contract_the_backends_and_triton_use(built, session):
    model = onnx.load_model_from_string(built)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)] and model.ir_version == 8
    dims = [
        (v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
        for v in [*model.graph.input, *model.graph.output]
    ]
    assert dims == [
        ("input_ids", onnx.TensorProto.INT64, ["batch", "sequence"]),
        ("attention_mask", onnx.TensorProto.INT64, ["batch", "sequence"]),
        ("embeddings", onnx.TensorProto.FLOAT, ["batch", 384]),
    ]
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert len(built) < 95e6  # fp32 weights, nothing duplicated (the checkpoint is 90.9 MB)


def test_rows_are_unit_length_and_padding_changes_nothing(session, tokenizer):
    batch = embed(session, tokenizer, TEXTS, width=300)  # every row padded, the long one to 300 > 256
    assert batch.shape == (len(TEXTS), 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    for row, text in enumerate(TEXTS):
        np.testing.assert_allclose(batch[row], embed(session, tokenizer, [text])[0], atol=1e-5, err_msg=text)


def test_paraphrases_are_nearer_than_unrelated_questions(session, tokenizer):
    query, paraphrase, unrelated = embed(
        session,
        tokenizer,
        [
            "How do I center a div?",
            "CSS: how to center a div horizontally and vertically",
            "What is the capital of France?",
        ],
    )
    assert query @ paraphrase > 0.7 > 0.2 > query @ unrelated


def test_the_mlx_backend_reads_the_checkpoint_back_out_of_the_graph(built, weights):
    """services/verifier/onnx_weights.py finds every weight by its name / MatMul pattern (what
    deja/mlx_bert.py loads); the pooler, unused by mean pooling, is not in the graph."""
    found = read_weights(onnx.load_model_from_string(built))
    expected = {name for name in weights if not name.startswith("pooler.") and name != "embeddings.position_ids"}
    assert set(found) == expected
    for name in expected:
        np.testing.assert_array_equal(found[name], weights[name], err_msg=name)


# -- the int8 form, the CPU default (tools/models/quantize_embedder.py) -------------------------


def test_the_int8_default_is_this_graph_quantized_reproducibly(tmp_path):
    if not INT8.is_file() or not MODEL.is_file():
        pytest.skip("no built models: run `make models` (`make test` builds them first)")
    again = tmp_path / "int8.onnx"
    quantize(MODEL, again)
    assert again.read_bytes() == INT8.read_bytes(), "the served int8 model is not MODEL quantized: run `make models`"
    ops = [node.op_type for node in onnx.load(str(INT8)).graph.node]
    assert ops.count("MatMulInteger") == 6 * 6  # each layer's Q, K, V, output and two FFN weights run in int8


def test_int8_vectors_keep_the_fp32_geometry(tokenizer):
    if not INT8.is_file() or not MODEL.is_file():
        pytest.skip("no built models: run `make models` (`make test` builds them first)")
    texts = [*TEXTS, "CSS to center a div?", "How do I sort a list in descending order?"]
    fp32, int8 = (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (MODEL, INT8))
    want = np.stack([embed(fp32, tokenizer, [text])[0] for text in texts])
    got = np.stack([embed(int8, tokenizer, [text])[0] for text in texts])
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert float(np.min(np.sum(got * want, axis=1))) >= 0.97
    # cosine between texts moves by a few hundredths at most, and a paraphrase stays the nearest
    np.testing.assert_allclose(got @ got.T, want @ want.T, atol=0.05)
    div, css, sort = got[0], got[-2], got[-1]
    assert float(div @ css) > float(div @ sort) + 0.3


def test_a_quantized_graph_embeds_one_text_per_run_so_a_vector_never_depends_on_its_batch():
    if not INT8.is_file() or not MODEL.is_file():
        pytest.skip("no built models: run `make models` (`make test` builds them first)")
    int8, fp32 = OnnxBackend(INT8, threads=1), OnnxBackend(MODEL, threads=1)
    assert not int8.rows_independent and fp32.rows_independent  # fp32 keeps its batched runs
    alone = np.stack([int8.embed([text])[0] for text in TEXTS])
    np.testing.assert_array_equal(int8.embed(TEXTS), alone)
