"""Per-group confusion count tables: the single source of every count-based metric.

A :class:`CountTable` holds, for each group of one or more sensitive columns,
the four confusion cells (``tp, fp, tn, fn``) three ways: the number of rows
``k``, the sum of sample weights ``w`` and the sum of squared weights ``w2``.
All three add up across chunks, so tables built on shards of a data set merge
exactly (:meth:`CountTable.merge`) and every rate, disparity and count-table
bootstrap computed from the merged table equals the one-shot result.

Group keys are tuples of strings, one per column; a missing sensitive value is
kept as ``None`` so that each attribute's own slice can still use the row
(:meth:`CountTable.marginal`), and :meth:`CountTable.drop_missing` excludes it
where the attribute is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CELLS: tuple[str, ...] = ("tp", "fp", "tn", "fn")
"""Order of the confusion cells along the last axis of every count array."""

GroupKey = tuple[str | None, ...]


def confusion_cell(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Index of each row's confusion cell in :data:`CELLS` (0/1 inputs, 1 = positive)."""
    y = np.asarray(y_true, dtype=np.int8)
    p = np.asarray(y_pred, dtype=np.int8)
    return (2 * (1 - p) + (y != p)).astype(np.int64)


def _factorize(column: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """Codes 0..m-1 for the observed values (sorted when comparable) and m for missing."""
    try:
        codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=True)
    except TypeError:
        codes, uniques = pd.factorize(column, sort=False, use_na_sentinel=True)
    labels: list[str | None] = [str(u) for u in uniques]
    codes = np.where(codes < 0, len(labels), codes).astype(np.int64)
    return codes, labels + [None]


