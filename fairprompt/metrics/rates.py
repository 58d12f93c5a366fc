"""Group rates from confusion counts, vectorized over any leading axes.

Every function takes weighted counts ``w`` of shape ``(..., G, 4)`` (cells in
:data:`~fairprompt.metrics.counts.CELLS` order) and returns arrays of shape
``(..., G)``, so the same code computes point estimates (no leading axis) and
all bootstrap resamples at once (a leading resample axis).  A 0/0 rate is NaN;
:func:`undefined_reasons` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairprompt.metrics.counts import CELLS


@dataclass(frozen=True)
class RateDef:
    """A rate ``sum(numerator cells) / sum(denominator cells)``."""

    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    description: str
    undefined: str


_ALL = CELLS
RATES: tuple[RateDef, ...] = (
    RateDef("base_rate", ("tp", "fn"), _ALL, "share of rows whose true label is positive", "group has no rows"),
    RateDef("selection_rate", ("tp", "fp"), _ALL, "share of rows predicted positive", "group has no rows"),
    RateDef("tpr", ("tp",), ("tp", "fn"), "true positive rate (recall), P(pred=1 | y=1)", "no rows with a positive true label"),
    RateDef("fpr", ("fp",), ("fp", "tn"), "false positive rate, P(pred=1 | y=0)", "no rows with a negative true label"),
    RateDef("tnr", ("tn",), ("fp", "tn"), "true negative rate (specificity), P(pred=0 | y=0)",
            "no rows with a negative true label"),
    RateDef("fnr", ("fn",), ("tp", "fn"), "false negative rate, P(pred=0 | y=1)", "no rows with a positive true label"),
    RateDef("ppv", ("tp",), ("tp", "fp"), "positive predictive value (precision), P(y=1 | pred=1)", "no rows predicted positive"),
    RateDef("npv", ("tn",), ("tn", "fn"), "negative predictive value, P(y=0 | pred=0)", "no rows predicted negative"),
    RateDef("fdr", ("fp",), ("tp", "fp"), "false discovery rate, P(y=0 | pred=1)", "no rows predicted positive"),
    RateDef("for", ("fn",), ("tn", "fn"), "false omission rate, P(y=1 | pred=0)", "no rows predicted negative"),
    RateDef("accuracy", ("tp", "tn"), _ALL, "share of rows predicted correctly", "group has no rows"),
)
"""The count-based rates, in output order; ``balanced_accuracy`` follows them."""

RATE_NAMES: tuple[str, ...] = tuple(r.name for r in RATES) + ("balanced_accuracy",)
RATE_DESCRIPTIONS: dict[str, str] = {r.name: r.description for r in RATES} | {
    "balanced_accuracy": "mean of TPR and TNR; undefined unless both classes occur in the group",
}


def _selector(cells: tuple[str, ...]) -> np.ndarray:
    return np.array([1.0 if c in cells else 0.0 for c in CELLS])


_NUM = np.stack([_selector(r.numerator) for r in RATES], axis=1)  # (4, R)
_DEN = np.stack([_selector(r.denominator) for r in RATES], axis=1)  # (4, R)


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with NaN wherever the denominator is not positive."""
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def group_rates(w: np.ndarray) -> dict[str, np.ndarray]:
    """All rates of :data:`RATE_NAMES` for counts ``w`` of shape ``(..., G, 4)``."""
    w = np.asarray(w, dtype=np.float64)
    values = safe_divide(w @ _NUM, w @ _DEN)  # (..., G, R)
    out = {r.name: values[..., i] for i, r in enumerate(RATES)}
    out["balanced_accuracy"] = (out["tpr"] + out["tnr"]) / 2.0
    return out


def undefined_reasons(w: np.ndarray) -> dict[str, list[str | None]]:
    """For point-estimate counts ``(G, 4)``: per rate, the reason each group's value is NaN (else None)."""
    w = np.asarray(w, dtype=np.float64)
    den = w @ _DEN
    reasons: dict[str, list[str | None]] = {}
    for i, rate in enumerate(RATES):
        reasons[rate.name] = [None if d > 0 else rate.undefined for d in den[:, i]]
    reasons["balanced_accuracy"] = [
        a or b for a, b in zip(reasons["tpr"], reasons["tnr"])
    ]
    return reasons
