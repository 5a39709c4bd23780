"""The model's dev reliability table -> <model>/reliability.json: the gateway's error-budget prior.

The same held-out dev pairs the calibration is fitted on (QQP dev sample + STS-B dev), scored by the
shipped, calibrated model: per score bin, how many pairs and how many of them were *not* the same
intent. The gateway starts every tenant from this table (scaled down to a few pseudo-observations,
DEJA_ERROR_PRIOR_WEIGHT), so a new tenant's serve threshold is only as low as the dev evidence allows:

    .venv/bin/python -m tools.training.reliability --model services/verifier/model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import structlog

from deja.settings import load
from services.verifier.scorer import load_scorer
from services.verifier.settings import VerifierSettings
from tools.training.data import calibration_rows
from tools.training.evaluate import SEED

BIN = 0.02


def table(scores: np.ndarray, labels: np.ndarray) -> list[list[float]]:
    """[[lower edge, pairs, wrong], ...] for every non-empty bin of width BIN."""
    edges = np.minimum(np.floor(scores / BIN), round(1 / BIN) - 1).astype(int)
    rows = []
    for b in sorted(set(edges.tolist())):
        inside = edges == b
        rows.append([round(b * BIN, 4), int(inside.sum()), int((labels[inside] == 0).sum())])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("services/verifier/model"))
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    rows = calibration_rows(args.datasets, SEED)
    scorer = load_scorer(load(VerifierSettings, {"DEJA_VERIFIER_MODEL_DIR": str(args.model)}))
    scores = np.array([scorer.score(a, [b])[0] for a, b, _, _ in rows], dtype=np.float64)
    labels = np.array([r[2] for r in rows])
    record = {
        "fitted_on": {"pairs": len(rows), "positives": int(labels.sum()), "sets": sorted({r[3] for r in rows})},
        "model_version": scorer.info.model_version,
        "bin_width": BIN,
        "bins": table(scores, labels),
    }
    (args.model / "reliability.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"reliability: {len(rows)} dev pairs, {len(record['bins'])} bins -> {args.model / 'reliability.json'}")


if __name__ == "__main__":
    main()
