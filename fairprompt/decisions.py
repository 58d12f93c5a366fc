"""Every decision a run's models made, exported as ``predictions.parquet`` beside results.json.

Long format, one row per (data-set row, method, setting), columns :data:`LEADING`, then the audit's sensitive
columns, then :data:`TRAILING`:

- ``row_id``: the row's position in the data set (0-based, as the splits count it);
- ``split``: ``train``, ``validation``, ``test`` or ``final``;
- ``method``: ``audited`` (the model as audited), or a repair's name (``fairij``, ``reprogram``);
- ``setting``: the grid point (FairIJ's k, FairReprogram's lambda), null for the audited model;
- ``chosen``: True for the operating point each method deployed (the audited model is its own);
- ``label``: 0/1, 1 = favourable;
- the sensitive columns, as text (null where missing);
- ``score``: the probability of the favourable outcome;
- ``decision``: 0/1, 1 = favourable (``score >= threshold``, the model's threshold).

A run writes the validation and test rows of the audited model and of every repair's grid point, and the final
rows (:attr:`fairprompt.spec.SplitSpec.final`) of the audited model and each chosen point only when asked to
(``--final``).  Audits of a predictions file write none (their input already is the decisions).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError

PREDICTIONS_FILE = "predictions.parquet"
LEADING: tuple[str, ...] = ("row_id", "split", "method", "setting", "chosen", "label")
TRAILING: tuple[str, ...] = ("score", "decision")
SPLITS: tuple[str, ...] = ("train", "validation", "test", "final")
AUDITED = "audited"


def decision_rows(*, method: str, setting: float | None, chosen: bool, split: str, row_ids: np.ndarray,
                  labels: np.ndarray, sensitive: pd.DataFrame, scores: np.ndarray, threshold: float) -> pd.DataFrame:
    """The rows of one model on one split (columns as the module docstring lists them)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    row_ids, labels, scores = (np.asarray(a).reshape(-1) for a in (row_ids, labels, scores))
    if not (row_ids.size == labels.size == scores.size == len(sensitive)):
        raise ValueError(f"{method} on {split}: {row_ids.size} row ids, {labels.size} labels, {scores.size} scores and "
                         f"{len(sensitive)} sensitive rows; give one of each per row")
    n = row_ids.size
    frame = pd.DataFrame({
        "row_id": row_ids.astype(np.int64),
        "split": pd.Series([split] * n, dtype="string"),
        "method": pd.Series([method] * n, dtype="string"),
        "setting": pd.Series([np.nan if setting is None else float(setting)] * n, dtype="Float64"),
        "chosen": np.full(n, bool(chosen)),
        "label": labels.astype(np.int8),
    })
    for column in sensitive.columns:
        values = sensitive[column].reset_index(drop=True)
        frame[str(column)] = pd.Series([None if pd.isna(v) else str(v) for v in values], dtype="string")
    frame["score"] = scores.astype(np.float64)
    frame["decision"] = (scores >= threshold).astype(np.int8)
    return frame


def combine(frames: Sequence[pd.DataFrame], *, replace: Sequence[str] = (),
            existing: pd.DataFrame | None = None) -> pd.DataFrame:
    """``existing`` without the rows of the methods in ``replace``, then ``frames`` (one table, row order kept)."""
    parts = []
    if existing is not None and len(existing):
        parts.append(existing[~existing["method"].isin(list(replace))])
    parts.extend(f for f in frames if len(f))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """The table as Parquet (zstd), ready for an atomic write."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def read_decisions(path: str | Path) -> pd.DataFrame:
    """A ``predictions.parquet`` written by a run (checked for the columns this module writes)."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise FairpromptError(f"{path} is not a readable Parquet file ({exc}); run the audit again to rewrite it") from exc
    missing = [c for c in (*LEADING, *TRAILING) if c not in frame.columns]
    if missing:
        raise FairpromptError(f"{path} lacks the column {missing[0]!r} of a fairprompt predictions export; "
                              "run the audit again to rewrite it")
    return frame


class DecisionTable:
    """The export of one run, built step by step: the audited model's rows, then each repair's (a repair run again
    replaces its own rows)."""

    def __init__(self, existing: pd.DataFrame | None = None) -> None:
        self.frame = existing if existing is not None else pd.DataFrame()

    def replace(self, method: str, frames: Sequence[pd.DataFrame]) -> None:
        """Drop the rows of ``method`` and add ``frames``."""
        self.frame = combine(frames, replace=[method], existing=self.frame)

    def has(self, method: str) -> bool:
        return bool(len(self.frame)) and bool((self.frame["method"] == method).any())

    def to_bytes(self) -> bytes:
        return to_parquet_bytes(self.frame)

    def summary(self, *, final_read: bool) -> dict[str, object]:
        """What results.json says about the export (``decisions``): the file, its rows, methods and splits."""
        frame = self.frame
        methods = list(dict.fromkeys(frame["method"].astype(str))) if len(frame) else []
        splits = [s for s in SPLITS if len(frame) and (frame["split"] == s).any()]
        return {"file": PREDICTIONS_FILE, "rows": int(len(frame)), "methods": methods, "splits": splits,
                "final_read": final_read}


__all__ = ["AUDITED", "LEADING", "PREDICTIONS_FILE", "SPLITS", "TRAILING", "DecisionTable", "combine", "decision_rows",
           "read_decisions", "to_parquet_bytes"]
