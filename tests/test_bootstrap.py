"""The stratified bootstrap: seeded, the count-table method equals the row method in distribution,
the weighted normal approximation tracks the exact row bootstrap, CIs cover, strata keep their size,
and score-metric CIs match a naive resampling loop with scikit-learn."""

from __future__ import annotations

import functools
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fairprompt.errors import FairpromptError
from fairprompt.metrics import AuditConfig, CountTable, audit
from fairprompt.metrics.bootstrap import MAX_N_BOOT, counts_from_rows, multiplicities, percentile_interval, resample_counts
from fairprompt.metrics.counts import confusion_cell, group_codes

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

RATES = ("selection_rate", "tpr", "fpr", "ppv", "accuracy")
DISPARITY_METRICS = ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference",
                     "fpr_difference", "accuracy_difference")


def make_rows(seed: int, n: int, *, shares=(0.5, 0.3, 0.2), weights: bool = False):
    rng = np.random.default_rng(seed)
    labels = np.array(["a", "b", "c"][: len(shares)])
    gi = rng.choice(len(shares), n, p=shares)
    base = np.array([0.35, 0.5, 0.45])[gi]
    y = (rng.random(n) < base).astype(int)
    score = np.clip(0.35 * y + rng.normal(0.35 + 0.05 * gi, 0.2), 0, 1)
    p = (score > 0.5).astype(int)
    w = rng.lognormal(0.0, 1.0, n) if weights else None
    return y, p, score, pd.Series(labels[gi], name="g"), w


def _ci_frame(result, slice_name="g") -> pd.DataFrame:
    table = result.slice(slice_name).groups_table
    return table[[c for c in table.columns if c.endswith(("_ci_low", "_ci_high"))]]


# ---------------------------------------------------------------------------------------------
# (a) seeded
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["counts", "rows"])
@pytest.mark.parametrize("weighted", [False, True])
def test_same_seed_same_cis_different_seed_different(method, weighted):
    y, p, s, g, w = make_rows(0, 800, weights=weighted)
    frame = pd.DataFrame({"g": g, "h": np.where(np.arange(800) % 3 == 0, "x", "y")})
    run = functools.partial(audit, y_true=y, y_pred=p, sensitive=frame, y_score=s, sample_weight=w, n_boot=200,
                            bootstrap=method)
    first, again, other = run(seed=7), run(seed=7), run(seed=8)
    for name in ("g", "h", "g × h"):
        pd.testing.assert_frame_equal(first.slice(name).groups_table, again.slice(name).groups_table)
        pd.testing.assert_frame_equal(first.slice(name).disparities, again.slice(name).disparities)
        pd.testing.assert_frame_equal(first.slice(name).compliance, again.slice(name).compliance)
        a, b = _ci_frame(first, name), _ci_frame(other, name)
        assert not np.allclose(a.to_numpy(float), b.to_numpy(float), equal_nan=True), f"{name}: seed had no effect"
    pd.testing.assert_frame_equal(first.overall, again.overall)
    assert not np.allclose(first.overall["ci_low"], other.overall["ci_low"], equal_nan=True)
    # point estimates never depend on the seed
    pd.testing.assert_series_equal(first.slice("g").groups_table["tpr"], other.slice("g").groups_table["tpr"])


# ---------------------------------------------------------------------------------------------
# (b) counts == rows in distribution, unweighted
# ---------------------------------------------------------------------------------------------


@functools.cache
def _counts_and_rows(weighted: bool):
    y, p, _, g, w = make_rows(1, 20_000, weights=weighted)
    kw = dict(y_true=y, y_pred=p, sensitive=g, sample_weight=w, n_boot=2000)
    return audit(**kw, bootstrap="counts", seed=11), audit(**kw, bootstrap="rows", seed=12)


