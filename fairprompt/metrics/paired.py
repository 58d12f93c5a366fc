"""Paired bootstrap of several prediction arrays on the same rows: gaps and accuracy, and their changes.

Every method is evaluated on the same resampled rows (one draw of row multiplicities, shared), so the CI of a
difference between two methods is the percentile interval of the per-resample differences.  Rows that are not
independent (augmented or counterfactual copies of one source item) are resampled together: ``clusters`` names
each row's source, and a resample draws sources with replacement, every row of a drawn source with it.  Gaps come from
per-group confusion counts (:func:`fairprompt.metrics.point.group_counts`), as everywhere in the engine; a
resample in which a gap is undefined (NaN) is left out of its interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fairprompt.metrics.point import disparity, group_codes, group_counts

DEFAULT_GAPS: dict[str, str] = {"dp": "demographic_parity_difference", "eo": "equalized_odds_difference"}


def resample_rows(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """Row multiplicities ``(n_boot, n)`` of plain (unstratified) bootstrap resamples, seeded."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(float)


def resample_clusters(clusters: Any, *, n_boot: int, seed: int) -> np.ndarray:
    """Row multiplicities ``(n_boot, n)`` of a cluster bootstrap, seeded: each resample draws as many clusters as
    there are, with replacement, and a row counts as often as its cluster was drawn.  With one row per cluster (in
    row order) it equals :func:`resample_rows` with the same seed."""
    _, codes = np.unique(np.asarray(clusters).reshape(-1), return_inverse=True)
    k = int(codes.max()) + 1 if codes.size else 0
    rng = np.random.default_rng(seed)
    drawn = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n_boot)]).astype(float)
    return drawn[:, codes]


def _interval(values: np.ndarray, level: float) -> list[float]:
    tail = 100.0 * (1.0 - level) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100.0 - tail))]


def paired_bootstrap(*, y_true: Any, groups: Any, predictions: Mapping[str, Any], base: str,
                     gaps: Mapping[str, str] = DEFAULT_GAPS, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95, clusters: Any = None) -> dict[str, dict[str, Any]]:
    """Per method (``predictions``: name -> 0/1 predictions of the same rows): accuracy and each gap of ``gaps``
    (output key -> between-groups disparity name, e.g. ``{"dp": "demographic_parity_difference"}``) with
    bootstrap CIs, and their change against method ``base`` on the same resamples: ``accuracy_change`` and
    ``KEY_change`` (differences) and ``KEY_relative_change`` (``gap / base gap - 1``; None where the base gap is
    0).  ``clusters`` (one source id per row) makes it a cluster bootstrap (:func:`resample_clusters`)."""
    if base not in predictions:
        raise ValueError(f"base {base!r} is not one of the predictions ({', '.join(predictions)})")
    y = np.asarray(y_true).reshape(-1)
    codes, names = group_codes(groups)
    if clusters is None:
        multiplicity = resample_rows(y.size, n_boot=n_boot, seed=seed)
    else:
        if np.asarray(clusters).reshape(-1).size != y.size:
            raise ValueError(f"clusters has {np.asarray(clusters).size} entries for {y.size} rows")
        multiplicity = resample_clusters(clusters, n_boot=n_boot, seed=seed)
    point: dict[str, dict[str, float]] = {}
    boot: dict[str, dict[str, np.ndarray]] = {}
    for method, predicted in predictions.items():
        p = np.asarray(predicted).reshape(-1)
        counts = group_counts(y_true=y, y_pred=p, codes=codes, n_groups=len(names))
        resampled = group_counts(y_true=y, y_pred=p, codes=codes, n_groups=len(names), multiplicity=multiplicity)
        point[method] = {"accuracy": float((counts[:, 0].sum() + counts[:, 2].sum()) / counts.sum())}
        boot[method] = {"accuracy": (resampled[..., 0].sum(axis=1) + resampled[..., 2].sum(axis=1))
                        / resampled.sum(axis=(1, 2))}
        for key, name in gaps.items():
            point[method][key] = float(disparity(counts, name))
            boot[method][key] = disparity(resampled, name)
    table: dict[str, dict[str, Any]] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for method in predictions:
            b, b0, p, p0 = boot[method], boot[base], point[method], point[base]
            row: dict[str, Any] = {"accuracy": p["accuracy"], "accuracy_ci": _interval(b["accuracy"], level),
                                   "accuracy_change": p["accuracy"] - p0["accuracy"],
                                   "accuracy_change_ci": _interval(b["accuracy"] - b0["accuracy"], level)}
            for key in gaps:
                row[key] = p[key]
                row[f"{key}_ci"] = _interval(b[key], level)
                row[f"{key}_change"] = p[key] - p0[key]
                row[f"{key}_change_ci"] = _interval(b[key] - b0[key], level)
                row[f"{key}_relative_change"] = p[key] / p0[key] - 1 if p0[key] else None
                row[f"{key}_relative_change_ci"] = _interval(b[key] / b0[key] - 1, level)
            table[method] = row
    return table


def paired_accuracy_difference(*, y_true: Any, first: Any, second: Any, n_boot: int = 1000, seed: int = 0,
                               level: float = 0.95) -> tuple[float, float | None, float | None]:
    """Accuracy of ``first`` minus accuracy of ``second`` on the same rows, with its paired-bootstrap interval.

    Each row contributes ``d = correct(first) - correct(second)`` in {-1, 0, 1}; a row bootstrap of the mean of
    ``d`` is a multinomial draw of the three counts, so it is drawn exactly that way (no row arrays, any size).
    Returns ``(difference, low, high)``; the bounds are None with ``n_boot = 0``.
    """
    y = np.asarray(y_true).reshape(-1)
    d = (np.asarray(first).reshape(-1) == y).astype(np.int64) - (np.asarray(second).reshape(-1) == y).astype(np.int64)
    if d.size == 0:
        raise ValueError("no rows to compare")
    counts = np.array([(d == -1).sum(), (d == 0).sum(), (d == 1).sum()])
    point = float(d.mean())
    if n_boot <= 0:
        return point, None, None
    draws = np.random.default_rng(seed).multinomial(d.size, counts / d.size, size=n_boot)
    low, high = _interval((draws[:, 2] - draws[:, 0]) / d.size, level)
    return point, low, high


__all__ = ["DEFAULT_GAPS", "paired_accuracy_difference", "paired_bootstrap", "resample_clusters", "resample_rows"]
