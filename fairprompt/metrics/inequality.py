"""Generalized entropy indices (Speicher et al. 2018) from confusion counts.

Each row's benefit is ``b = y_pred - y_true + 1``: 1 for a correct prediction,
2 for a false positive, 0 for a false negative.  Because ``b`` depends only on
the confusion cell, the indices are exact functions of the count tables and
merge across chunks like every other count-based metric.  Weighted rows count
with their weight (AIF360 computes the unweighted index).
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from fairprompt.metrics.rates import safe_divide

BENEFIT = np.array([1.0, 2.0, 1.0, 0.0])
"""Benefit of each confusion cell (tp, fp, tn, fn)."""


def _entropy_terms(ratio: np.ndarray, alpha: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if alpha == 1:
            return xlogy(ratio, ratio)
        if alpha == 0:
            return -np.log(ratio)
        return (np.power(ratio, alpha) - 1.0) / (alpha * (alpha - 1.0))


def generalized_entropy_index(w: np.ndarray, *, alpha: float = 2.0) -> np.ndarray:
    """GE(alpha) over all rows of counts ``w`` (``(..., G, 4)``) pooled across groups; Theil is alpha = 1."""
    cells = np.asarray(w, dtype=np.float64).sum(axis=-2)  # (..., 4)
    total = cells.sum(axis=-1)
    mu = safe_divide(cells @ BENEFIT, total)
    ratio = BENEFIT / mu[..., None]
    terms = np.where(cells > 0, _entropy_terms(ratio, alpha), 0.0)
    return safe_divide((cells * terms).sum(axis=-1), total)


def between_group_entropy_index(w: np.ndarray, *, alpha: float = 2.0) -> np.ndarray:
    """GE(alpha) after replacing each row's benefit by its group's mean benefit."""
    w = np.asarray(w, dtype=np.float64)
    group_total = w.sum(axis=-1)  # (..., G)
    total = group_total.sum(axis=-1)
    mu = safe_divide(w.sum(axis=-2) @ BENEFIT, total)
    group_mu = safe_divide(w @ BENEFIT, group_total)
    ratio = group_mu / mu[..., None]
    terms = np.where(group_total > 0, _entropy_terms(ratio, alpha), 0.0)
    return safe_divide((group_total * terms).sum(axis=-1), total)