def group_codes(sensitive: pd.DataFrame) -> tuple[np.ndarray, tuple[GroupKey, ...]]:
    """Dense group index per row over the observed combinations of the columns.

    Returns the index array (one entry per row) and the group keys in index order.
    """
    per_column = [_factorize(sensitive[c]) for c in sensitive.columns]
    sizes = tuple(len(labels) for _, labels in per_column)
    flat = (np.ravel_multi_index(tuple(codes for codes, _ in per_column), sizes) if per_column
            else np.zeros(len(sensitive), dtype=np.int64))
    total = int(np.prod(sizes)) if sizes else 1
    if total <= 4_000_000:
        present = np.flatnonzero(np.bincount(flat, minlength=total))
        lookup = np.full(total, -1, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        index = lookup[flat]
    else:
        present, index = np.unique(flat, return_inverse=True)
    combos = np.unravel_index(present, sizes) if sizes else ()
    keys = tuple(
        tuple(per_column[j][1][combos[j][i]] for j in range(len(per_column))) for i in range(present.size)
    )
    return index, keys


@dataclass(frozen=True)
class CountTable:
    """Weighted confusion counts per group of ``columns``.

    Attributes:
        columns: the sensitive columns whose value combinations define the groups.
        groups: one key per group, a tuple of string values (``None`` = missing).
        k: rows per group and cell, shape ``(G, 4)`` in :data:`CELLS` order.
        w: sum of sample weights per group and cell, shape ``(G, 4)``.
        w2: sum of squared sample weights per group and cell, shape ``(G, 4)``.
    """

    columns: tuple[str, ...]
    groups: tuple[GroupKey, ...]
    k: np.ndarray
    w: np.ndarray
    w2: np.ndarray

    @classmethod
    def from_arrays(
        cls,
        *,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        sensitive: pd.DataFrame,
        sample_weight: np.ndarray | None = None,
    ) -> CountTable:
        """Count 0/1 labels and predictions per group of the ``sensitive`` columns."""
        index, keys = group_codes(sensitive)
        return cls.from_codes(
            y_true=y_true, y_pred=y_pred, group_index=index, groups=keys,
            columns=tuple(str(c) for c in sensitive.columns), sample_weight=sample_weight,
        )

    @classmethod
    def from_codes(
        cls,
        *,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        group_index: np.ndarray,
        groups: tuple[GroupKey, ...],
        columns: tuple[str, ...],
        sample_weight: np.ndarray | None = None,
    ) -> CountTable:
        """Count per precomputed group index (see :func:`group_codes`)."""
        n_groups = len(groups)
        flat = group_index * 4 + confusion_cell(y_true, y_pred)
        size = n_groups * 4
        k = np.bincount(flat, minlength=size).reshape(n_groups, 4)
        if sample_weight is None:
            w = k.astype(np.float64)
            w2 = w.copy()
        else:
            sw = np.asarray(sample_weight, dtype=np.float64)
            w = np.bincount(flat, weights=sw, minlength=size).reshape(n_groups, 4)
            w2 = np.bincount(flat, weights=sw * sw, minlength=size).reshape(n_groups, 4)
        return cls(columns=columns, groups=groups, k=k.astype(np.int64), w=w, w2=w2)

    @property
    def n(self) -> np.ndarray:
        """Rows per group."""
        return self.k.sum(axis=1)

    @property
    def weighted(self) -> bool:
        """Whether any weight differs from 1 (then ``w`` and ``k`` differ)."""
        return not np.array_equal(self.w, self.k) or not np.array_equal(self.w2, self.k)

    def merge(self, other: CountTable) -> CountTable:
        """Sum two tables over the same columns.

        Groups are united and sorted by their string values (missing last), so the
        result does not depend on the order of merging; compare tables by group key,
        not by position (``from_arrays`` orders numeric values numerically).
        """
        if self.columns != other.columns:
            raise ValueError(f"cannot merge count tables over {self.columns} and {other.columns}")
        keys = list(self.groups) + [g for g in other.groups if g not in set(self.groups)]
        position = {g: i for i, g in enumerate(keys)}
        out = [np.zeros((len(keys), 4), dtype=a.dtype) for a in (self.k, self.w, self.w2)]
        for table in (self, other):
            rows = np.array([position[g] for g in table.groups], dtype=np.int64)
            for acc, part in zip(out, (table.k, table.w, table.w2)):
                np.add.at(acc, rows, part)
        order = sorted(range(len(keys)), key=lambda i: tuple(("\uffff" if v is None else v) for v in keys[i]))
        return CountTable(
            columns=self.columns, groups=tuple(keys[i] for i in order),
            k=out[0][order], w=out[1][order], w2=out[2][order],
        )

    def projection(self, columns: tuple[str, ...]) -> tuple[np.ndarray, tuple[GroupKey, ...]]:
        """Map each group to its group over a subset of ``columns``; -1 where a value is missing.

        Returns the per-group target index and the target keys (no missing values).
        """
        positions = [self.columns.index(c) for c in columns]
        projected = [tuple(g[p] for p in positions) for g in self.groups]
        keys = sorted({key for key in projected if None not in key})
        lookup = {key: i for i, key in enumerate(keys)}
        target = np.array([lookup.get(key, -1) for key in projected], dtype=np.int64)
        return target, tuple(keys)

    def marginal(self, columns: tuple[str, ...]) -> tuple[CountTable, CountTable]:
        """Sum over the other columns: the table for ``columns`` and the excluded rows.

        Rows with a missing value in any of ``columns`` are left out of the first
        table and summed into the second (a one-group table keyed ``("<missing>",)``).
        """
        target, keys = self.projection(columns)
        parts = []
        for source in (self.k, self.w, self.w2):
            acc = np.zeros((len(keys), 4), dtype=source.dtype)
            keep = target >= 0
            np.add.at(acc, target[keep], source[keep])
            parts.append(acc)
        missing = ~(target >= 0)
        excluded = CountTable(
            columns=("<missing>",), groups=(("<missing>",),),
            k=self.k[missing].sum(axis=0, keepdims=True), w=self.w[missing].sum(axis=0, keepdims=True),
            w2=self.w2[missing].sum(axis=0, keepdims=True),
        )
        return CountTable(columns=tuple(columns), groups=keys, k=parts[0], w=parts[1], w2=parts[2]), excluded


def merge_all(tables: list[CountTable]) -> CountTable:
    """Merge several tables over the same columns."""
    if not tables:
        raise ValueError("no count tables to merge")
    out = tables[0]
    for table in tables[1:]:
        out = out.merge(table)
    return out
