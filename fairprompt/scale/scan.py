"""Count tables and score histograms of a predictions file of any size, built batch by batch.

:class:`TableBuilder` takes the batches of :mod:`fairprompt.scale.sources` (a Spark aggregation builds the same tables
on the driver, :mod:`fairprompt.scale.spark`), checks each value as the in-memory reader does (labels and predictions binary or
matched to the positive label, scores numeric and finite, weights non-negative, missing values refused or dropped
and counted), and adds the batch to one count table over the finest groups and, with scores, one score histogram.
Memory holds one batch and the tables, never the file.

While the file is small (at most ``exact_rows`` rows) the builder also keeps its rows, and :func:`scan_predictions`
then audits those rows exactly (:func:`fairprompt.metrics.audit`); past that it drops them and the audit comes from
the tables (:func:`fairprompt.metrics.audit.audit_tables`).  Count-based results are identical either way; only the
AUC and the scoring rate carry a histogram bound.  The groups are put in the order the in-memory audit gives them
(each column's values sorted, missing last), so the same seed draws the same count-table resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fairprompt.errors import FairpromptError
from fairprompt.metrics.counts import CountTable, confusion_cell
from fairprompt.metrics.histograms import ScoreHistogram, histogram_bins, score_bins
from fairprompt.metrics.inputs import binarize, scores_array
from fairprompt.scale.sources import Sources, batches, check_schemas, resolve_files

DENSE_ENTRIES = 1 << 21
"""Histogram sums are kept dense while groups x 4 x bins is at most this (16 MB per sum), sparse beyond."""

EXACT_ROWS = 200_000
"""Files with at most this many rows are audited from their rows (exact score metrics and CIs)."""

ScoreScale = Literal["probability", "logit"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Columns:
    """The columns of a predictions file and how to read them (as the spec's ``predictions`` block)."""

    label: str
    sensitive: tuple[str, ...]
    prediction: str | None = None
    score: str | None = None
    weight: str | None = None
    positive_label: Any = None
    score_threshold: float | None = None
    score_scale: ScoreScale = "probability"
    drop_missing: bool = False

    def __post_init__(self) -> None:
        if self.prediction is None and (self.score is None or self.score_threshold is None):
            raise FairpromptError("give a prediction column, or a score column with a score threshold")

    @property
    def needed(self) -> list[str]:
        """Each column read, once, in a fixed order."""
        out: list[str] = []
        for column in (self.label, self.prediction, self.score, self.weight, *self.sensitive):
            if column is not None and column not in out:
                out.append(column)
        return out

    @property
    def roles(self) -> dict[str, str | None]:
        return {"label": self.label, "prediction": self.prediction, "score": self.score, "weight": self.weight}


def sorted_values(values: list[Any]) -> list[Any]:
    """A sensitive column's values in the in-memory audit's order: sorted when comparable, else as given."""
    try:
        return sorted(values)
    except TypeError:
        return values


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so that 1 from pandas and 1 from Arrow are one group)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class _Column:
    """One sensitive column's values seen so far: raw value -> code, in order of first sight."""

    codes: dict[Any, int] = field(default_factory=dict)

    def encode(self, values: pa.Array | pd.Series) -> np.ndarray:
        """Each row's code (-1 where missing)."""
        if isinstance(values, pd.Series):
            local_codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
            local = np.asarray([self.codes.setdefault(_plain(v), len(self.codes)) for v in uniques], dtype=np.int64)
            return np.where(local_codes < 0, -1, local[np.maximum(local_codes, 0)] if local.size else 0)
        if pa.types.is_floating(values.type):
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
        encoded = pc.dictionary_encode(values)
        local = [self.codes.setdefault(v, len(self.codes)) for v in encoded.dictionary.to_pylist()]
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        mapped = np.asarray(local, dtype=np.int64)[np.nan_to_num(indices, nan=0).astype(np.int64)] if local else \
            np.zeros(len(values), np.int64)
        return np.where(pd.isna(indices), -1, mapped) if encoded.indices.null_count else mapped

    def order(self) -> list[Any]:
        """The values in the in-memory audit's order."""
        return sorted_values(list(self.codes))


