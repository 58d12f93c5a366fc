"""Is the audited model degenerate? A constant or near-constant decision rule, or one no better than the majority class.

A fairness verdict on such a model says nothing (a model that approves everyone passes the four-fifths rule), so
the audit records which of these reasons hold and the report turns its verdict into REVIEW:

- ``constant``: every audited row gets the same decision;
- ``constant_in_group``: a group of a single sensitive column (not an intersection) with at least
  :data:`MIN_GROUP_ROWS` rows and both labels present (each at least :data:`MIN_LABEL_SHARE` of its rows) gets
  one decision for at least :data:`MAX_DECISION_SHARE` of its rows;
- ``no_better_than_majority``: the upper bound of the paired-bootstrap interval of (accuracy - majority-class
  accuracy) is at most 0; both accuracies are computed on the same resample, so the interval is paired. Without
  resamples (``n_boot = 0``) the point estimate stands in for the bound.

Row counts decide the first two (they are about the decisions the model made); the accuracies are weighted when
the audit is. Everything is computed from the audit's count table and its resampled count tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fairprompt.metrics.bootstrap import percentile_interval
from fairprompt.metrics.counts import CountTable

MIN_GROUP_ROWS = 20
"""A single-column group is checked for a near-constant decision from this many rows."""
MIN_LABEL_SHARE = 0.05
"""... when each label is at least this share of its rows (a group of one label may fairly get one decision)."""
MAX_DECISION_SHARE = 0.99
"""... and is degenerate when one decision takes at least this share of its rows."""

TOLERANCE = 1e-12
"""Weighted sums round: a margin bound within this of 0 counts as 0."""

ReasonCode = Literal["constant", "constant_in_group", "no_better_than_majority"]

TP, FP, TN, FN = range(4)


@dataclass(frozen=True)
class DegenerateReason:
    """One reason a model is degenerate, in words."""

    code: ReasonCode
    message: str


@dataclass(frozen=True)
class Degeneracy:
    """What the degenerate-model check found (``reasons`` empty: not degenerate)."""

    reasons: tuple[DegenerateReason, ...]
    accuracy: float
    majority_accuracy: float
    margin: float
    """accuracy - majority-class accuracy."""
    margin_ci_low: float | None
    margin_ci_high: float | None
    bound: Literal["bootstrap", "point"]
    """Whether ``no_better_than_majority`` was decided on the bootstrap upper bound or on the point estimate."""

    @property
    def degenerate(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        def num(x: float | None) -> float | None:
            return None if x is None or not np.isfinite(x) else float(x)

        return {
            "degenerate": self.degenerate,
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "accuracy": num(self.accuracy), "majority_accuracy": num(self.majority_accuracy),
            "margin": num(self.margin), "margin_ci_low": num(self.margin_ci_low), "margin_ci_high": num(self.margin_ci_high),
            "bound": self.bound,
            "thresholds": {"min_group_rows": MIN_GROUP_ROWS, "min_label_share": MIN_LABEL_SHARE,
                           "max_decision_share": MAX_DECISION_SHARE},
        }


def _margin(cells: np.ndarray) -> np.ndarray:
    """accuracy - majority-class accuracy of summed cells ``(..., 4)``, as one difference of counts over the total
    (so a constant predictor's margin is exactly 0, not a rounding error away from it)."""
    total = cells.sum(axis=-1)
    correct = cells[..., TP] + cells[..., TN]
    majority = np.maximum(cells[..., TP] + cells[..., FN], cells[..., TN] + cells[..., FP])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (correct - majority) / total


def assess_degeneracy(table: CountTable, *, boot: np.ndarray | None = None, level: float = 0.95) -> Degeneracy:
    """Check the model whose decisions ``table`` counts (``boot``: its resampled weighted cells ``(B, G, 4)``)."""
    reasons: list[DegenerateReason] = []
    rows = table.k.sum(axis=0)
    n = int(rows.sum())
    positive = int(rows[TP] + rows[FP])
    if n and positive in (0, n):
        decision = "positive" if positive else "negative"
        reasons.append(DegenerateReason("constant", f"every one of the {n:,} audited rows gets the {decision} decision"))
    else:
        for column in table.columns:
            target, keys = table.projection((column,))
            counts = np.zeros((len(keys), 4), dtype=np.int64)
            keep = target >= 0
            np.add.at(counts, target[keep], table.k[keep])
            for key, cell in zip(keys, counts):
                size = int(cell.sum())
                if size < MIN_GROUP_ROWS:
                    continue
                label_share = (cell[TP] + cell[FN]) / size
                if min(label_share, 1.0 - label_share) < MIN_LABEL_SHARE:
                    continue
                decided = (cell[TP] + cell[FP]) / size
                share, decision = (decided, "positive") if decided >= 0.5 else (1.0 - decided, "negative")
                if share >= MAX_DECISION_SHARE:
                    reasons.append(DegenerateReason(
                        "constant_in_group",
                        f"{column} = {key[0]}: {100 * share:.1f}% of its {size:,} rows get the {decision} "
                        f"decision, though {100 * label_share:.0f}% of them have the positive label"))
    cells = table.w.sum(axis=0)
    margin = float(_margin(cells))
    total = cells.sum()
    accuracy = float((cells[TP] + cells[TN]) / total) if total else float("nan")
    majority = accuracy - margin
    low = high = None
    if boot is not None and boot.shape[0] > 0:
        lo, hi = percentile_interval(_margin(boot.sum(axis=1))[:, None], level=level)
        low, high = float(lo[0]), float(hi[0])
    bound = "bootstrap" if high is not None else "point"
    upper = high if high is not None else margin
    if np.isfinite(upper) and upper <= TOLERANCE:
        where = (f"the upper end of its {100 * level:g}% paired-bootstrap interval is {upper:+.4f}" if high is not None
                 else f"accuracy minus majority-class accuracy is {margin:+.4f} (no bootstrap)")
        reasons.append(DegenerateReason(
            "no_better_than_majority",
            f"accuracy {accuracy:.4f} is no better than always predicting the majority class ({majority:.4f}): {where}"))
    return Degeneracy(reasons=tuple(reasons), accuracy=accuracy, majority_accuracy=majority, margin=margin,
                      margin_ci_low=low, margin_ci_high=high, bound=bound)


__all__ = ["MAX_DECISION_SHARE", "MIN_GROUP_ROWS", "MIN_LABEL_SHARE", "Degeneracy", "DegenerateReason",
           "assess_degeneracy"]
