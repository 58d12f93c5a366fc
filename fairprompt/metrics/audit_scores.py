"""The score metrics of an audit, per slice and overall, from the rows or from merged score histograms.

Two ways to the same record (:class:`ScoreResults`): :func:`row_scores` is exact (the row-level aggregators of
:mod:`fairprompt.metrics.scores`, resampled by row multiplicities) and keeps every row in memory;
:func:`histogram_scores` works from a :class:`~fairprompt.metrics.histograms.ScoreHistogram` merged over chunks,
with the error bounds of :mod:`fairprompt.metrics.histogram_scores`, and its memory does not grow with the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fairprompt.metrics.bootstrap import counts_from_rows, multiplicities
from fairprompt.metrics.counts import confusion_cell
from fairprompt.metrics.histogram_scores import (
    BinSums,
    EntrySums,
    FineStats,
    calibration_curve,
    error_bounds,
    median_score,
    resample_entries,
    roc_curves,
)
from fairprompt.metrics.histograms import ScoreHistogram
from fairprompt.metrics.scores import ScoreAggregator

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SliceScores:
    """One slice's score metrics: point values ``(G,)``, resamples ``(B, G)`` and curves; ``bounds`` (histograms
    only) is each group's largest distance of the AUC and scoring rate to their exact values."""

    point: dict[str, np.ndarray]
    samples: dict[str, np.ndarray] | None
    calibration: dict[str, np.ndarray]
    roc: list[tuple[np.ndarray, np.ndarray] | None]
    bounds: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class ScoreResults:
    """Every slice's score metrics, the overall ones (one group) and the median score of all rows."""

    slices: list[SliceScores]
    overall: SliceScores
    median: float
    method: Literal["rows", "histogram"]
    bins: int | None = None  # histogram bins over [0, 1] (histograms only)

    def describe(self) -> dict[str, Any] | None:
        """The histogram settings and bound rule for results.json (None for the exact row-level metrics)."""
        if self.method == "rows":
            return None
        return {"bins": self.bins,
                "note": ("score metrics from merged score histograms: Brier and ECE exact; AUC within half the sum "
                         "over bins of the products of the positive and negative bin shares, scoring rate within the "
                         "group's share of the median's bin (each group's bound is in 'bounds'); resamples are "
                         "multinomial draws over each fine group's (cell, bin) entries, a resampled entry carrying its "
                         f"mean weight, score and squared error (resampled Brier within 2/{self.bins}, ECE within "
                         f"1/{self.bins} of the row bootstrap's on the same draw)")}


def _stack(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray] | None:
    return {name: np.concatenate(values) for name, values in parts.items()} or None


def row_scores(*, y: np.ndarray, p: np.ndarray, scores: np.ndarray | None, weights: np.ndarray | None,
               fine_index: np.ndarray, n_fine: int, projections: list[tuple[np.ndarray, tuple[Any, ...]]],
               n_bins: int, n_boot: int, rows_bootstrap: bool, rng: np.random.Generator,
               progress: Progress | None) -> tuple[ScoreResults | None, np.ndarray | None]:
    """Exact score metrics from the rows, and (``rows_bootstrap``) the count tables of row resamples ``(B, G, 4)``.

    One stream of row multiplicities serves both, so the random draws do not depend on what is computed."""
    n_rows = y.size
    aggregators = [] if scores is None else [
        ScoreAggregator(y_true=y, y_score=scores, group_index=target[fine_index], n_groups=len(keys),
                        sample_weight=weights, n_bins=n_bins) for target, keys in projections]
    overall = None if scores is None else ScoreAggregator(
        y_true=y, y_score=scores, group_index=np.zeros(n_rows, np.int64), n_groups=1, sample_weight=weights,
        n_bins=n_bins)
    boot: list[dict[str, list[np.ndarray]]] = [{} for _ in aggregators]
    overall_boot: dict[str, list[np.ndarray]] = {}
    counts: list[np.ndarray] = []
    if n_boot > 0 and (rows_bootstrap or scores is not None):
        cell = confusion_cell(y, p)
        done = 0
        if progress:
            progress("bootstrap: rows", 0, n_boot)
        for mult in multiplicities(fine_index, n_boot=n_boot, rng=rng):
            if rows_bootstrap:
                counts.append(counts_from_rows(mult, group_index=fine_index, cell=cell, n_groups=n_fine,
                                               sample_weight=weights))
            for i, agg in enumerate(aggregators):
                for name, values in agg.evaluate(mult).items():
                    boot[i].setdefault(name, []).append(values)
            if overall is not None:
                for name, values in overall.evaluate(mult).items():
                    overall_boot.setdefault(name, []).append(values)
            done += mult.shape[0]
            if progress:
                progress("bootstrap: rows", done, n_boot)
    rows_counts = np.concatenate(counts, axis=0) if counts else None
    if overall is None:
        return None, rows_counts
    ones = np.ones((1, n_rows))

    def one(agg: ScoreAggregator, samples: dict[str, list[np.ndarray]]) -> SliceScores:
        return SliceScores(point={name: v[0] for name, v in agg.evaluate(ones).items()}, samples=_stack(samples),
                           calibration=agg.calibration_curve(), roc=agg.roc_curves())

    return ScoreResults(slices=[one(a, b) for a, b in zip(aggregators, boot)], overall=one(overall, overall_boot),
                        median=overall.median_score(), method="rows"), rows_counts


def histogram_scores(*, histogram: ScoreHistogram, projections: list[tuple[np.ndarray, tuple[Any, ...]]],
                     n_boot: int, rng: np.random.Generator, progress: Progress | None) -> ScoreResults:
    """Score metrics from a histogram over the fine groups (``projections`` map them to each slice's groups)."""
    n_fine = len(histogram.groups)
    one_hots = []
    for target, keys in [*projections, (np.zeros(n_fine, np.int64), ((),))]:
        one_hot = np.zeros((n_fine, len(keys)))
        keep = np.asarray(target) >= 0
        one_hot[np.flatnonzero(keep), np.asarray(target)[keep]] = 1.0
        one_hots.append(one_hot)
    entries = EntrySums(histogram)
    fine = entries.point()
    points = [fine.project(m) for m in one_hots]
    all_mass = (fine.pos + fine.neg).sum(axis=1)  # (1, H)
    fine_point = FineStats.of(fine, all_mass=all_mass)
    samples: list[dict[str, list[np.ndarray]]] = [{} for _ in one_hots]
    if n_boot > 0:
        done = 0
        if progress:
            progress("bootstrap: score histograms", 0, n_boot)
        for counts in resample_entries(histogram, n_boot=n_boot, rng=rng):
            drawn = entries.sums(counts)
            stats = FineStats.of(drawn, all_mass=(drawn.pos + drawn.neg).sum(axis=1))
            for i, one_hot in enumerate(one_hots):
                for name, v in stats.metrics(one_hot).items():
                    samples[i].setdefault(name, []).append(v)
            done += counts.shape[0]
            if progress:
                progress("bootstrap: score histograms", done, n_boot)

    def one(point: BinSums, one_hot: np.ndarray, drawn: dict[str, list[np.ndarray]]) -> SliceScores:
        return SliceScores(point={k: v[0] for k, v in fine_point.metrics(one_hot).items()},
                           samples=_stack(drawn), calibration=calibration_curve(point), roc=roc_curves(point),
                           bounds=error_bounds(point, all_mass=all_mass[0]))

    results = [one(p, m, s) for p, m, s in zip(points, one_hots, samples)]
    return ScoreResults(slices=results[:-1], overall=results[-1], median=median_score(all_mass[0]), method="histogram",
                        bins=histogram.bins)