def _series(values: pa.Array | pd.Series) -> pd.Series:
    return values if isinstance(values, pd.Series) else values.to_pandas()


def _take(values: pa.Array | pd.Series, keep: np.ndarray) -> pa.Array | pd.Series:
    return values[keep].reset_index(drop=True) if isinstance(values, pd.Series) else pc.filter(values, pa.array(keep))


def _weights(values: pd.Series, *, name: str) -> np.ndarray:
    """One batch's weights: numeric, finite, non-negative (a batch may sum to zero; the file may not)."""
    try:
        weights = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise FairpromptError(f"weight column {name!r} is not numeric; give non-negative numbers") from None
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise FairpromptError(f"weight column {name!r} has negative, missing or infinite values; "
                              "give non-negative finite numbers")
    return weights


@dataclass(frozen=True)
class ScanResult:
    """What a scan found: the tables (or the rows of a small file), and the counts for the report."""

    table: CountTable
    histogram: ScoreHistogram | None
    rows: int                       # rows read (those dropped for a missing value included)
    dropped: dict[str, int]         # rows left out per column with a missing value (drop_missing)
    weighted: bool
    kept: dict[str, Any] | None     # the rows themselves when at most exact_rows (arrays for metrics.audit)
    file_rows: dict[Path, int | None]  # rows read from each file (None: not counted, Spark)


