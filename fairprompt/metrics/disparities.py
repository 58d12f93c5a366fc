"""Named disparities between groups, from group rates, in two conventions.

``between_groups`` (as fairlearn's ``MetricFrame.difference/ratio``): one number
per slice, max - min (or min / max) over the groups whose rate is defined.
``to_reference`` (as AIF360's privileged/unprivileged metrics): one signed
number per non-reference group, group minus (or over) the reference group.

All functions work on arrays of shape ``(..., G)`` so that bootstrap resamples
are computed in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fairprompt.metrics.rates import safe_divide

Rates = dict[str, np.ndarray]


def spread(x: np.ndarray) -> np.ndarray:
    """max - min over the last axis, ignoring NaN groups; NaN with fewer than two defined."""
    defined = ~np.isnan(x)
    hi = np.where(defined, x, -np.inf).max(axis=-1)
    lo = np.where(defined, x, np.inf).min(axis=-1)
    return np.where(defined.sum(axis=-1) >= 2, hi - lo, np.nan)


def min_over_max(x: np.ndarray) -> np.ndarray:
    """min / max over the last axis, ignoring NaN groups; NaN with fewer than two defined or max 0."""
    defined = ~np.isnan(x)
    hi = np.where(defined, x, -np.inf).max(axis=-1)
    lo = np.where(defined, x, np.inf).min(axis=-1)
    ok = (defined.sum(axis=-1) >= 2) & (hi > 0)
    return np.where(ok, safe_divide(lo, np.where(ok, hi, 1.0)), np.nan)


def minus_reference(x: np.ndarray, ref: int) -> np.ndarray:
    """Signed difference of each group to group ``ref``."""
    return x - x[..., ref : ref + 1]


def over_reference(x: np.ndarray, ref: int) -> np.ndarray:
    """Ratio of each group to group ``ref`` (NaN where the reference rate is 0)."""
    return safe_divide(x, np.broadcast_to(x[..., ref : ref + 1], x.shape))


@dataclass(frozen=True)
class DisparityDef:
    """A disparity with its two conventions (``None`` where a convention does not apply)."""

    name: str
    description: str
    between_groups: Callable[[Rates], np.ndarray] | None
    to_reference: Callable[[Rates, int], np.ndarray] | None
    fairlearn: str | None = None
    aif360: str | None = None
    ideal: float = 0.0


def _abs_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(a), np.abs(b))


DISPARITIES: tuple[DisparityDef, ...] = (
    DisparityDef(
        "demographic_parity_difference", "gap in selection rate",
        lambda r: spread(r["selection_rate"]), lambda r, i: minus_reference(r["selection_rate"], i),
        fairlearn="demographic_parity_difference", aif360="statistical_parity_difference",
    ),
    DisparityDef(
        "demographic_parity_ratio", "ratio of selection rates",
        lambda r: min_over_max(r["selection_rate"]), lambda r, i: over_reference(r["selection_rate"], i),
        fairlearn="demographic_parity_ratio", aif360="disparate_impact", ideal=1.0,
    ),
    DisparityDef(
        "disparate_impact", "selection-rate ratio; between groups it is the lowest over the highest rate (four-fifths rule)",
        lambda r: min_over_max(r["selection_rate"]), lambda r, i: over_reference(r["selection_rate"], i),
        fairlearn="demographic_parity_ratio", aif360="disparate_impact", ideal=1.0,
    ),
    DisparityDef(
        "equalized_odds_difference", "larger of the TPR and FPR gaps (worst case)",
        lambda r: np.maximum(spread(r["tpr"]), spread(r["fpr"])),
        lambda r, i: _abs_max(minus_reference(r["tpr"], i), minus_reference(r["fpr"], i)),
        fairlearn="equalized_odds_difference(agg='worst_case')", aif360="equalized_odds_difference",
    ),
    DisparityDef(
        "equalized_odds_difference_mean", "mean of the TPR and FPR gaps",
        lambda r: (spread(r["tpr"]) + spread(r["fpr"])) / 2.0,
        lambda r, i: (np.abs(minus_reference(r["tpr"], i)) + np.abs(minus_reference(r["fpr"], i))) / 2.0,
        fairlearn="equalized_odds_difference(agg='mean')", aif360="average_abs_odds_difference",
    ),
    DisparityDef(
        "equal_opportunity_difference", "gap in true positive rate",
        lambda r: spread(r["tpr"]), lambda r, i: minus_reference(r["tpr"], i),
        fairlearn="equal_opportunity_difference", aif360="equal_opportunity_difference",
    ),
    DisparityDef(
        "average_odds_difference", "signed mean of the FPR and TPR differences to the reference",
        None, lambda r, i: (minus_reference(r["fpr"], i) + minus_reference(r["tpr"], i)) / 2.0,
        aif360="average_odds_difference",
    ),
    DisparityDef(
        "predictive_parity_difference", "gap in positive predictive value (precision)",
        lambda r: spread(r["ppv"]), lambda r, i: minus_reference(r["ppv"], i),
        aif360="positive_predictive_value(privileged=False) - positive_predictive_value(privileged=True)",
    ),
    DisparityDef(
        "fpr_difference", "gap in false positive rate",
        lambda r: spread(r["fpr"]), lambda r, i: minus_reference(r["fpr"], i),
        fairlearn="false_positive_rate_difference", aif360="false_positive_rate_difference",
    ),
    DisparityDef(
        "fnr_difference", "gap in false negative rate",
        lambda r: spread(r["fnr"]), lambda r, i: minus_reference(r["fnr"], i),
        fairlearn="false_negative_rate_difference", aif360="false_negative_rate_difference",
    ),
    DisparityDef(
        "accuracy_difference", "gap in accuracy (AIF360's error_rate_difference is its negative)",
        lambda r: spread(r["accuracy"]), lambda r, i: minus_reference(r["accuracy"], i),
        fairlearn="MetricFrame(accuracy_score).difference()", aif360="-error_rate_difference",
    ),
)
