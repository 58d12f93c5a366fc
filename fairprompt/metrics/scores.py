"""Score-based group metrics: ROC AUC, Brier score, expected calibration error, scoring rate.

These need the rows (not mergeable from count tables).  :class:`ScoreAggregator`
precomputes sparse aggregation matrices once per slice so that a whole batch of
bootstrap resamples, given as row multiplicities ``(B, N)``, is evaluated with a
few sparse products; the point estimate is the batch of one all-ones resample.

- ``auc``: probability that a random positive outscores a random negative (ties 1/2),
  weighted; NaN when the group lacks one class.
- ``brier``: weighted mean of ``(score - y)^2``; NaN unless scores lie in [0, 1].
- ``ece``: expected calibration error over ``n_bins`` equal-width bins on [0, 1],
  ``sum_bins (W_bin / W) |mean(y) - mean(score)|``; NaN unless scores lie in [0, 1].
- ``scoring_rate``: share of the group whose score is above the median score of
  all rows (NYC Local Law 144's scoring rate); the median is recomputed in each resample.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fairprompt.metrics.bootstrap import aggregate
from fairprompt.metrics.rates import safe_divide

SCORE_METRICS: tuple[str, ...] = ("auc", "brier", "ece", "scoring_rate")
SCORE_DESCRIPTIONS = {
    "auc": "ROC AUC: chance a positive row outscores a negative one",
    "brier": "Brier score: mean squared error of the score as a probability",
    "ece": "expected calibration error over equal-width score bins",
    "scoring_rate": "share of the group scoring above the overall median score",
}


def _onehot(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    return sp.csr_matrix((data, (rows, cols)), shape=(n_rows, n_cols))


class ScoreAggregator:
    """Evaluates score metrics per group for batches of row multiplicities."""

    def __init__(
        self,
        *,
        y_true: np.ndarray,
        y_score: np.ndarray,
        group_index: np.ndarray,
        n_groups: int,
        sample_weight: np.ndarray | None = None,
        n_bins: int = 10,
    ) -> None:
        y = np.asarray(y_true, dtype=np.float64)
        s = np.asarray(y_score, dtype=np.float64)
        w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        n_rows = s.size
        self.n_groups = n_groups
        self.n_bins = n_bins
        self.probabilities = bool(np.all((s >= 0.0) & (s <= 1.0)))
        keep = np.flatnonzero(group_index >= 0)
        g = group_index[keep]

        # Per (group, bin): weight, weight * score, weight * label; per group: weight * (s - y)^2.
        bins = np.clip(np.floor(s * n_bins).astype(np.int64), 0, n_bins - 1) if self.probabilities else np.zeros(n_rows, np.int64)
        gb = g * n_bins + bins[keep]
        block = n_groups * n_bins
        cols = np.concatenate([gb, gb + block, gb + 2 * block, 3 * block + g])
        data = np.concatenate([w[keep], (w * s)[keep], (w * y)[keep], (w * (s - y) ** 2)[keep]])
        rows = np.tile(keep, 4)
        self._calibration = _onehot(rows, cols, data, n_rows, 3 * block + n_groups)

        # Per (group, distinct score) weight of positives and negatives, sorted by group then score.
        order = np.lexsort((s[keep], g))
        gs, ss = g[order], s[keep][order]
        new = np.ones(order.size, dtype=bool)
        new[1:] = (gs[1:] != gs[:-1]) | (ss[1:] != ss[:-1])
        key = np.cumsum(new) - 1
        self._n_keys = int(key[-1] + 1) if key.size else 0
        self._key_group = gs[new]
        self._key_score = ss[new]
        rows_sorted = keep[order]
        self._pos = _onehot(rows_sorted, key, (w * y)[rows_sorted], n_rows, self._n_keys)
        self._neg = _onehot(rows_sorted, key, (w * (1 - y))[rows_sorted], n_rows, self._n_keys)
        self._seg_start = (np.flatnonzero(np.r_[True, self._key_group[1:] != self._key_group[:-1]]) if self._n_keys
                           else np.array([], int))

        # Distinct scores over ALL rows (the median is the whole sample's).
        uniq, inverse = np.unique(s, return_inverse=True)
        self._all_scores = uniq
        self._all = _onehot(np.arange(n_rows), inverse, w, n_rows, uniq.size)

    def evaluate(self, mult: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics of shape ``(B, G)`` for row multiplicities ``(B, N)``."""
        b = mult.shape[0]
        G, nb = self.n_groups, self.n_bins
        cal = aggregate(mult, self._calibration)
        block = G * nb
        wb = cal[:, :block].reshape(b, G, nb)
        sb = cal[:, block : 2 * block].reshape(b, G, nb)
        yb = cal[:, 2 * block : 3 * block].reshape(b, G, nb)
        sq = cal[:, 3 * block :]
        total = wb.sum(axis=2)
        out: dict[str, np.ndarray] = {}
        if self.probabilities:
            out["brier"] = safe_divide(sq, total)
            out["ece"] = safe_divide(np.abs(yb - sb).sum(axis=2), total)
        else:
            out["brier"] = np.full((b, G), np.nan)
            out["ece"] = np.full((b, G), np.nan)

        pos = aggregate(mult, self._pos)  # (B, U) sorted by group, score
        neg = aggregate(mult, self._neg)
        cum_neg = np.cumsum(neg, axis=1)
        seg_of_key = np.repeat(np.arange(self._seg_start.size), np.diff(np.r_[self._seg_start, self._n_keys]))
        before_segment = np.where(self._seg_start > 0, cum_neg[:, np.maximum(self._seg_start - 1, 0)], 0.0)
        below = cum_neg - neg - before_segment[:, seg_of_key]
        wins = np.add.reduceat(pos * (below + 0.5 * neg), self._seg_start, axis=1)
        p_tot = np.add.reduceat(pos, self._seg_start, axis=1)
        n_tot = np.add.reduceat(neg, self._seg_start, axis=1)
        groups_present = self._key_group[self._seg_start]
        auc = np.full((b, G), np.nan)
        auc[:, groups_present] = safe_divide(wins, p_tot * n_tot)
        out["auc"] = auc

        # Scoring rate: weight above the (weighted, lower) median of all rows' scores.
        all_w = aggregate(mult, self._all)
        cum_all = np.cumsum(all_w, axis=1)
        median_pos = np.argmax(cum_all >= cum_all[:, -1:] / 2.0, axis=1)
        median = self._all_scores[median_pos]
        mass = pos + neg
        cum_mass = np.cumsum(mass, axis=1)
        rate = np.full((b, G), np.nan)
        ends = np.r_[self._seg_start[1:], self._n_keys]
        for seg, (start, end) in enumerate(zip(self._seg_start, ends)):
            scores = self._key_score[start:end]
            cut = start + np.searchsorted(scores, median, side="right")  # first key above the median
            base = cum_mass[:, start - 1] if start > 0 else np.zeros(b)
            seg_total = cum_mass[:, end - 1] - base
            at_or_below = np.where(cut > start, cum_mass[np.arange(b), np.maximum(cut - 1, 0)] - base, 0.0)
            rate[:, groups_present[seg]] = safe_divide(seg_total - at_or_below, seg_total)
        out["scoring_rate"] = rate
        return out

    def median_score(self) -> float:
        """The weighted lower median of all rows' scores (point estimate)."""
        weights = np.asarray(self._all.sum(axis=0)).ravel()
        cum = np.cumsum(weights)
        return float(self._all_scores[np.argmax(cum >= cum[-1] / 2.0)])

    def calibration_curve(self) -> dict[str, np.ndarray]:
        """Per group and bin (point estimate): weight, mean score and observed positive share."""
        cal = aggregate(np.ones((1, self._calibration.shape[0])), self._calibration)[0]
        G, nb = self.n_groups, self.n_bins
        block = G * nb
        wb = cal[:block].reshape(G, nb)
        return {
            "weight": wb,
            "mean_score": safe_divide(cal[block : 2 * block].reshape(G, nb), wb),
            "positive_share": safe_divide(cal[2 * block : 3 * block].reshape(G, nb), wb),
        }

    def roc_curves(self, *, max_points: int = 101) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per group (point estimate): (FPR, TPR) at each distinct threshold, thinned to ``max_points``."""
        ones = np.ones((1, self._pos.shape[0]))
        pos = aggregate(ones, self._pos)[0]
        neg = aggregate(ones, self._neg)[0]
        curves: list[tuple[np.ndarray, np.ndarray] | None] = [None] * self.n_groups
        ends = np.r_[self._seg_start[1:], self._n_keys]
        for start, end in zip(self._seg_start, ends):
            group = int(self._key_group[start])
            p, n = pos[start:end][::-1], neg[start:end][::-1]  # descending score
            if p.sum() <= 0 or n.sum() <= 0:
                continue
            tpr = np.r_[0.0, np.cumsum(p) / p.sum()]
            fpr = np.r_[0.0, np.cumsum(n) / n.sum()]
            if tpr.size > max_points:
                pick = np.unique(np.linspace(0, tpr.size - 1, max_points).round().astype(int))
                tpr, fpr = tpr[pick], fpr[pick]
            curves[group] = (fpr, tpr)
        return curves
