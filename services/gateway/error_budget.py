"""The error budget: from a tenant's labeled observations, the verifier score at which a semantic
match may be served without asking anyone, with 95% confidence that the error rate stays within
the budget.

Each candidate gets one of three decisions (`decide`):
- serve: its verifier score is at or above the tenant's serve threshold — the lowest score t at
  which the upper 95% (Wilson) bound of the error rate among observations scored >= t is within
  the budget;
- judge: below that, but not clearly another question: the tenant's match model (a logistic fit
  of the judge's verdicts on the verifier's logit and the cosine, once it has `MIN_FIT`
  observations; the calibrated score itself before) gives it at least `min_yes` chance of a "yes"
  (a judge call that is refused is paid for and serves nothing), and its score is at least the
  floor (DEJA_VERIFIER_THRESHOLD);
- miss: otherwise.

Evidence = a prior + the tenant's own observations (judge verdicts, audits, feedback; stored by
the store, newest `DEJA_MAX_OBSERVATIONS`). The prior is the shipped model's dev reliability table
(services/verifier/model/reliability.json: dev pairs per score bin, and how many were wrong),
scaled down to `prior_weight` pseudo-observations so that a tenant's own evidence soon outweighs
it. With little evidence the bound is wide, so a new tenant auto-serves nothing it cannot back up
and sends the uncertain band to the judge; as verdicts come in, the serve threshold comes down
to where its own traffic shows it safe — and goes back up if audits find errors.
"""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Z95 = 1.6448536269514722  # one-sided 95%
NEVER = math.inf  # a serve threshold no score reaches


def _wilson_upper(errors: np.ndarray, n: np.ndarray, z: float) -> np.ndarray:
    """The Wilson score interval's upper end, elementwise (n > 0)."""
    p = errors / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(np.maximum(p * (1 - p), 0.0) / n + z * z / (4 * n * n))
    return np.minimum(1.0, (centre + spread) / (1 + z * z / n))


def wilson_upper(errors: float, n: float, z: float = Z95) -> float:
    """One-sided upper confidence bound of a rate (Wilson score interval); 1.0 with no evidence."""
    if n <= 0:
        return 1.0
    return float(_wilson_upper(np.float64(errors), np.float64(n), z))


def wilson_lower(successes: float, n: float, z: float = Z95) -> float:
    """One-sided lower confidence bound of a rate; 0.0 with no evidence."""
    return 1.0 - wilson_upper(n - successes, n, z) if n > 0 else 0.0


@dataclass(frozen=True)
class Prior:
    """Pseudo-observations: (score, weight, error weight) per bin."""

    scores: np.ndarray
    weights: np.ndarray
    errors: np.ndarray

    @classmethod
    def empty(cls) -> Prior:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def from_reliability(cls, path: Path, total_weight: float) -> Prior:
        """reliability.json: {"bins": [[lower score, pairs, wrong], ...]} -> `total_weight` pseudo-observations
        in the same proportions (each bin at its lower edge, so the prior never flatters a score)."""
        bins = np.array(json.loads(path.read_text())["bins"], dtype=np.float64).reshape(-1, 3)
        n = bins[:, 1].sum()
        if n <= 0 or total_weight <= 0:
            return cls.empty()
        scale = total_weight / n
        return cls(bins[:, 0], bins[:, 1] * scale, bins[:, 2] * scale)


def serve_threshold(scores: np.ndarray, wrong: np.ndarray, weights: np.ndarray, budget: float) -> float:
    """The lowest score t with wilson_upper(weighted errors at >= t, weight at >= t) <= budget; NEVER if none."""
    if len(scores) == 0:
        return NEVER
    order = np.argsort(-scores, kind="stable")
    s, e, w = scores[order], np.cumsum(wrong[order] * weights[order]), np.cumsum(weights[order])
    # Only the last row of each run of equal scores is a valid cut (every point >= t is counted).
    last = np.append(s[1:] != s[:-1], True)
    s, e, w = s[last], e[last], w[last]
    ok = np.nonzero(_wilson_upper(e, w, Z95) <= budget)[0]
    return float(s[ok[-1]]) if len(ok) else NEVER


MIN_FIT = 200  # observations before the tenant's own match model replaces the calibrated score
REFIT_EVERY = 50  # new observations between refits
_L2 = 1.0  # ridge on the match model's weights: a few hundred verdicts must not give wild slopes