def test_count_bootstrap_matches_row_bootstrap_unweighted():
    """Multinomial draws per group are the row bootstrap's cell counts: with 2000 resamples
    on 20k rows the percentile bounds agree to Monte Carlo error (< 0.005)."""
    counts, rows = _counts_and_rows(False)
    a, b = _ci_frame(counts), _ci_frame(rows)
    for rate in RATES:
        for side in ("_ci_low", "_ci_high"):
            diff = np.abs(a[rate + side] - b[rate + side]).max()
            assert diff < 0.005, f"{rate}{side}: counts vs rows differ by {diff:.4f}"
    da = counts.slice("g").disparities.set_index(["metric", "convention", "group"]).sort_index()
    db = rows.slice("g").disparities.set_index(["metric", "convention", "group"]).sort_index()
    for metric in DISPARITY_METRICS:
        for side in ("ci_low", "ci_high"):
            diff = np.nanmax(np.abs(da.loc[metric, side] - db.loc[metric, side]))
            assert diff < 0.005, f"{metric} {side}: counts vs rows differ by {diff:.4f}"
    oa, ob = counts.overall.set_index("metric"), rows.overall.set_index("metric")
    for metric in ("theil_index", "generalized_entropy_index", "accuracy"):
        for side in ("ci_low", "ci_high"):
            assert abs(oa.loc[metric, side] - ob.loc[metric, side]) < 0.005


def test_count_bootstrap_multinomial_moments():
    """Unweighted count resamples have the multinomial mean and variance of each cell."""
    y, p, _, g, _ = make_rows(2, 5000)
    index, keys = group_codes(g.to_frame())
    table = CountTable.from_codes(y_true=y, y_pred=p, group_index=index, groups=keys, columns=("g",))
    draws = resample_counts(table, n_boot=4000, rng=np.random.default_rng(0))
    n = table.n[:, None]
    share = table.k / n
    np.testing.assert_allclose(draws.mean(axis=0), table.k, rtol=0.02, atol=2)
    np.testing.assert_allclose(draws.var(axis=0), n * share * (1 - share), rtol=0.1)


# ---------------------------------------------------------------------------------------------
# (c) weighted: normal approximation vs the exact row bootstrap
# ---------------------------------------------------------------------------------------------


def test_weighted_count_bootstrap_matches_row_bootstrap():
    """The promise of fairprompt/metrics/bootstrap.py: with lognormal sample weights the normal
    approximation of weighted cell sums (bootstrap="counts") gives CIs within 15% of the exact
    row bootstrap's width (bootstrap="rows"), centred alike."""
    counts, rows = _counts_and_rows(True)
    a, b = counts.slice("g").groups_table, rows.slice("g").groups_table
    for rate in RATES:
        width_a = a[rate + "_ci_high"] - a[rate + "_ci_low"]
        width_b = b[rate + "_ci_high"] - b[rate + "_ci_low"]
        ratio = width_a / width_b
        assert ((ratio > 0.85) & (ratio < 1.15)).all(), f"{rate}: width ratios {ratio.round(3).tolist()}"
        centre = (a[rate + "_ci_high"] + a[rate + "_ci_low"] - b[rate + "_ci_high"] - b[rate + "_ci_low"]) / 2
        assert (np.abs(centre) < 0.1 * width_b).all(), f"{rate}: centres differ by {centre.round(4).tolist()}"
    da = counts.slice("g").disparities.set_index(["metric", "convention", "group"]).sort_index()
    db = rows.slice("g").disparities.set_index(["metric", "convention", "group"]).sort_index()
    for metric in DISPARITY_METRICS:
        ratio = (da.loc[metric, "ci_high"] - da.loc[metric, "ci_low"]) / (db.loc[metric, "ci_high"] - db.loc[metric, "ci_low"])
        assert ((ratio > 0.85) & (ratio < 1.15)).all(), f"{metric}: width ratios {ratio.round(3).tolist()}"


