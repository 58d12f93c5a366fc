"""Score metrics from merged score histograms, their error bounds, and their bootstrap by multinomial draws.

With ``H`` equal-width bins over [0, 1] (:mod:`fairprompt.metrics.histograms`), per group:

- ``brier`` and ``ece`` are exact: sums of ``w (s - y)^2``, and per calibration bin of ``w``, ``w s`` and ``w y``.
- ``auc`` counts a positive and a negative in the same bin as a tie (1/2).  Its distance to the exact AUC is at
  most **half the sum over bins of the products of the positive and negative bin shares**,
  ``1/2 sum_b (P_b / P) (N_b / N)`` (only pairs inside one bin can be misordered, and each counts 1/2 here).
- ``scoring_rate`` (share above the median score of all rows) places the median inside its bin by linear
  interpolation; its distance to the exact rate is at most the group's share of rows in the median's bin.

The bootstrap draws, for every fine group (the intersection of all sensitive columns), a multinomial over its
non-empty (cell, bin) entries with the group's row count, never per row: the histogram analogue of the stratified
count-table bootstrap.  A resampled entry carries its entry's mean weight, mean score and mean squared error, so a
resampled Brier score is within ``2 / H`` of the row bootstrap's on the same draw (a squared error varies by at most
``2 / H`` inside a bin of one label), and a resampled ECE within ``1 / H`` (a score moves at most ``1 / H`` in its bin);
with sample weights the weight of a resampled entry is its count times the entry's mean weight.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from fairprompt.metrics.histograms import ScoreHistogram
from fairprompt.metrics.rates import safe_divide

HISTOGRAM_CELLS = 2_000_000
"""Resampled entry counts held at a time by the histogram bootstrap (16 MB)."""

THREADS = 2
"""Threads that draw the groups' multinomials."""