class TableBuilder:
    """Adds batches of a predictions file to a count table and a score histogram over the finest groups."""

    def __init__(self, columns: Columns, *, calibration_bins: int = 10, exact_rows: int = EXACT_ROWS) -> None:
        self.columns = columns
        self.calibration_bins = calibration_bins
        self.bins = histogram_bins(calibration_bins)
        self.exact_rows = exact_rows
        self.sensitive = [_Column() for _ in columns.sensitive]
        self.combos: dict[tuple[int, ...], int] = {}
        self.k = np.zeros((0, 4), np.int64)
        self.w = np.zeros((0, 4))
        self.w2 = np.zeros((0, 4))
        self.entries: list[tuple[np.ndarray, ...]] = []  # sparse (index, k, w, ws, se) parts
        self.dense: list[np.ndarray] | None = None       # or dense k, w, ws, se over groups x 4 x bins
        self.entry_count = 0
        self.rows = 0  # rows counted (read, less those dropped)
        self.read = 0
        self.first_out_of_range = ""
        self.missing: dict[str, int] = {}  # role -> rows with a missing value
        self.labels_seen: set[Any] = set()
        self.predictions_seen: set[Any] = set()
        self.positive_labels = 0
        self.probabilities = True
        self.kept: list[dict[str, Any]] | None = []

    # ------------------------------------------------------------------------------------------- one batch
    def add(self, batch: Mapping[str, pa.Array | pd.Series], *, rows: int, where: str) -> None:
        """Check and count one batch of ``rows`` rows, column name -> values (``where`` names it in errors)."""
        cols = self.columns
        n = rows
        self.read += n
        if n == 0:
            return
        frame = dict(batch)
        series = {role: _series(frame[c]) for role, c in cols.roles.items() if c is not None}
        keep = self._missing(series)
        if keep is not None:
            series = {role: s[keep].reset_index(drop=True) for role, s in series.items()}
            frame = {name: _take(values, keep) for name, values in frame.items()}
            n = int(keep.sum())
            if n == 0:
                return
        try:
            y = self._binary(series["label"], cols.label, self.labels_seen, label=True)
            scores = None
            if cols.score is not None:
                scores = scores_array(series["score"], name=cols.score)
            if cols.prediction is not None:
                p = self._binary(series["prediction"], cols.prediction, self.predictions_seen, label=False)
            else:
                assert scores is not None and cols.score_threshold is not None
                p = (scores >= cols.score_threshold).astype(np.int8)
            if scores is not None and cols.score_scale == "logit":
                scores = 1.0 / (1.0 + np.exp(-scores))
            weights = None if cols.weight is None else _weights(series["weight"], name=cols.weight)
        except FairpromptError as exc:
            raise FairpromptError(f"{where}: {exc}") from None
        codes = [column.encode(frame[name]) for column, name in zip(self.sensitive, cols.sensitive)]
        group = self._groups(codes)
        self._count(y, p, group, weights)
        if scores is not None:
            if self.probabilities and (scores.min() < 0.0 or scores.max() > 1.0):
                self.probabilities = False
                self.first_out_of_range = f"{where}: score {float(scores[(scores < 0) | (scores > 1)][0]):g}"
            if self.probabilities:
                self._histogram(y, p, scores, group, weights)
        self.rows += n
        if self.kept is not None:
            if self.rows > self.exact_rows:
                self.kept = None
            else:
                self.kept.append({"y": y, "p": p, "score": scores, "weight": weights,
                                  "sensitive": {name: _series(frame[name]) for name in cols.sensitive}})

    def _missing(self, series: dict[str, pd.Series]) -> np.ndarray | None:
        """Rows to keep (None: all); each column's missing values are counted (refused at the end unless
        ``drop_missing``, with the counts of the whole file)."""
        missing = {role: s.isna().to_numpy() for role, s in series.items()}
        bad = {role: int(m.sum()) for role, m in missing.items() if m.any()}
        if not bad:
            return None
        for role, count in bad.items():
            self.missing[role] = self.missing.get(role, 0) + count
        return ~np.logical_or.reduce(list(missing.values()))

    def _binary(self, values: pd.Series, name: str, seen: set[Any], *, label: bool) -> np.ndarray:
        positive = self.columns.positive_label
        if positive is None and (values.dtype.kind in "iub"):  # integers: binary by their range, no hashing
            low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
            if low >= 0 and high <= 1:
                seen.update({low, high})
                if not (seen <= {0, 1} or seen <= {-1, 1}):
                    binarize(pd.Series(sorted(seen), dtype=object), name=name)  # the in-memory reader's error
                return values.to_numpy().astype(np.int8)
        if positive is None:
            out = binarize(values, name=name)
            seen.update(pd.unique(values).tolist())
            if not (seen <= {0, 1} or seen <= {-1, 1}):  # binary in each batch, but not across them
                binarize(pd.Series(list(seen), dtype=object), name=name)  # the in-memory reader's error
            return out
        out = binarize(values, name=name, positive_label=positive, require_present=False)
        if label:
            self.positive_labels += int(out.sum())
            if len(seen) < 6:
                seen.update(pd.unique(values).tolist()[:6])
        return out

    def _groups(self, codes: list[np.ndarray]) -> np.ndarray:
        """Each row's finest group (an index into the combinations seen so far)."""
        width = tuple(max(int(c.max()) + 2, 2) for c in codes)
        flat = np.ravel_multi_index(tuple(c + 1 for c in codes), width)  # missing (-1) -> 0
        total = int(np.prod(width))
        if total <= 1 << 22:
            present = np.flatnonzero(np.bincount(flat, minlength=total))
            inverse = None
        else:
            present, inverse = np.unique(flat, return_inverse=True)
        local = np.unravel_index(present, width)
        ids = np.array([self.combos.setdefault(tuple(int(axis[i]) - 1 for axis in local), len(self.combos))
                        for i in range(present.size)], dtype=np.int64)
        if inverse is not None:
            return ids[inverse]
        lookup = np.zeros(total, np.int64)
        lookup[present] = ids
        return lookup[flat]

    def _count(self, y: np.ndarray, p: np.ndarray, group: np.ndarray, weights: np.ndarray | None) -> None:
        size = len(self.combos)
        if size > self.k.shape[0]:
            grow = size - self.k.shape[0]
            self.k = np.vstack([self.k, np.zeros((grow, 4), np.int64)])
            self.w = np.vstack([self.w, np.zeros((grow, 4))])
            self.w2 = np.vstack([self.w2, np.zeros((grow, 4))])
        flat = group * 4 + confusion_cell(y, p)
        counts = np.bincount(flat, minlength=size * 4).reshape(size, 4)
        self.k += counts
        if weights is None:
            self.w += counts
            self.w2 += counts
        else:
            self.w += np.bincount(flat, weights=weights, minlength=size * 4).reshape(size, 4)
            self.w2 += np.bincount(flat, weights=weights * weights, minlength=size * 4).reshape(size, 4)

    def _histogram(self, y: np.ndarray, p: np.ndarray, scores: np.ndarray, group: np.ndarray,
                   weights: np.ndarray | None) -> None:
        """Add a batch to the histogram: dense sums while groups x 4 x bins is small, else sparse entries."""
        flat = ((group * 4 + confusion_cell(y, p)) * self.bins
                + score_bins(scores, bins=self.bins, calibration_bins=self.calibration_bins))
        weight = np.ones_like(scores) if weights is None else weights
        parts = (None, weight, weight * scores, weight * (scores - y) ** 2)
        size = len(self.combos) * 4 * self.bins
        if size <= DENSE_ENTRIES:
            if self.dense is None or self.dense[0].size < size:
                grown = [np.zeros(size) for _ in range(4)]
                if self.dense is not None:
                    for new, old in zip(grown, self.dense):
                        new[:old.size] = old
                self.dense = grown
            counts = np.bincount(flat, minlength=size)
            self.dense[0] += counts
            self.dense[1] += counts if weights is None else np.bincount(flat, weights=weight, minlength=size)
            for total, part in zip(self.dense[2:], parts[2:]):
                total += np.bincount(flat, weights=part, minlength=size)
            return
        index, inverse = np.unique(flat, return_inverse=True)
        sums = [np.bincount(inverse, weights=part, minlength=index.size) for part in parts]
        self.entries.append((index, *sums))
        self.entry_count += index.size
        if len(self.entries) > 1 and self.entry_count > 4 * max(index.size, 1 << 16):
            self._compact()

    def _compact(self) -> None:
        """Merge the sparse parts (and the dense sums, once the groups outgrow them) into one sparse part."""
        if self.dense is not None:
            nonzero = np.flatnonzero(self.dense[0])
            self.entries.append((nonzero, *(d[nonzero] for d in self.dense)))
            self.dense = None
        flat = np.concatenate([e[0] for e in self.entries])
        index, inverse = np.unique(flat, return_inverse=True)
        sums = tuple(np.bincount(inverse, weights=np.concatenate([e[i] for e in self.entries]), minlength=index.size)
                     for i in range(1, 5))
        self.entries = [(index, *sums)]
        self.entry_count = index.size

    # ------------------------------------------------------------------------------------------- the end
    def finish(self, *, source: str, file_rows: Mapping[Path, int] | None = None) -> ScanResult:
        """The tables in the in-memory audit's group order, after the whole-file checks."""
        cols = self.columns
        if self.missing:
            shown = " and ".join(f"{role} column {cols.roles[role]!r} ({count:,} of {self.read:,} rows)"
                                 for role, count in self.missing.items())
            if not cols.drop_missing:
                raise FairpromptError(f"{source} has missing values in the {shown}; fill them, or leave those rows out "
                                      "of the audit with --drop-missing (predictions.drop_missing: true in a spec)")
            if self.rows == 0:
                raise FairpromptError(f"every row of {source} has a missing value (in the {shown}); nothing is left "
                                      "to audit: fill in the missing values")
        if self.rows == 0:
            raise FairpromptError(f"{source} has no rows to audit; check the input")
        if cols.positive_label is not None and self.positive_labels == 0:
            shown = ", ".join(repr(v) for v in list(self.labels_seen)[:6])
            raise FairpromptError(f"{source}: positive label {cols.positive_label!r} does not occur in column "
                                  f"{cols.label!r} (values: {shown}); set the positive label to one of them")
        if cols.weight is not None and self.w.sum() <= 0:
            raise FairpromptError(f"{source}: weight column {cols.weight!r} sums to zero; give positive weights")
        ranks = []
        for column in self.sensitive:
            ordered = column.order()
            rank = np.empty(len(ordered), np.int64)
            for position, value in enumerate(ordered):
                rank[column.codes[value]] = position
            ranks.append((rank, ordered))
        combos = list(self.combos)
        sort_key = [tuple((len(r[1]) if c < 0 else int(r[0][c])) for c, r in zip(combo, ranks)) for combo in combos]
        order = sorted(range(len(combos)), key=lambda i: sort_key[i])
        keys = tuple(tuple(None if c < 0 else str(r[1][int(r[0][c])]) for c, r in zip(combos[i], ranks))
                     for i in order)
        table = CountTable(columns=cols.sensitive, groups=keys, k=self.k[order], w=self.w[order],
                           w2=self.w2[order])
        histogram = None
        if cols.score is not None and self.kept is None:
            if not self.probabilities:
                raise FairpromptError(
                    f"{self.first_out_of_range} is not a probability in [0, 1]; a file of more than "
                    f"{self.exact_rows:,} rows is audited from score histograms over [0, 1]: if the scores are "
                    "log-odds, say so (--score-scale logit, predictions.score_scale: logit)")
            if self.dense is not None or len(self.entries) > 1:
                self._compact()
            index, k, w, ws, se = self.entries[0] if self.entries else (np.zeros(0, np.int64),) + (np.zeros(0),) * 4
            position = np.empty(len(order), np.int64)
            position[np.asarray(order, np.int64)] = np.arange(len(order))
            histogram = ScoreHistogram(columns=cols.sensitive, groups=(), bins=self.bins,
                                       calibration_bins=self.calibration_bins, index=index, k=np.rint(k).astype(np.int64),
                                       w=w, ws=ws, se=se).regrouped(groups=keys, mapping=position)
        kept = None
        if self.kept is not None:
            parts = self.kept
            kept = {
                "y_true": np.concatenate([p["y"] for p in parts]), "y_pred": np.concatenate([p["p"] for p in parts]),
                "y_score": None if cols.score is None else np.concatenate([p["score"] for p in parts]),
                "sample_weight": None if cols.weight is None else np.concatenate([p["weight"] for p in parts]),
                "sensitive": pd.concat([pd.DataFrame(p["sensitive"]) for p in parts], ignore_index=True),
            }
        dropped = {str(cols.roles[role]): count for role, count in self.missing.items()}
        return ScanResult(table=table, histogram=histogram, rows=self.read, dropped=dropped,
                          weighted=cols.weight is not None, kept=kept,
                          file_rows=dict(file_rows or {}))


def scan_predictions(path: str | Path, *, columns: Columns, calibration_bins: int = 10, exact_rows: int = EXACT_ROWS,
                     progress: Progress | None = None) -> ScanResult:
    """Read a predictions file (or directory, or glob of Parquet files) batch by batch into count tables."""
    sources: Sources = resolve_files(path)
    check_schemas(sources, columns.needed)
    builder = TableBuilder(columns, calibration_bins=calibration_bins, exact_rows=exact_rows)
    file_rows = {file: 0 for file in sources.files}
    for file, start, rows, batch in batches(sources, columns.needed):
        builder.add(batch, rows=rows, where=f"file '{file}' (rows from {start + 1:,})")
        file_rows[file] += rows
        if progress and builder.read > rows:  # a file of one batch reads at once
            progress("reading predictions", builder.read, 0)
    return builder.finish(source=f"predictions file '{sources.given}'", file_rows=file_rows)
