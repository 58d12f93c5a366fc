"""Table rows as sentences for a frozen language model.

``rows_to_text(frame, columns=["age", "education"])`` gives
``"age: 39. education: Bachelors."``: each column as ``name: value``, names
with ``-`` and ``_`` read as spaces, missing values left out, joined by
``". "``.  Vectorized with pandas string operations (no loop over rows).
Leaving the sensitive columns out of the text is the caller's choice (the
spec's ``text.include_sensitive``); the audit still groups by them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fairprompt.errors import FairpromptError, did_you_mean


def readable(name: str) -> str:
    """A column name as words: ``marital-status`` -> ``marital status``."""
    return " ".join(str(name).replace("-", " ").replace("_", " ").split())


def _format(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if len(whole) and (whole == whole.round()).all():
            return values.map(lambda v: "" if pd.isna(v) else str(int(v)))
        return values.map(lambda v: "" if pd.isna(v) else f"{v:g}")
    return values.astype("string").fillna("").str.strip()


def rows_to_text(frame: pd.DataFrame, *, columns: Sequence[str], source: str = "data") -> list[str]:
    """One sentence per row, ``"name: value"`` for each listed column (missing values skipped)."""
    if not columns:
        raise FairpromptError(f"no columns to write as text for {source}; list some in model.text.columns")
    for column in columns:
        if column not in frame.columns:
            raise FairpromptError(f"{source} has no column {column!r} for the text{did_you_mean(column, frame.columns)}")
    parts = []
    for column in columns:
        values = _format(frame[column]).astype(str)
        piece = (readable(column) + ": " + values + ". ").where(values != "", "")
        parts.append(piece.to_numpy(dtype=object))
    text = parts[0]
    for piece in parts[1:]:
        text = text + piece
    return [t.strip() for t in text.tolist()]