def _median_position(mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``mass`` (…, H): the median's bin and the share of that bin's mass above it (uniform inside)."""
    cum = np.cumsum(mass, axis=-1)
    half = cum[..., -1:] / 2.0
    at = np.argmax(cum >= half, axis=-1)
    below = np.take_along_axis(cum - mass, at[..., None], axis=-1)[..., 0]
    inside = np.take_along_axis(mass, at[..., None], axis=-1)[..., 0]
    fraction_below = safe_divide(half[..., 0] - below, inside)
    return at, np.clip(1.0 - np.nan_to_num(fraction_below, nan=1.0), 0.0, 1.0)


@dataclass(frozen=True)
class BinSums:
    """What every score metric needs, per resample and group: the weight of positives and of negatives per bin
    ``(B, G, H)``, the weighted score per calibration bin ``(B, G, C)`` and the weighted squared error ``(B, G)``."""

    pos: np.ndarray
    neg: np.ndarray
    score: np.ndarray
    se: np.ndarray

    def project(self, one_hot: np.ndarray) -> BinSums:
        """Sums over fine groups mapped to a slice's groups by ``one_hot`` ``(G_fine, G)``."""
        return BinSums(pos=np.einsum("bgh,gs->bsh", self.pos, one_hot, optimize=True),
                       neg=np.einsum("bgh,gs->bsh", self.neg, one_hot, optimize=True),
                       score=np.einsum("bgc,gs->bsc", self.score, one_hot, optimize=True), se=self.se @ one_hot)


@dataclass(frozen=True)
class FineStats:
    """Per resample and fine group, what every slice's score metrics are sums of: the pairwise AUC wins
    ``wins[a, b] = sum_h pos_a[h] (neg_b below h + neg_b[h] / 2)`` ``(B, G, G)``, the positive and negative weight,
    the weight above the median score of all rows, the weighted squared error ``(B, G)``, and per calibration bin the
    positive weight and the weighted score ``(B, G, C)``.  A slice group unites fine groups, so its metrics come
    from block sums of these: no per-slice pass over the bins."""

    wins: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    above: np.ndarray
    se: np.ndarray
    label_c: np.ndarray
    score_c: np.ndarray

    @classmethod
    def of(cls, sums: BinSums, *, all_mass: np.ndarray) -> FineStats:
        pos, neg = sums.pos, sums.neg
        b, g, h = pos.shape
        calibration_bins = sums.score.shape[-1]
        below = np.cumsum(neg, axis=-1)
        below -= 0.5 * neg
        wins = np.matmul(pos, below.transpose(0, 2, 1))
        median_bin, above_share = _median_position(all_mass)
        mass = pos + neg
        total = mass.sum(axis=-1)
        at = np.broadcast_to(median_bin[:, None, None], (b, g, 1))
        up_to = np.take_along_axis(np.cumsum(mass, axis=-1), at, axis=-1)[..., 0]
        inside = np.take_along_axis(mass, at, axis=-1)[..., 0]
        return cls(wins=wins, pos=pos.sum(axis=-1), neg=neg.sum(axis=-1),
                   above=total - up_to + above_share[:, None] * inside, se=sums.se,
                   label_c=pos.reshape(b, g, calibration_bins, h // calibration_bins).sum(axis=-1), score_c=sums.score)

    def metrics(self, one_hot: np.ndarray) -> dict[str, np.ndarray]:
        """Score metrics ``(B, S)`` of the slice whose groups unite fine groups as ``one_hot`` ``(G, S)`` says."""
        p, n = self.pos @ one_hot, self.neg @ one_hot
        total = p + n
        wins = np.einsum("bij,is,js->bs", self.wins, one_hot, one_hot, optimize=True)
        label_c = np.einsum("bgc,gs->bsc", self.label_c, one_hot)
        score_c = np.einsum("bgc,gs->bsc", self.score_c, one_hot)
        return {"auc": safe_divide(wins, p * n), "brier": safe_divide(self.se @ one_hot, total),
                "ece": safe_divide(np.abs(label_c - score_c).sum(axis=-1), total),
                "scoring_rate": safe_divide(self.above @ one_hot, total)}


def error_bounds(sums: BinSums, *, all_mass: np.ndarray) -> dict[str, np.ndarray]:
    """Per group ``(G,)`` of a one-resample :class:`BinSums`: the largest distance of the histogram AUC and scoring
    rate to the exact ones."""
    pos, neg = sums.pos[0], sums.neg[0]
    auc = 0.5 * safe_divide((pos * neg).sum(axis=-1), pos.sum(axis=-1) * neg.sum(axis=-1))
    median_bin, _ = _median_position(all_mass[None])
    mass = pos + neg
    return {"auc": auc, "scoring_rate": safe_divide(mass[:, int(median_bin[0])], mass.sum(axis=-1))}


def median_score(all_mass: np.ndarray) -> float:
    """The median score of all rows, interpolated inside its bin (within one bin width of the exact one)."""
    at, above = _median_position(all_mass[None])
    return float((at[0] + 1.0 - above[0]) / all_mass.size)


class EntrySums:
    """The fixed layout of a histogram's entries: where each entry's rows go in :class:`BinSums`, and their mean
    weight, weighted score and weighted squared error per row."""

    def __init__(self, histogram: ScoreHistogram) -> None:
        span = 4 * histogram.bins
        self.n_groups = len(histogram.groups)
        self.bins = histogram.bins
        self.calibration_bins = histogram.calibration_bins
        group = histogram.index // span
        cell = (histogram.index % span) // histogram.bins
        bin_ = histogram.index % histogram.bins
        positive = (cell == 0) | (cell == 3)
        self.label_index = (group * 2 + ~positive) * histogram.bins + bin_  # pos block then neg block per group
        self.calibration_index = group * self.calibration_bins + bin_ // (histogram.bins // self.calibration_bins)
        self.group = group
        rows = np.maximum(histogram.k.astype(np.float64), 1.0)
        self.k = histogram.k.astype(np.float64)
        self.mean_w, self.mean_ws, self.mean_se = histogram.w / rows, histogram.ws / rows, histogram.se / rows

    def sums(self, counts: np.ndarray) -> BinSums:
        """:class:`BinSums` over the fine groups for entry counts ``(B, entries)`` (the histogram itself: ``k``)."""
        b = counts.shape[0]
        g, h, c = self.n_groups, self.bins, self.calibration_bins

        def scatter(index: np.ndarray, per_row: np.ndarray, width: int) -> np.ndarray:
            positions = ((np.arange(b, dtype=np.int64) * width)[:, None] + index[None]).ravel()
            return np.bincount(positions, weights=(counts * per_row[None]).ravel(), minlength=b * width)

        labelled = scatter(self.label_index, self.mean_w, g * 2 * h).reshape(b, g, 2, h)
        return BinSums(pos=labelled[:, :, 0], neg=labelled[:, :, 1],
                       score=scatter(self.calibration_index, self.mean_ws, g * c).reshape(b, g, c),
                       se=scatter(self.group, self.mean_se, g).reshape(b, g))

    def point(self) -> BinSums:
        return self.sums(self.k[None])


def calibration_curve(sums: BinSums) -> dict[str, np.ndarray]:
    """Per group and calibration bin of a one-resample :class:`BinSums`: weight, mean score, positive share."""
    pos, neg, score = sums.pos[0], sums.neg[0], sums.score[0]
    g, h = pos.shape
    c = score.shape[-1]
    weight = (pos + neg).reshape(g, c, h // c).sum(axis=-1)
    label = pos.reshape(g, c, h // c).sum(axis=-1)
    return {"weight": weight, "mean_score": safe_divide(score, weight), "positive_share": safe_divide(label, weight)}


def roc_curves(sums: BinSums, *, max_points: int = 101) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per group of a one-resample :class:`BinSums`: (FPR, TPR) at each non-empty bin from the top, thinned."""
    curves: list[tuple[np.ndarray, np.ndarray] | None] = []
    for p, n in zip(sums.pos[0][:, ::-1], sums.neg[0][:, ::-1]):
        if p.sum() <= 0 or n.sum() <= 0:
            curves.append(None)
            continue
        keep = np.flatnonzero((p + n) > 0)
        tpr = np.r_[0.0, np.cumsum(p)[keep] / p.sum()]
        fpr = np.r_[0.0, np.cumsum(n)[keep] / n.sum()]
        if tpr.size > max_points:
            pick = np.unique(np.linspace(0, tpr.size - 1, max_points).round().astype(int))
            tpr, fpr = tpr[pick], fpr[pick]
        curves.append((fpr, tpr))
    return curves


def resample_entries(histogram: ScoreHistogram, *, n_boot: int, rng: np.random.Generator,
                     chunk: int | None = None) -> Iterator[np.ndarray]:
    """Row counts of every non-empty entry in stratified resamples, chunks of shape ``(b, entries)``.

    Each fine group keeps its row count; its rows are redrawn over its entries by one multinomial per resample.
    The groups are drawn on two threads (numpy's generators release the GIL), each group from its own stream
    spawned from ``rng``, so the result does not depend on the threads."""
    span = 4 * histogram.bins
    group = histogram.index // span
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if group.size else np.array([], np.int64)
    ends = np.r_[starts[1:], group.size]
    k = histogram.k.astype(np.float64)
    streams = rng.spawn(len(starts))
    if chunk is None:
        chunk = max(1, min(n_boot, HISTOGRAM_CELLS // max(group.size, 1)))
    done = 0
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        while done < n_boot:
            b = min(chunk, n_boot - done)
            out = np.zeros((b, group.size), dtype=np.float64)

            def draw(i: int, b: int = b, out: np.ndarray = out) -> None:
                counts = k[starts[i]:ends[i]]
                n = int(counts.sum())
                if n > 0:
                    out[:, starts[i]:ends[i]] = streams[i].multinomial(n, counts / counts.sum(), size=b)

            list(pool.map(draw, range(len(starts))))
            yield out
            done += b
