"""Score histograms per group and confusion cell: the mergeable form of the score metrics.

A :class:`ScoreHistogram` holds, for every group of the sensitive columns, confusion cell (``tp, fp, tn, fn``, the
label being known from the cell) and score bin, four sums: rows ``k``, weight ``w``, weighted score ``ws`` and
weighted squared error ``se`` (``w * (score - label)^2``).  All four add up across chunks, so histograms built on
shards of a file, or by a Spark aggregation, merge exactly (:meth:`ScoreHistogram.merge`).

Bins are equal-width over [0, 1]: ``bins`` histogram bins nested inside ``calibration_bins`` calibration bins (the
ECE's, ``bins`` a multiple of ``calibration_bins``), so the ECE and the Brier score are exact from the sums and
only the AUC and the scoring rate, which order rows by score, lose the order inside a bin (their error bounds are
in :mod:`fairprompt.metrics.histogram_scores`).  Only non-empty (group, cell, bin) entries are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairprompt.errors import FairpromptError
from fairprompt.metrics.counts import GroupKey, confusion_cell

MIN_BINS = 4096
"""The fewest histogram bins over [0, 1] (the AUC's error bound shrinks with the bin width)."""

POSITIVE_CELLS = np.array([1.0, 0.0, 0.0, 1.0])
"""The label of each confusion cell in ``tp, fp, tn, fn`` order."""


def histogram_bins(calibration_bins: int, *, at_least: int = MIN_BINS) -> int:
    """The number of histogram bins: the smallest multiple of ``calibration_bins`` that is at least ``at_least``."""
    return calibration_bins * -(-at_least // calibration_bins)


def score_bins(scores: np.ndarray, *, bins: int, calibration_bins: int) -> np.ndarray:
    """Each score's histogram bin, nested in its calibration bin ``floor(score * calibration_bins)`` (clipped), the
    same calibration bin as the row-level ECE uses."""
    per = bins // calibration_bins
    outer = np.clip(np.floor(scores * calibration_bins).astype(np.int64), 0, calibration_bins - 1)
    inner = np.clip(np.floor((scores * calibration_bins - outer) * per).astype(np.int64), 0, per - 1)
    return outer * per + inner


@dataclass(frozen=True)
class ScoreHistogram:
    """Sparse per-(group, cell, bin) sums of rows, weights, weighted scores and weighted squared errors.

    Attributes:
        columns: the sensitive columns whose value combinations define the groups.
        groups: one key per group (as in :class:`~fairprompt.metrics.counts.CountTable`).
        bins: histogram bins over [0, 1].
        calibration_bins: the ECE's bins (``bins`` is a multiple of it).
        index: sorted flat index ``(group * 4 + cell) * bins + bin`` of each non-empty entry.
        k, w, ws, se: rows, weight, weight * score and weight * (score - label)^2 of each entry.
    """

    columns: tuple[str, ...]
    groups: tuple[GroupKey, ...]
    bins: int
    calibration_bins: int
    index: np.ndarray
    k: np.ndarray
    w: np.ndarray
    ws: np.ndarray
    se: np.ndarray

    @classmethod
    def from_codes(cls, *, y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray, group_index: np.ndarray,
                   groups: tuple[GroupKey, ...], columns: tuple[str, ...], sample_weight: np.ndarray | None = None,
                   calibration_bins: int = 10, bins: int | None = None) -> ScoreHistogram:
        """Sum the rows of one chunk (scores must lie in [0, 1]) per precomputed group index."""
        scores = np.asarray(y_score, dtype=np.float64)
        if scores.size and (np.nanmin(scores) < 0.0 or np.nanmax(scores) > 1.0):
            raise FairpromptError("score histograms need probabilities in [0, 1]; map log-odds through the sigmoid "
                                  "first (score_scale: logit)")
        bins = histogram_bins(calibration_bins) if bins is None else bins
        y = np.asarray(y_true, dtype=np.float64)
        weight = np.ones_like(scores) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        flat = ((np.asarray(group_index, np.int64) * 4 + confusion_cell(y_true, y_pred)) * bins
                + score_bins(scores, bins=bins, calibration_bins=calibration_bins))
        return cls.summed(columns=columns, groups=groups, bins=bins, calibration_bins=calibration_bins, flat=flat,
                           parts=(np.ones_like(scores), weight, weight * scores, weight * (scores - y) ** 2))

    @classmethod
    def summed(cls, *, columns: tuple[str, ...], groups: tuple[GroupKey, ...], bins: int, calibration_bins: int,
               flat: np.ndarray, parts: tuple[np.ndarray, ...]) -> ScoreHistogram:
        """Sum ``parts`` (rows, weight, weighted score, weighted squared error) per flat entry index."""
        index, inverse = np.unique(flat, return_inverse=True)
        sums = [np.bincount(inverse, weights=p, minlength=index.size) for p in parts]
        return cls(columns=columns, groups=groups, bins=bins, calibration_bins=calibration_bins, index=index,
                   k=np.rint(sums[0]).astype(np.int64), w=sums[1], ws=sums[2], se=sums[3])

    def regrouped(self, *, groups: tuple[GroupKey, ...], mapping: np.ndarray) -> ScoreHistogram:
        """The same sums with group ``i`` renamed ``groups[mapping[i]]`` (entries of merged groups add up)."""
        cell_bin = self.index % (4 * self.bins)
        flat = np.asarray(mapping, np.int64)[self.index // (4 * self.bins)] * 4 * self.bins + cell_bin
        return ScoreHistogram.summed(columns=self.columns, groups=groups, bins=self.bins,
                                      calibration_bins=self.calibration_bins, flat=flat,
                                      parts=(self.k.astype(np.float64), self.w, self.ws, self.se))

    def merge(self, other: ScoreHistogram) -> ScoreHistogram:
        """Sum two histograms over the same columns and bins; groups are united in the order ``self`` then new
        ones of ``other`` (reorder with :meth:`regrouped`)."""
        if (self.columns, self.bins, self.calibration_bins) != (other.columns, other.bins, other.calibration_bins):
            raise ValueError("cannot merge score histograms over different columns or bins")
        keys = list(self.groups) + [g for g in other.groups if g not in set(self.groups)]
        position = {g: i for i, g in enumerate(keys)}
        remap = np.array([position[g] for g in other.groups], dtype=np.int64)
        span = 4 * self.bins
        other_flat = (remap[other.index // span] * span + other.index % span) if other.index.size else other.index
        return ScoreHistogram.summed(
            columns=self.columns, groups=tuple(keys), bins=self.bins, calibration_bins=self.calibration_bins,
            flat=np.concatenate([self.index, other_flat]),
            parts=tuple(np.concatenate([a.astype(np.float64), b.astype(np.float64)])
                        for a, b in ((self.k, other.k), (self.w, other.w), (self.ws, other.ws), (self.se, other.se))))

    def dense(self, target: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
        """Dense ``(n_groups, 4, bins)`` sums after mapping each group through ``target`` (-1: left out)."""
        span = 4 * self.bins
        group = np.asarray(target, np.int64)[self.index // span]
        keep = group >= 0
        flat = group[keep] * span + self.index[keep] % span
        return {name: np.bincount(flat, weights=getattr(self, name)[keep].astype(np.float64),
                                  minlength=n_groups * span).reshape(n_groups, 4, self.bins)
                for name in ("k", "w", "ws", "se")}