def _features(score: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    p = np.clip(score, 1e-4, 1 - 1e-4)
    return np.column_stack([np.ones_like(p), np.log(p / (1 - p)), (similarity - 0.85) * 10])


def fit_match_model(score: np.ndarray, similarity: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Ridge logistic regression of the verdicts on (1, logit(score), cosine), by Newton's method."""
    x = _features(score, similarity)
    w = np.zeros(x.shape[1])
    for _ in range(25):
        q = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (q - same) + _L2 * w
        hessian = (x * (q * (1 - q))[:, None]).T @ x + _L2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


@dataclass
class Evidence:
    """One tenant's observations (plus the prior): thresholds per budget, vetoed and approved pairings."""

    prior: Prior
    # Compact arrays: a tenant at DEJA_MAX_OBSERVATIONS (5,000) holds ~120 kB here, not ~0.5 MB of floats.
    scores: array = field(default_factory=lambda: array("d"))
    similarities: array = field(default_factory=lambda: array("d"))
    wrong: array = field(default_factory=lambda: array("d"))
    vetoed: set[str] = field(default_factory=set)  # pairings judged or reported wrong: never served
    approved: set[str] = field(default_factory=set)  # pairings judged right: served without a new judge call
    _thresholds: dict[float, float] = field(default_factory=dict)
    _model: np.ndarray | None = None
    _fitted_on: int = 0

    def add(self, score: float, same: bool, pair: str = "", similarity: float = 0.85) -> None:
        self.scores.append(score)
        self.similarities.append(similarity)
        self.wrong.append(0.0 if same else 1.0)
        if pair:
            (self.approved if same else self.vetoed).add(pair)
            if not same:
                self.approved.discard(pair)
        self._thresholds.clear()

    def serve_threshold(self, budget: float) -> float:
        if budget not in self._thresholds:
            scores = np.concatenate([self.prior.scores, np.asarray(self.scores, dtype=np.float64)])
            wrong = np.concatenate([self.prior.errors / np.maximum(self.prior.weights, 1e-12), np.asarray(self.wrong)])
            weights = np.concatenate([self.prior.weights, np.ones(len(self.scores))])
            self._thresholds[budget] = serve_threshold(scores, wrong, weights, budget)
        return self._thresholds[budget]

    def serve_at(self, budget: float, floor: float) -> float:
        """The score from which a match is served unasked: the serve threshold, never under the floor."""
        return max(self.serve_threshold(budget), floor)

    def p_same(self, scores: np.ndarray, similarities: np.ndarray) -> np.ndarray:
        """The chance the judge says "yes" to each candidate: the tenant's match model once it has
        MIN_FIT observations (refitted every REFIT_EVERY more), the calibrated score before."""
        n = len(self.scores)
        if n >= MIN_FIT and (self._model is None or n - self._fitted_on >= REFIT_EVERY):
            same = 1.0 - np.asarray(self.wrong)
            self._model = fit_match_model(np.asarray(self.scores), np.asarray(self.similarities), same)
            self._fitted_on = n
        if self._model is None:
            return np.asarray(scores, dtype=np.float64)
        return 1 / (1 + np.exp(-(_features(np.asarray(scores), np.asarray(similarities)) @ self._model)))

    def measured(self) -> dict[str, float | int | None]:
        """The tenant's own observations only: count, error rate and its upper bound."""
        n = len(self.scores)
        errors = float(sum(self.wrong))
        return {
            "observations": n,
            "error_rate": round(errors / n, 4) if n else None,
            "error_rate_upper95": round(wilson_upper(errors, n), 4) if n else None,
        }


class Decision:
    SERVE = "serve"
    JUDGE = "judge"
    MISS = "miss"


def decide(
    score: float, chance: float, *, serve_at: float, floor: float, min_yes: float, judge: bool, explore: bool = False
) -> str:
    """A candidate's fate: served unasked, judged (at or above the floor and likely enough to get a "yes",
    or drawn for exploration), or a miss. `chance`: the match model's estimate of a "yes"."""
    if score >= serve_at:
        return Decision.SERVE
    if judge and score >= floor and (chance >= min_yes or explore):
        return Decision.JUDGE
    return Decision.MISS
