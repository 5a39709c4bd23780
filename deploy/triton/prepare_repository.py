"""Finish the Triton model repository after the model files are built (`make models` runs this).

1. Places the verifier's default model (the one an empty DEJA_VERIFIER_MODEL_DIR serves) at
   `verifier/1/model.onnx` (static int8), and its fp32 export (`fp32/model.onnx` with its
   external-data files) at `verifier-fp32/1/` (for GPU nodes), each copied only when the bytes
   differ; the triton scorer reads the tokenizer and calibration from that same model directory.
2. Writes each model's version into every config of that model as the parameter
   `deja_model_version`: the first 16 hex of blake3 over `1/model.onnx` and its external-data
   files (`model_version`), the same hash the embedded ONNX backends report. Triton does not
   know which weights a version directory holds; the Triton backends read this parameter back
   (get_model_config), so the same model gives the same `model_version` through Triton and
   through ONNX Runtime, and vectors or scores of two different models never share one. The
   export is byte-reproducible, so the committed value only changes when the model does; a
   config is rewritten only when its value is stale.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from services.verifier.scorer import model_version  # the hash the ONNX backends report

REPOSITORY = Path(__file__).resolve().parent / "model_repository"
PARAMETER = "deja_model_version"
_LINE = re.compile(rf'^parameters {{ key: "{PARAMETER}" value: {{ string_value: "[0-9a-f]*" }} }}\n?', re.M)
_COMMENT = "# Written by `make models` (deploy/triton/prepare_repository.py): blake3 of 1/model.onnx(.data*), 16 hex.\n"


def place_verifier(repository: Path) -> None:
    """The verifier's default model (what an empty DEJA_VERIFIER_MODEL_DIR serves) at verifier/1/,
    its fp32 export at verifier-fp32/1/."""
    from services.verifier.settings import VerifierSettings

    source = VerifierSettings().resolved_model_dir()
    for folder, name in ((source, "verifier"), (source / "fp32", "verifier-fp32")):
        if not (folder / "model.onnx").is_file():  # e.g. before the first `make train-verifier`
            print(f"prepare_repository: no verifier model at {folder}: {name}/1 left as it is")
            continue
        target = repository / name / "1"
        if (target / "model.onnx").is_file() and model_version(target) == model_version(folder):
            continue
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.glob("model.onnx*"):
            stale.unlink()
        for weights in [folder / "model.onnx", *sorted(folder.glob("model.onnx.data*"))]:
            shutil.copyfile(weights, target / weights.name)
        print(f"prepare_repository: {target.relative_to(repository.parent)} from {folder}")


def stamp(config: Path, version: str) -> bool:
    """Set the version parameter in one config file; True when the file changed."""
    text = config.read_text()
    line = f'parameters {{ key: "{PARAMETER}" value: {{ string_value: "{version}" }} }}\n'
    if _LINE.search(text):
        updated = _LINE.sub(line, text)
    else:
        updated = text.rstrip("\n") + "\n\n" + _COMMENT + line
    if updated == text:
        return False
    config.write_text(updated)
    return True


def main() -> None:
    place_verifier(REPOSITORY)
    for model in sorted(p for p in REPOSITORY.iterdir() if (p / "config.pbtxt").is_file()):
        weights = model / "1" / "model.onnx"
        if not weights.is_file():
            print(f"prepare_repository: {weights.relative_to(REPOSITORY.parent)} is missing: not stamped")
            continue
        version = model_version(weights.parent)
        for config in [model / "config.pbtxt", *sorted((model / "configs").glob("*.pbtxt"))]:
            if stamp(config, version):
                print(f"prepare_repository: {config.relative_to(REPOSITORY.parent)} -> {PARAMETER} {version}")


if __name__ == "__main__":
    main()
