"""Train / validation / test splits: from a split column, or a seeded draw stratified by label.

The draw takes the training and validation rows first from the whole table,
then the test rows from what is left, each stratified by the label, so the same
seed and sizes always give the same rows, the three sets never overlap, and the
size of the test split does not change which rows a model is trained on (a
smaller audit reuses the same cached task prompt).
The validation split only steers training (early stopping, and later the
mitigations' choices); audits report the test split.

A ``final`` split (optional, ``splits.final`` rows) is drawn last, from the rows
no other split uses, so adding it changes none of the others. It is the untouched
split on which methods are judged once, at the end: no spec audits it, and
``benchmarks/bench_frontier.py`` reads it only behind ``--final``. With a split
column, the rows the column marks ``final`` are the final split (the generated
``identity_toxicity`` and ``colored_digits`` mark them through their options),
and ``splits.final`` is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fairprompt.errors import FairpromptError, did_you_mean

SPLIT_NAMES = ("train", "validation", "test")
"""The splits every task has; ``final`` is optional."""
_ALIASES = {"train": "train", "training": "train", "validation": "validation", "val": "validation", "valid": "validation",
            "dev": "validation", "test": "test", "final": "final"}


def _none() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Splits:
    """Row positions (into the data set's frame) of each split, and how they were chosen."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    rule: str
    seed: int | None
    final: np.ndarray = field(default_factory=_none)
    """Rows held out for the final judgement (empty when the spec asks for none)."""

    def describe(self) -> dict[str, object]:
        sizes = {"train": int(self.train.size), "validation": int(self.validation.size), "test": int(self.test.size)}
        if self.final.size:
            sizes["final"] = int(self.final.size)
        return sizes | {"rule": self.rule, "seed": self.seed}


def _from_column(frame: pd.DataFrame, column: str, source: str) -> Splits:
    if column not in frame.columns:
        raise FairpromptError(f"{source} has no split column {column!r}{did_you_mean(column, frame.columns)}")
    values = frame[column].astype("string").str.strip().str.lower().map(_ALIASES)
    unknown = frame[column][values.isna()]
    if len(unknown):
        raise FairpromptError(
            f"split column {column!r} of {source} has value {str(unknown.iloc[0])!r}; use train, validation, test or final"
        )
    parts = {name: np.flatnonzero((values == name).to_numpy()) for name in (*SPLIT_NAMES, "final")}
    for name in SPLIT_NAMES:
        if parts[name].size == 0:
            raise FairpromptError(f"split column {column!r} of {source} has no {name!r} rows; every split needs rows")
    return Splits(parts["train"], parts["validation"], parts["test"], rule=f"as given by column {column!r}", seed=None,
                  final=parts["final"])


def make_splits(
    *, frame: pd.DataFrame, y: np.ndarray, column: str | None = None, train: int = 2000, validation: int = 1000,
    test: int | None = 6000, seed: int = 0, final: int = 0, source: str = "data",
) -> Splits:
    """Split rows by ``column``, or draw ``train`` and ``validation``, then ``test``, then ``final`` rows, each
    stratified by ``y`` (``test=None``: every row left after the final split)."""
    if column is not None:
        splits = _from_column(frame, column, source)
        if final:
            raise FairpromptError(
                f"splits.final = {final:,} draws rows only without splits.column; split column {column!r} of {source} "
                f"marks the final rows itself ({splits.final.size:,} now): remove splits.final, or mark more rows final "
                "(generated sets: identity_toxicity's option n_final_per_cell, colored_digits' four fractions)")
        return splits
    n = len(frame)
    n_test = n - train - validation - final if test is None else test
    if n_test < 1 or train + validation + n_test > n:
        raise FairpromptError(
            f"{source} has {n:,} rows, fewer than splits.train + splits.validation + splits.test "
            f"= {train + validation + max(n_test, 0):,}; lower those sizes in the spec"
        )
    index = np.arange(n)
    stratify = y if np.bincount(y).min() >= 2 else None
    train_rows, rest = train_test_split(index, train_size=train, random_state=seed, stratify=stratify)
    validation_rows, rest = train_test_split(rest, train_size=validation, random_state=seed,
                                             stratify=None if stratify is None else y[rest])
    unused = rest.size - n_test
    if final > unused:
        raise FairpromptError(f"{source} has {max(unused, 0):,} rows left after splits.train, splits.validation and "
                              f"splits.test, fewer than splits.final = {final:,}; lower splits.final (or the others)")
    if n_test < rest.size:
        test_rows, rest = train_test_split(rest, train_size=n_test, random_state=seed,
                                           stratify=None if stratify is None else y[rest])
    else:
        test_rows, rest = rest, rest[:0]
    final_rows = _none()
    if final:
        final_rows = rest if final == rest.size else train_test_split(
            rest, train_size=final, random_state=seed, stratify=None if stratify is None else y[rest])[0]
    rule = (f"seeded draw stratified by label: {train:,} train and {validation:,} validation rows from all {n:,}, "
            f"then {n_test:,} test rows from the rest (seed {seed})"
            + (f", then {final:,} final rows from the rows left (held out; no spec audits them)" if final else ""))
    return Splits(np.sort(train_rows), np.sort(validation_rows), np.sort(test_rows), rule=rule, seed=seed,
                  final=np.sort(final_rows))
