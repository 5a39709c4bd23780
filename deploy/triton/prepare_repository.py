"""Finish the Triton model repository after the model files are built (`make models` runs this).

1. Places the verifier's default model (the one an empty DEJA_VERIFIER_MODEL_DIR serves) at
   `verifier/1/model.onnx`, copied only when the bytes differ; the triton scorer reads the
   tokenizer and calibration from that same model directory.
2. Writes each model's version into every config of that model as the parameter
   `deja_model_version`: the first 16 hex of blake3 over `1/model.onnx`, the same hash the
   embedded ONNX backends report. Triton does not know which weights a version directory holds;
   the Triton backends read this parameter back (get_model_config), so the same ONNX file gives
   the same `model_version` through Triton and through ONNX Runtime, and vectors or scores of
   two different models never share one. The export is byte-reproducible, so the committed
   value only changes when the model does; a config is rewritten only when its value is stale.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from services.embedder.backends import file_version  # the hash the ONNX backends report

REPOSITORY = Path(__file__).resolve().parent / "model_repository"
PARAMETER = "deja_model_version"
_LINE = re.compile(rf'^parameters {{ key: "{PARAMETER}" value: {{ string_value: "[0-9a-f]*" }} }}\n?', re.M)
_COMMENT = "# Written by `make models` (deploy/triton/prepare_repository.py): blake3 of 1/model.onnx, 16 hex.\n"


def place_verifier(repository: Path) -> None:
    """The verifier's default model (what an empty DEJA_VERIFIER_MODEL_DIR serves) at verifier/1/."""
    from services.verifier.settings import VerifierSettings

    source = VerifierSettings().resolved_model_dir() / "model.onnx"
    if not source.is_file():  # e.g. before the first `make train-verifier`, which itself needs `make models`
        print(f"prepare_repository: no verifier model at {source}: verifier/1 left as it is")
        return
    target = repository / "verifier" / "1" / "model.onnx"
    if target.is_file() and file_version(target) == file_version(source):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    print(f"prepare_repository: {target.relative_to(repository.parent)} from {source}")


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
        version = file_version(weights)
        for config in [model / "config.pbtxt", *sorted((model / "configs").glob("*.pbtxt"))]:
            if stamp(config, version):
                print(f"prepare_repository: {config.relative_to(REPOSITORY.parent)} -> {PARAMETER} {version}")


if __name__ == "__main__":
    main()
