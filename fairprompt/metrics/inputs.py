"""Validation of the arrays an audit takes: labels, predictions, scores, weights, groups.

Each check raises :class:`~fairprompt.errors.FairpromptError` with one sentence
naming the column (by the name the caller gives) and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError


def _values(x: Any) -> pd.Series:
    return x if isinstance(x, pd.Series) else pd.Series(np.asarray(x))


def binarize(values: Any, *, name: str, positive_label: Any = None, require_present: bool = True) -> np.ndarray:
    """0/1 int array from labels; 1 where the value equals ``positive_label``.

    Without ``positive_label`` the values must already be binary: {0, 1},
    {False, True}, or {-1, 1} (1 positive).  With ``require_present=False`` a
    column in which the positive label never occurs (all predictions negative)
    is accepted.
    """
    series = _values(values)
    if series.isna().any():
        raise FairpromptError(
            f"column {name!r} has {int(series.isna().sum())} missing values; drop or fill those rows before auditing"
        )
    if positive_label is not None:
        present = pd.unique(series)
        matches = series == positive_label
        if not matches.any():
            as_str = series.astype(str) == str(positive_label)
            if as_str.any() or not require_present:
                matches = as_str
            else:
                shown = ", ".join(repr(v) for v in list(present)[:6])
                raise FairpromptError(
                    f"positive label {positive_label!r} does not occur in column {name!r} (values: {shown}); "
                    "set the positive label to one of them"
                )
        return matches.to_numpy(dtype=bool).astype(np.int8)
    uniques = set(pd.unique(series).tolist())
    if uniques <= {0, 1} or uniques <= {False, True}:
        return series.to_numpy().astype(np.int8)
    if uniques <= {-1, 1}:
        return (series.to_numpy() == 1).astype(np.int8)
    shown = ", ".join(repr(v) for v in sorted(map(str, uniques))[:6])
    raise FairpromptError(
        f"column {name!r} is not binary 0/1 (values: {shown}); declare which value is the positive outcome "
        "(--positive-label, or positive_label in the spec)"
    )


def scores_array(values: Any, *, name: str) -> np.ndarray:
    """Float scores without missing values."""
    series = _values(values)
    try:
        scores = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise FairpromptError(f"score column {name!r} is not numeric; give a column of scores or probabilities") from None
    if np.isnan(scores).any():
        raise FairpromptError(f"score column {name!r} has {int(np.isnan(scores).sum())} missing values; drop or fill those rows")
    if not np.isfinite(scores).all():
        raise FairpromptError(f"score column {name!r} has infinite values; clip or drop those rows")
    return scores


def weights_array(values: Any, *, name: str, n_rows: int) -> np.ndarray:
    """Non-negative, finite float weights of the right length."""
    try:
        weights = pd.to_numeric(_values(values), errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise FairpromptError(f"weight column {name!r} is not numeric; give non-negative numbers") from None
    if weights.size != n_rows:
        raise FairpromptError(f"weight column {name!r} has {weights.size} values for {n_rows} rows; give one weight per row")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise FairpromptError(f"weight column {name!r} has negative, missing or infinite values; "
                              "give non-negative finite numbers")
    if weights.sum() <= 0:
        raise FairpromptError(f"weight column {name!r} sums to zero; give positive weights")
    return weights


def sensitive_frame(sensitive: Any, *, n_rows: int) -> pd.DataFrame:
    """A DataFrame of sensitive columns from a frame, a series, a mapping or a 1-d array."""
    if isinstance(sensitive, pd.DataFrame):
        frame = sensitive.reset_index(drop=True)
    elif isinstance(sensitive, pd.Series):
        frame = sensitive.reset_index(drop=True).to_frame(name=sensitive.name if sensitive.name is not None else "group")
    elif isinstance(sensitive, Mapping):
        frame = pd.DataFrame({str(k): np.asarray(v) for k, v in sensitive.items()})
    elif isinstance(sensitive, Sequence | np.ndarray):
        frame = pd.DataFrame({"group": np.asarray(sensitive)})
    else:
        raise FairpromptError("sensitive must be a DataFrame, a Series, a mapping of column name to values, or an array")
    if frame.shape[1] == 0:
        raise FairpromptError("no sensitive column given; name at least one column to group by (--sensitive)")
    if len(frame) != n_rows:
        raise FairpromptError(f"sensitive columns have {len(frame)} rows but the labels have {n_rows}; give one value per row")
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns:
        observed = frame[column].dropna()
        if observed.nunique() < 2:
            only = repr(observed.iloc[0]) if len(observed) else "no value"
            raise FairpromptError(
                f"sensitive column {column!r} has a single value ({only}); an audit compares at least two groups, "
                "so choose a column with two or more values"
            )
    return frame