def test_weighted_count_resamples_mean_and_variance():
    """Weighted cell sums of count resamples: mean = observed sums; variance = that of the exact row bootstrap."""
    y, p, _, g, w = make_rows(3, 4000, weights=True)
    index, keys = group_codes(g.to_frame())
    table = CountTable.from_codes(y_true=y, y_pred=p, group_index=index, groups=keys, columns=("g",), sample_weight=w)
    approx = resample_counts(table, n_boot=3000, rng=np.random.default_rng(0))
    exact = np.concatenate([
        counts_from_rows(m, group_index=index, cell=confusion_cell(y, p), n_groups=len(keys), sample_weight=w)
        for m in multiplicities(index, n_boot=3000, rng=np.random.default_rng(1))
    ])
    np.testing.assert_allclose(approx.mean(axis=0), table.w, rtol=0.02)
    np.testing.assert_allclose(exact.mean(axis=0), table.w, rtol=0.02)
    np.testing.assert_allclose(approx.std(axis=0), exact.std(axis=0), rtol=0.1)


# ---------------------------------------------------------------------------------------------
# (d) coverage
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["counts", "rows"])
def test_selection_rate_ci_covers_the_population_rate(method):
    """95% percentile CIs of a group's selection rate contain the population rate in roughly 95% of samples."""
    true_rate = {"a": 0.3, "b": 0.55}
    rng = np.random.default_rng(2024 if method == "counts" else 2025)
    hits = {"a": 0, "b": 0}
    n_sims = 200
    for sim in range(n_sims):
        g = rng.choice(["a", "b"], 400, p=[0.6, 0.4])
        p = (rng.random(g.size) < np.where(g == "a", true_rate["a"], true_rate["b"])).astype(int)
        y = rng.integers(0, 2, g.size)
        result = audit(y_true=y, y_pred=p, sensitive=pd.Series(g, name="g"), n_boot=300, seed=sim, bootstrap=method)
        table = result.slice("g").groups_table
        for group, rate in true_rate.items():
            hits[group] += table.loc[group, "selection_rate_ci_low"] <= rate <= table.loc[group, "selection_rate_ci_high"]
    for group, count in hits.items():
        assert 0.90 <= count / n_sims <= 0.99, f"group {group}: coverage {count / n_sims:.3f}"


# ---------------------------------------------------------------------------------------------
# (e) stratification
# ---------------------------------------------------------------------------------------------


def _fine_table(weighted: bool):
    y, p, _, g, w = make_rows(4, 3000, weights=weighted)
    frame = pd.DataFrame({"g": g, "h": np.where(np.arange(3000) % 4 == 0, "x", "y")}).astype(object)
    frame.loc[::37, "h"] = None  # a missing value is a stratum of its own
    index, keys = group_codes(frame)
    table = CountTable.from_codes(y_true=y, y_pred=p, group_index=index, groups=keys, columns=("g", "h"), sample_weight=w)
    return y, p, w, index, keys, table


def test_count_resamples_keep_every_group_size():
    *_, table = _fine_table(False)
    assert any(None in key for key in table.groups)
    draws = resample_counts(table, n_boot=500, rng=np.random.default_rng(0))
    assert draws.shape == (500, len(table.groups), 4)
    assert (draws.sum(axis=2) == table.n[None, :]).all()
    # so each group's share of rows is the same in every resample: a zero-width interval
    shares = draws.sum(axis=2) / draws.sum(axis=(1, 2))[:, None]
    low, high = percentile_interval(shares, level=0.95)
    np.testing.assert_allclose(low, high, rtol=0, atol=1e-15)
    np.testing.assert_allclose(low, table.n / table.n.sum(), rtol=1e-12)


