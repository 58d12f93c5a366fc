"""Count tables: chunked tables merge exactly into the one-shot table, and audits follow;
missing sensitive values, undefined rates and small groups are handled, never raised."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairprompt.metrics import DISPARITIES, CountTable, audit, group_rates, merge_all
from fairprompt.metrics.counts import confusion_cell
from fairprompt.metrics.inequality import between_group_entropy_index, generalized_entropy_index

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def make_rows(seed: int, *, n: int = 3000, weights: str = "none", missing: float = 0.05):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n, p=[0.45, 0.55])
    race = rng.choice(["asian", "black", "other", "white"], n, p=[0.1, 0.2, 0.1, 0.6]).astype(object)
    race[rng.random(n) < missing] = None
    age = rng.choice([7, 10, 25], n)  # numeric: sorted numerically by factorize, as strings elsewhere
    y = (rng.random(n) < 0.4).astype(int)
    p = np.where(rng.random(n) < 0.75, y, 1 - y)
    w = {"none": None, "int": rng.integers(1, 5, n).astype(float), "float": rng.lognormal(0, 0.8, n)}[weights]
    frame = pd.DataFrame({"sex": sex, "race": race, "age": age})
    return y, p, frame, w


def chunk_bounds(rng: np.random.Generator, n: int, k: int) -> list[tuple[int, int]]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=k - 1, replace=False))
    edges = np.r_[0, cuts, n]
    return list(zip(edges[:-1], edges[1:]))


def as_dict(table: CountTable) -> dict:
    return {g: (table.k[i], table.w[i], table.w2[i]) for i, g in enumerate(table.groups)}


def assert_tables_equal(merged: CountTable, oneshot: CountTable, *, exact: bool) -> None:
    assert merged.columns == oneshot.columns
    a, b = as_dict(merged), as_dict(oneshot)
    assert set(a) == set(b), f"groups differ: {set(a) ^ set(b)}"
    for key in b:
        np.testing.assert_array_equal(a[key][0], b[key][0], err_msg=f"k of {key}")
        for part, name in ((1, "w"), (2, "w2")):
            if exact:
                np.testing.assert_array_equal(a[key][part], b[key][part], err_msg=f"{name} of {key}")
            else:
                np.testing.assert_allclose(a[key][part], b[key][part], rtol=1e-12, atol=0, err_msg=f"{name} of {key}")


def build_chunks(seed: int, weights: str, n_chunks: int, columns: list[str]):
    y, p, frame, w = make_rows(seed, weights=weights)
    rng = np.random.default_rng(seed + 1000)
    order = rng.permutation(len(y))  # random rows per chunk
    tables = []
    for lo, hi in chunk_bounds(rng, len(y), n_chunks):
        rows = order[lo:hi]
        tables.append(CountTable.from_arrays(
            y_true=y[rows], y_pred=p[rows], sensitive=frame.loc[rows, columns].reset_index(drop=True),
            sample_weight=None if w is None else w[rows],
        ))
    oneshot = CountTable.from_arrays(y_true=y, y_pred=p, sensitive=frame[columns], sample_weight=w)
    return (y, p, frame, w), tables, oneshot


@pytest.mark.parametrize("n_chunks", [2, 5, 17])
@pytest.mark.parametrize("weights", ["none", "int", "float"])
@pytest.mark.parametrize("seed", range(5))
def test_merged_chunks_equal_one_shot(seed, weights, n_chunks):
    _, tables, oneshot = build_chunks(seed, weights, n_chunks, ["sex", "race", "age"])
    merged = merge_all(tables)
    assert_tables_equal(merged, oneshot, exact=weights != "float")
    # order of merging does not matter
    shuffled = [tables[i] for i in np.random.default_rng(seed).permutation(len(tables))]
    assert_tables_equal(merge_all(shuffled), oneshot, exact=weights != "float")
    assert merged.n.sum() == oneshot.n.sum() == 3000


def test_merge_of_chunk_lacking_groups():
    """A chunk in which some groups (and the missing value) never occur still merges exactly."""
    y, p, frame, _ = make_rows(0, n=400)
    columns = ["sex", "race"]
    first = frame["race"].isin(["white"]).to_numpy()
    tables = [CountTable.from_arrays(y_true=y[m], y_pred=p[m], sensitive=frame.loc[m, columns].reset_index(drop=True))
              for m in (first, ~first)]
    assert len(tables[0].groups) == 2
    oneshot = CountTable.from_arrays(y_true=y, y_pred=p, sensitive=frame[columns])
    assert_tables_equal(merge_all(tables), oneshot, exact=True)


def test_merge_rejects_other_columns_and_empty_list():
    y, p, frame, _ = make_rows(0, n=200)
    a = CountTable.from_arrays(y_true=y, y_pred=p, sensitive=frame[["sex"]])
    b = CountTable.from_arrays(y_true=y, y_pred=p, sensitive=frame[["race"]])
    with pytest.raises(ValueError):
        a.merge(b)
    with pytest.raises(ValueError):
        merge_all([])


def test_confusion_cells_and_counts():
    y = np.array([1, 0, 0, 1, 1])
    p = np.array([1, 1, 0, 0, 1])
    assert confusion_cell(y, p).tolist() == [0, 1, 2, 3, 0]  # tp, fp, tn, fn, tp
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    table = CountTable.from_arrays(y_true=y, y_pred=p, sensitive=pd.DataFrame({"g": ["a"] * 5}), sample_weight=w)
    assert table.k.tolist() == [[2, 1, 1, 1]]
    assert table.w.tolist() == [[6.0, 2.0, 3.0, 4.0]]
    assert table.w2.tolist() == [[26.0, 4.0, 9.0, 16.0]]
    assert table.weighted


def _reference_index(sl) -> int:
    return sl.groups.index(sl.reference)


@pytest.mark.parametrize("weights", ["none", "int", "float"])
@pytest.mark.parametrize("seed", range(3))
def test_audit_from_merged_table_matches_one_shot_audit(seed, weights):
    """Rates, disparities (both conventions) and entropy indices from the merged chunk tables
    equal those of a one-shot audit of all rows, for each column and the intersection."""
    (y, p, frame, w), tables, _ = build_chunks(seed, weights, 7, ["sex", "race"])
    merged = merge_all(tables)
    result = audit(y_true=y, y_pred=p, sensitive=frame[["sex", "race"]], sample_weight=w, n_boot=0)
    exact = weights != "float"

    def check(ours, theirs, what):
        if exact:
            np.testing.assert_array_equal(ours, theirs, err_msg=what)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=what)

    for sl in result.slices:
        table, excluded = merged.marginal(sl.columns)
        assert table.groups == sl.keys
        assert int(excluded.k.sum()) == sl.excluded_rows
        rates = group_rates(table.w)
        for name, values in rates.items():
            check(values, sl.groups_table[name].to_numpy(float), f"{sl.name} {name}")
        check(table.n, sl.groups_table["n"].to_numpy(), f"{sl.name} n")
        ref = _reference_index(sl)
        for d in DISPARITIES:
            if d.between_groups is not None:
                check(np.atleast_1d(d.between_groups(rates)),
                      sl.disparity(d.name, convention="between_groups")["value"].to_numpy(float), f"{sl.name} {d.name}")
            if d.to_reference is not None:
                values = np.delete(d.to_reference(rates, ref), ref)
                check(values, sl.disparity(d.name, convention="to_reference")["value"].to_numpy(float),
                      f"{sl.name} {d.name} to reference")
        for name, alpha in (("between_group_theil_index", 1.0), ("between_group_generalized_entropy_index", 2.0)):
            np.testing.assert_allclose(between_group_entropy_index(table.w, alpha=alpha),
                                       sl.disparity(name)["value"].iloc[0], rtol=1e-12, atol=1e-14)  # tiny, cancels
    overall = result.overall.set_index("metric")["value"]
    np.testing.assert_allclose(generalized_entropy_index(merged.w, alpha=1.0), overall["theil_index"], rtol=1e-12)
    np.testing.assert_allclose(generalized_entropy_index(merged.w, alpha=2.0), overall["generalized_entropy_index"], rtol=1e-12)
    np.testing.assert_allclose(group_rates(merged.w.sum(axis=0, keepdims=True))["accuracy"][0], overall["accuracy"], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Missing sensitive values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_missing_race_counts_for_sex_and_is_excluded_from_race_and_intersection(weighted):
    y, p, frame, w = make_rows(4, n=1000, weights="float" if weighted else "none", missing=0.1)
    result = audit(y_true=y, y_pred=p, sensitive=frame[["sex", "race"]], sample_weight=w, n_boot=50)
    missing = frame["race"].isna().to_numpy()
    n_missing = int(missing.sum())
    assert n_missing > 0
    weight = np.ones(len(y)) if w is None else w

    sex = result.slice("sex")
    assert sex.excluded_rows == 0 and sex.excluded_weight == 0.0
    assert sex.groups_table["n"].sum() == len(y)
    for label in ("female", "male"):  # the sex groups are computed on all their rows, missing race included
        rows = frame["sex"].to_numpy() == label
        np.testing.assert_allclose(sex.groups_table.loc[label, "weight"], weight[rows].sum(), rtol=1e-12)
        selected = np.average(p[rows], weights=weight[rows])
        np.testing.assert_allclose(sex.groups_table.loc[label, "selection_rate"], selected, rtol=1e-12)

    for name in ("race", "sex × race"):
        sl = result.slice(name)
        assert sl.excluded_rows == n_missing
        np.testing.assert_allclose(sl.excluded_weight, weight[missing].sum(), rtol=1e-12)
        assert sl.groups_table["n"].sum() == len(y) - n_missing
        assert not any("<missing>" in g for g in sl.groups)
    assert set(result.slice("race").groups) == {"asian", "black", "other", "white"}
    # Overall metrics use every row.
    np.testing.assert_allclose(result.overall.set_index("metric").loc["selection_rate", "value"],
                               np.average(p, weights=weight), rtol=1e-12)


def test_missing_values_as_nan_and_none_are_the_same():
    y, p, frame, _ = make_rows(5, n=500, missing=0.1)
    with_nan = frame.assign(race=frame["race"].where(frame["race"].notna(), np.nan))
    a = audit(y_true=y, y_pred=p, sensitive=frame[["sex", "race"]], n_boot=0)
    b = audit(y_true=y, y_pred=p, sensitive=with_nan[["sex", "race"]], n_boot=0)
    for name in ("sex", "race", "sex × race"):
        pd.testing.assert_frame_equal(a.slice(name).groups_table, b.slice(name).groups_table)
        assert a.slice(name).excluded_rows == b.slice(name).excluded_rows


# ---------------------------------------------------------------------------------------------
# Undefined values and small groups
# ---------------------------------------------------------------------------------------------


def _undefined(sl) -> dict[tuple[str, str], str]:
    return {(u["group"], u["metric"]): u["reason"] for u in sl.undefined}


@pytest.mark.parametrize("bootstrap", ["counts", "rows"])
def test_group_without_positives_gives_nan_with_reason(bootstrap):
    rng = np.random.default_rng(0)
    n = 600
    g = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 2, n)
    p = rng.integers(0, 2, n)
    y[g == "c"] = 0  # c: no positives
    p[g == "b"] = 0  # b: no predicted positives
    s = rng.random(n)
    result = audit(y_true=y, y_pred=p, sensitive=pd.Series(g, name="g"), y_score=s, n_boot=100, bootstrap=bootstrap,
                   sample_weight=rng.lognormal(size=n))
    sl = result.slice("g")
    table = sl.groups_table
    undefined = _undefined(sl)
    for metric in ("tpr", "fnr", "balanced_accuracy", "auc"):
        assert np.isnan(table.loc["c", metric]), metric
        assert undefined[("c", metric)]
    assert undefined[("c", "tpr")] == "no rows with a positive true label"
    for metric in ("ppv", "fdr"):
        assert np.isnan(table.loc["b", metric])
        assert undefined[("b", metric)] == "no rows predicted positive"
    assert not np.isnan(table.loc["a", ["tpr", "fpr", "ppv", "auc"]].to_numpy(float)).any()
    assert not any(group == "a" for group, _ in undefined)
    # Defined rates of the same group are still computed, with CIs.
    assert np.isfinite(table.loc["c", ["fpr", "accuracy", "selection_rate", "fpr_ci_low", "fpr_ci_high"]].to_numpy(float)).all()
    # Gaps skip the undefined group; to_reference rows for it are NaN.
    eop = sl.disparity("equal_opportunity_difference")["value"].iloc[0]
    np.testing.assert_allclose(eop, abs(table.loc["a", "tpr"] - table.loc["b", "tpr"]), rtol=1e-12)
    rows = sl.disparity("equal_opportunity_difference", convention="to_reference")
    if sl.reference != "c":
        assert np.isnan(rows.loc[rows["group"] == "c", "value"].iloc[0])
    assert result.to_dict()  # serializable, NaN -> None, no exception


def test_all_groups_undefined_gives_nan_gap_not_error():
    y = np.zeros(40, dtype=int)
    p = np.tile([0, 1], 20)
    g = np.repeat(["a", "b"], 20)
    result = audit(y_true=y, y_pred=p, sensitive=pd.Series(g, name="g"), n_boot=20)
    sl = result.slice("g")
    assert sl.groups_table["tpr"].isna().all()
    assert np.isnan(sl.disparity("equal_opportunity_difference")["value"].iloc[0])
    assert np.isnan(sl.disparity("equalized_odds_difference")["value"].iloc[0])
    assert np.isfinite(sl.disparity("fpr_difference")["value"].iloc[0])


def test_small_groups_are_flagged_not_dropped():
    rng = np.random.default_rng(1)
    g = np.array(["big"] * 200 + ["tiny"] * 12 + ["mid"] * 30)
    y = rng.integers(0, 2, g.size)
    p = rng.integers(0, 2, g.size)
    result = audit(y_true=y, y_pred=p, sensitive=pd.Series(g, name="g"), n_boot=0, min_group_size=30)
    table = result.slice("g").groups_table
    assert set(table.index) == {"big", "tiny", "mid"}
    assert table.loc["tiny", "small_group"] and not table.loc["mid", "small_group"] and not table.loc["big", "small_group"]
    assert table.loc["tiny", "n"] == 12
    assert np.isfinite(table.loc["tiny", "selection_rate"])
    result = audit(y_true=y, y_pred=p, sensitive=pd.Series(g, name="g"), n_boot=0, min_group_size=5)
    assert not result.slice("g").groups_table["small_group"].any()
