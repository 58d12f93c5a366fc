"""Point values of one prediction array, without a whole audit: a between-groups gap, and the AUC.

Both follow the engine's conventions: the gap comes from per-group confusion counts and the
``between_groups`` disparities of :mod:`fairprompt.metrics.disparities` (max - min over the groups whose rate
is defined), so it equals fairlearn's ``demographic_parity_difference`` / ``equalized_odds_difference``; an
undefined gap (fewer than two groups with a defined rate) is NaN, not 0.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from fairprompt.metrics.counts import confusion_cell
from fairprompt.metrics.disparities import DISPARITIES
from fairprompt.metrics.rates import group_rates

GapMeasure = Literal["demographic_parity", "equal_opportunity", "equalized_odds"]
GAP_DISPARITY: dict[str, str] = {"demographic_parity": "demographic_parity_difference",
                                 "equal_opportunity": "equal_opportunity_difference",
                                 "equalized_odds": "equalized_odds_difference"}
"""The disparity (of :data:`~fairprompt.metrics.disparities.DISPARITIES`) that measures each gap."""
_BETWEEN = {d.name: d.between_groups for d in DISPARITIES if d.between_groups is not None}


def group_codes(groups: Any) -> tuple[np.ndarray, list[str]]:
    """Integer code per row and the sorted group names (values compared as text)."""
    values = np.asarray(pd.Series(np.asarray(groups, dtype=object).reshape(-1)).astype(str), dtype=object)
    names, codes = np.unique(values, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), [str(n) for n in names]


def group_counts(*, y_true: Any, y_pred: Any, codes: np.ndarray, n_groups: int,
                 multiplicity: np.ndarray | None = None) -> np.ndarray:
    """Confusion counts per group, ``(G, 4)``; with row multiplicities ``(B, N)`` (resamples), ``(B, G, 4)``."""
    index = codes * 4 + confusion_cell(np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1))
    if multiplicity is None:
        return np.bincount(index, minlength=n_groups * 4).astype(np.float64).reshape(n_groups, 4)
    onehot = np.zeros((index.size, n_groups * 4))
    onehot[np.arange(index.size), index] = 1.0
    return (np.asarray(multiplicity, dtype=np.float64) @ onehot).reshape(-1, n_groups, 4)


def disparity(counts: np.ndarray, name: str) -> np.ndarray:
    """The ``between_groups`` value of disparity ``name`` for counts ``(..., G, 4)``."""
    if name not in _BETWEEN:
        raise ValueError(f"unknown between-groups disparity {name!r}; use one of {', '.join(_BETWEEN)}")
    return _BETWEEN[name](group_rates(counts))


def group_gap(*, y_true: Any, y_pred: Any, groups: Any, measure: GapMeasure) -> float:
    """The between-groups gap of 0/1 predictions: demographic parity difference (max - min selection rate),
    equal opportunity difference (TPR) or equalized odds difference (the larger of the TPR and FPR gaps), as
    fairlearn defines them; NaN when fewer than two groups have a defined rate."""
    if measure not in GAP_DISPARITY:
        raise ValueError(f"unknown gap measure {measure!r}; use one of {', '.join(GAP_DISPARITY)}")
    codes, names = group_codes(groups)
    counts = group_counts(y_true=y_true, y_pred=y_pred, codes=codes, n_groups=len(names))
    return float(disparity(counts, GAP_DISPARITY[measure]))


def auc_or_none(y_true: Any, score: Any) -> float | None:
    """ROC AUC of ``score`` for 0/1 labels, or None when only one label occurs."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    return float(roc_auc_score(y, score)) if np.unique(y).size == 2 else None


__all__ = ["GAP_DISPARITY", "GapMeasure", "auc_or_none", "disparity", "group_codes", "group_counts", "group_gap"]