def _one_shot_counts(table: CountTable, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The count-table bootstrap drawn in one piece, as fairprompt drew it before it drew in chunks."""
    n = table.k.sum(axis=1)
    draws = rng.multinomial(n, table.k / np.maximum(n, 1)[:, None], size=(n_boot, len(n)))
    if not table.weighted:
        return draws.astype(np.float64)
    k = np.maximum(table.k, 1)
    mean = table.w / k
    var = np.maximum(table.w2 / k - mean * mean, 0.0)
    noise = rng.standard_normal(draws.shape)
    return np.maximum(draws * mean + np.sqrt(draws * var) * noise, 0.0)


@pytest.mark.parametrize("weighted", [False, True])
def test_count_resamples_drawn_in_chunks_are_bit_identical(weighted):
    """Chunks bound memory without changing a single draw: the seed gives the same resamples as one draw of all."""
    *_, table = _fine_table(weighted)
    expected = _one_shot_counts(table, n_boot=301, rng=np.random.default_rng(5))
    for chunk in (1, 7, 300, 301, None):
        got = resample_counts(table, n_boot=301, rng=np.random.default_rng(5), chunk=chunk)
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), chunk


def _extra_memory(table: CountTable, n_boot: int) -> int:
    """Peak bytes allocated by resample_counts beyond its result."""
    tracemalloc.start()
    try:
        result = resample_counts(table, n_boot=n_boot, rng=np.random.default_rng(0), chunk=500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - result.nbytes


def test_count_bootstrap_memory_beyond_its_result_does_not_grow_with_n_boot():
    *_, table = _fine_table(True)
    small, large = _extra_memory(table, 2_000), _extra_memory(table, 40_000)
    assert large < 2 * small + 200_000, (small, large)  # one-shot drawing needs ~4x the result more


def test_n_boot_is_capped():
    AuditConfig(n_boot=MAX_N_BOOT)
    with pytest.raises(FairpromptError, match=f"n_boot must be at most {MAX_N_BOOT:,}, got 10,000,000"):
        AuditConfig(n_boot=10_000_000)


def test_row_resamples_keep_every_stratum_size():
    y, p, w, index, keys, table = _fine_table(True)
    total = 0
    for mult in multiplicities(index, n_boot=300, rng=np.random.default_rng(0), chunk=64):
        total += mult.shape[0]
        per_group = np.stack([mult[:, index == g].sum(axis=1) for g in range(len(keys))], axis=1)
        assert (per_group == table.n[None, :]).all()
        counts = counts_from_rows(mult, group_index=index, cell=confusion_cell(y, p), n_groups=len(keys), sample_weight=None)
        assert (counts.sum(axis=2) == table.n[None, :]).all()
    assert total == 300


# ---------------------------------------------------------------------------------------------
# Score metrics: our row bootstrap vs a naive loop with scikit-learn
# ---------------------------------------------------------------------------------------------


def test_auc_ci_matches_naive_stratified_resampling_with_sklearn():
    y, p, s, g, _ = make_rows(5, 6000, shares=(0.6, 0.4))
    result = audit(y_true=y, y_pred=p, sensitive=g, y_score=s, n_boot=1000, seed=3)
    table = result.slice("g").groups_table
    rng = np.random.default_rng(99)
    groups = {label: np.flatnonzero(g.to_numpy() == label) for label in ("a", "b")}
    aucs = {label: [] for label in groups}
    for _ in range(200):
        for label, rows in groups.items():
            pick = rows[rng.integers(0, rows.size, rows.size)]
            aucs[label].append(roc_auc_score(y[pick], s[pick]))
    for label, values in aucs.items():
        np.testing.assert_allclose(table.loc[label, "auc"], roc_auc_score(y[groups[label]], s[groups[label]]), rtol=1e-12)
        low, high = np.quantile(values, [0.025, 0.975])
        assert abs(table.loc[label, "auc_ci_low"] - low) < 0.01, (label, table.loc[label, "auc_ci_low"], low)
        assert abs(table.loc[label, "auc_ci_high"] - high) < 0.01, (label, table.loc[label, "auc_ci_high"], high)
