"""Stratified bootstrap, vectorized: resample count tables or draw row multiplicities in batches.

Both methods are stratified by the finest group (the intersection of all
sensitive columns, a missing value being a group of its own): every resample
keeps each group's row count fixed and redraws its rows with replacement.
fairlearn's ``MetricFrame`` bootstrap is not stratified, so its group sizes vary
between resamples; ours do not, which makes shares constant across resamples.

``counts`` (the default): resampling ``n_g`` rows of group ``g`` with replacement
leaves its confusion-cell counts multinomial with the group's cell shares, so one
multinomial draw per group and resample replaces the rows and the cost does not
grow with the number of rows.  Unweighted, this is exactly the row bootstrap.
With sample weights, the weight sum of ``K`` rows drawn from a cell is
approximated by a normal with mean ``K * mean`` and variance ``K * var`` of that
cell's weights (clipped at 0); ``tests/test_bootstrap.py`` checks it against
the row bootstrap.

``rows``: batched draws of row multiplicities ``(B, N)``, needed for score-based
metrics (AUC, scoring rate) and available as the exact method for weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from fairprompt.metrics.counts import CountTable

MAX_N_BOOT = 100_000
"""The most resamples an audit draws (specs and the CLI refuse more): time and the resampled statistics
grow with ``n_boot``; 1,000 to 10,000 give stable 95% intervals."""

CHUNK_CELLS = 1_000_000
"""Cells (resamples x groups x 4) drawn at a time by :func:`resample_counts` (8 MB per temporary array),
whatever ``n_boot`` is."""


def resample_counts(table: CountTable, *, n_boot: int, rng: np.random.Generator, chunk: int | None = None) -> np.ndarray:
    """Weighted cell counts of ``n_boot`` stratified resamples, shape ``(n_boot, G, 4)``.

    Resamples are drawn ``chunk`` at a time (default: :data:`CHUNK_CELLS` cells) into the one output array, so
    memory beyond the result does not grow with ``n_boot``.  The random stream is consumed exactly as by one
    draw of every resample (every multinomial first, then, when weighted, every normal), so the result does not
    depend on ``chunk``.
    """
    n = table.k.sum(axis=1)
    shares = table.k / np.maximum(n, 1)[:, None]
    n_groups = len(n)
    if chunk is None:
        chunk = max(1, CHUNK_CELLS // max(4 * n_groups, 1))
    steps = [slice(start, min(start + chunk, n_boot)) for start in range(0, n_boot, chunk)]
    out = np.empty((n_boot, n_groups, 4), dtype=np.float64)
    for step in steps:  # counts are exact in float64
        out[step] = rng.multinomial(n, shares, size=(step.stop - step.start, n_groups))
    if not table.weighted:
        return out
    k = np.maximum(table.k, 1)
    mean = table.w / k
    var = np.maximum(table.w2 / k - mean * mean, 0.0)
    for step in steps:
        draws = out[step]
        noise = rng.standard_normal(draws.shape)
        out[step] = np.maximum(draws * mean + np.sqrt(draws * var) * noise, 0.0)
    return out


def multiplicities(
    strata: np.ndarray, *, n_boot: int, rng: np.random.Generator, chunk: int | None = None
) -> Iterator[np.ndarray]:
    """Yield row multiplicities of stratified resamples in chunks of shape ``(b, N)``.

    ``strata`` gives each row's stratum; each resample draws every stratum's rows
    with replacement, keeping its size.  Chunks bound memory to about 64 MB.
    """
    strata = np.asarray(strata)
    n_rows = strata.size
    order = np.argsort(strata, kind="stable")
    bounds = np.flatnonzero(np.diff(strata[order])) + 1
    starts = np.concatenate([[0], bounds])
    sizes = np.diff(np.concatenate([starts, [n_rows]]))
    if chunk is None:
        chunk = max(1, min(n_boot, int(8_000_000 // max(n_rows, 1))))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        picks = np.empty((b, n_rows), dtype=np.int64)
        for start, size in zip(starts, sizes):
            picks[:, start : start + size] = order[start + rng.integers(0, size, size=(b, size))]
        flat = picks + (np.arange(b, dtype=np.int64) * n_rows)[:, None]
        yield np.bincount(flat.ravel(), minlength=b * n_rows).reshape(b, n_rows).astype(np.float64)
        done += b


def aggregate(mult: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """``mult @ matrix`` for row multiplicities ``(b, N)`` and a sparse ``(N, K)`` aggregation matrix."""
    return np.asarray((matrix.T @ mult.T).T)


def counts_from_rows(
    mult: np.ndarray, *, group_index: np.ndarray, cell: np.ndarray, n_groups: int, sample_weight: np.ndarray | None
) -> np.ndarray:
    """Weighted cell counts ``(b, G, 4)`` of row-multiplicity resamples."""
    n_rows = group_index.size
    weights = np.ones(n_rows) if sample_weight is None else np.asarray(sample_weight, float)
    matrix = sp.csr_matrix((weights, (np.arange(n_rows), group_index * 4 + cell)), shape=(n_rows, n_groups * 4))
    return aggregate(mult, matrix).reshape(mult.shape[0], n_groups, 4)


def percentile_interval(samples: np.ndarray, *, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the first axis, ignoring NaN resamples."""
    tail = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        low, high = np.nanquantile(samples, [tail, 1.0 - tail], axis=0)
    return low, high
