"""Audits at any scale (the embedded engine): predictions read batch by batch into count tables and score histograms,
checked against the in-memory audit of the same rows, and every bad input of a chunked read (exit 2, one line,
nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli
from fairprompt.errors import FairpromptError
from fairprompt.metrics import audit
from fairprompt.metrics.audit import audit_tables
from fairprompt.metrics.counts import CountTable, group_codes
from fairprompt.metrics.histograms import ScoreHistogram, histogram_bins
from fairprompt.scale import Columns, scan_predictions
from fairprompt.scale import scan as scale_scan
from fairprompt.scale import sources as scale_sources

COLUMNS = Columns(label="y", prediction="pred", score="score", weight=None, sensitive=("sex", "race"))


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"sex": rng.choice(["f", "m"], n),
                          "race": rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.25, 0.15, 0.1]),
                          "y": rng.integers(0, 2, n)})
    frame["score"] = np.clip(rng.beta(2, 2, n) * 0.6 + frame["y"] * 0.3 + (frame["sex"] == "m") * 0.1, 0, 1)
    frame.loc[rng.random(n) < 0.02, "score"] = 0.5  # ties at one value, inside one bin
    frame["pred"] = (frame["score"] >= 0.5).astype(int)
    frame.loc[rng.random(n) < 0.01, "race"] = None
    return frame


def _exact(frame: pd.DataFrame, **kwargs):
    return audit(y_true=frame["y"], y_pred=frame["pred"], y_score=frame["score"], sensitive=frame[["sex", "race"]],
                 **kwargs)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return _frame(30_000)


@pytest.fixture(scope="module")
def parts(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rows as a directory of three Parquet files (one in a subfolder)."""
    folder = tmp_path_factory.mktemp("lake")
    (folder / "2026").mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(rows)), 3)):
        target = folder / ("2026" if i == 2 else ".") / f"part-{i}.parquet"
        rows.iloc[chunk].to_parquet(target, index=False)
    return folder


def test_histogram_metrics_within_their_bounds_and_brier_ece_exact(rows: pd.DataFrame, parts: Path) -> None:
    exact = _exact(rows, n_boot=0)
    scan = scan_predictions(parts, columns=COLUMNS, exact_rows=0)
    assert scan.kept is None and scan.histogram is not None and scan.histogram.bins == histogram_bins(10) >= 4096
    tables = audit_tables(table=scan.table, histogram=scan.histogram, n_boot=0)
    for one, other in zip(exact.slices, tables.slices):
        a, b = one.groups_table, other.groups_table
        assert list(a.index) == list(b.index)
        np.testing.assert_allclose(b["brier"], a["brier"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(b["ece"], a["ece"], rtol=0, atol=1e-12)
        assert (b["auc_bound"] > 0).all() and (b["scoring_rate_bound"] > 0).all()
        assert (np.abs(b["auc"] - a["auc"]) <= b["auc_bound"] + 1e-12).all()
        assert (np.abs(b["scoring_rate"] - a["scoring_rate"]) <= b["scoring_rate_bound"] + 1e-12).all()
        assert "auc_bound" not in a.columns
    assert abs(tables.median_score - exact.median_score) <= 1 / scan.histogram.bins
    record = tables.to_dict()
    assert record["score_histogram"]["bins"] == scan.histogram.bins and "exact" in record["score_histogram"]["note"]


def test_count_metrics_and_their_intervals_equal_the_in_memory_audit(rows: pd.DataFrame, parts: Path) -> None:
    exact = _exact(rows, n_boot=200, seed=4)
    scan = scan_predictions(str(parts / "**" / "*.parquet"), columns=COLUMNS, exact_rows=0)
    assert sum(scan.file_rows.values()) == len(rows) == scan.rows
    tables = audit_tables(table=scan.table, histogram=scan.histogram, n_boot=200, seed=4)
    assert scan.table.groups == exact.table.groups
    np.testing.assert_array_equal(scan.table.k, exact.table.k)
    for one, other in zip(exact.slices, tables.slices):
        for column in ("selection_rate", "selection_rate_ci_low", "selection_rate_ci_high", "tpr_ci_low", "fpr_ci_high"):
            np.testing.assert_allclose(other.groups_table[column], one.groups_table[column], rtol=0, atol=1e-12)
        pd.testing.assert_frame_equal(other.compliance[["impact_ratio", "impact_ratio_ci_low"]],
                                      one.compliance[["impact_ratio", "impact_ratio_ci_low"]], rtol=0, atol=1e-12)
        # score intervals: multinomial draws on histograms against the row bootstrap (another random stream)
        # (sampling noise of 200 resamples, plus the histogram's bound: ties at 0.5 sit in the median's bin)
        for metric, bound in (("auc", other.groups_table["auc_bound"]), ("brier", 2 / scan.histogram.bins),
                              ("scoring_rate", other.groups_table["scoring_rate_bound"])):
            for end in ("ci_low", "ci_high"):
                gap = np.abs(other.groups_table[f"{metric}_{end}"] - one.groups_table[f"{metric}_{end}"])
                width = one.groups_table[f"{metric}_ci_high"] - one.groups_table[f"{metric}_ci_low"]
                assert (gap <= 0.35 * width + bound).all(), (one.name, metric, end)
    assert tables.degenerate == exact.degenerate


def test_small_files_are_audited_from_their_rows(rows: pd.DataFrame, tmp_path: Path) -> None:
    small = rows.iloc[:3000]
    for name in ("p.csv", "p.csv.gz", "p.parquet"):
        path = tmp_path / name
        small.to_parquet(path, index=False) if name.endswith("parquet") else small.to_csv(path, index=False)
        scan = scan_predictions(path, columns=COLUMNS)
        assert scan.kept is not None and scan.histogram is None
        got = audit(**scan.kept, n_boot=50, seed=1)
        want = _exact(small.reset_index(drop=True), n_boot=50, seed=1)
        for one, other in zip(want.slices, got.slices):
            pd.testing.assert_frame_equal(other.groups_table, one.groups_table)


def test_histograms_merge_exactly(rows: pd.DataFrame) -> None:
    def histogram(frame: pd.DataFrame) -> ScoreHistogram:
        index, keys = group_codes(frame[["sex", "race"]])
        return ScoreHistogram.from_codes(y_true=frame["y"].to_numpy(), y_pred=frame["pred"].to_numpy(),
                                         y_score=frame["score"].to_numpy(), group_index=index, groups=keys,
                                         columns=("sex", "race"))

    whole = histogram(rows)
    merged = histogram(rows.iloc[:10_000]).merge(histogram(rows.iloc[10_000:]))
    order = [merged.groups.index(g) for g in whole.groups]
    mapping = np.empty(len(order), np.int64)
    mapping[np.asarray(order)] = np.arange(len(order))
    merged = merged.regrouped(groups=whole.groups, mapping=mapping)
    np.testing.assert_array_equal(merged.index, whole.index)
    np.testing.assert_array_equal(merged.k, whole.k)
    for name in ("w", "ws", "se"):
        np.testing.assert_allclose(getattr(merged, name), getattr(whole, name), rtol=1e-12, atol=1e-12)
    assert int(whole.k.sum()) == len(rows)


def test_weighted_rows_and_logit_scores(rows: pd.DataFrame, tmp_path: Path) -> None:
    frame = rows.assign(w=np.random.default_rng(2).uniform(0.5, 2.0, len(rows)),
                        logit=np.log(rows["score"].clip(1e-6, 1 - 1e-6) / (1 - rows["score"].clip(1e-6, 1 - 1e-6))))
    path = tmp_path / "w.parquet"
    frame.to_parquet(path, index=False)
    weighted = Columns(label="y", prediction="pred", score="score", weight="w", sensitive=("sex", "race"))
    scan = scan_predictions(path, columns=weighted, exact_rows=0)
    table = CountTable.from_arrays(y_true=frame["y"], y_pred=frame["pred"], sensitive=frame[["sex", "race"]],
                                   sample_weight=frame["w"])
    np.testing.assert_allclose(scan.table.w, table.w, rtol=1e-12)
    assert audit_tables(table=scan.table, histogram=scan.histogram, weighted=True, n_boot=0).weighted
    with pytest.raises(FairpromptError, match=r"is not a probability in \[0, 1\].*--score-scale logit"):
        scan_predictions(path, columns=Columns(label="y", prediction="pred", score="logit", sensitive=("sex",)),
                         exact_rows=0)
    logit = scan_predictions(path, columns=Columns(label="y", prediction="pred", score="logit", sensitive=("sex",),
                                                   score_scale="logit"), exact_rows=0)
    assert logit.histogram is not None and int(logit.histogram.k.sum()) == len(frame)


def test_batches_are_read_one_at_a_time(rows: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale_sources, "BATCH_ROWS", 4096)
    monkeypatch.setattr(scale_sources, "CSV_CHUNK_ROWS", 4096)
    rows.to_parquet(tmp_path / "p.parquet", index=False, row_group_size=5000)
    rows.to_csv(tmp_path / "p.csv", index=False)
    one = scan_predictions(tmp_path / "p.parquet", columns=COLUMNS, exact_rows=0)
    monkeypatch.setattr(scale_scan, "DENSE_ENTRIES", 0)  # sparse histogram parts, merged as they grow
    other = scan_predictions(tmp_path / "p.csv", columns=COLUMNS, exact_rows=0)
    exact = CountTable.from_arrays(y_true=rows["y"], y_pred=rows["pred"], sensitive=rows[["sex", "race"]])
    for scan in (one, other):
        assert scan.table.groups == exact.groups
        np.testing.assert_array_equal(scan.table.k, exact.k)
        np.testing.assert_array_equal(scan.histogram.index, one.histogram.index)
        np.testing.assert_array_equal(scan.histogram.k, one.histogram.k)
        np.testing.assert_allclose(scan.histogram.se, one.histogram.se, rtol=1e-9)


# --------------------------------------------------------------------------------------------- bad input
def _cli(source: Path | str, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli("-q", "audit", "--predictions", str(source), "--label", "y", "--prediction", "pred", "--score", "score",
                   "--sensitive", "sex,race", "--n-boot", "20", "--exact-rows", "0", "--out", str(out), *extra)


def test_cli_audits_a_directory_of_parquet_files(parts: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, _, err = _cli(parts, out)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["audit"]["n_rows"] == 30_000 and results["audit"]["score_histogram"]["bins"] >= 4096
    assert [i["path"] for i in results["inputs"]] == sorted(str(p) for p in parts.rglob("*.parquet"))  # path order
    assert all(len(i["sha256"]) == 64 for i in results["inputs"]) and sum(i["rows"] for i in results["inputs"]) == 30_000
    assert "auc_bound" in (out / "metrics_by_group.csv").read_text().splitlines()[0]


def _lake(tmp_path: Path, frame: pd.DataFrame, *, last: pd.DataFrame) -> Path:
    folder = tmp_path / "lake"
    folder.mkdir()
    frame.iloc[:500].to_parquet(folder / "a.parquet", index=False)
    last.to_parquet(folder / "b.parquet", index=False)
    return folder


@pytest.mark.parametrize(("change", "fragments"), [
    (lambda f: f.assign(y=f["y"].astype(float)), ["b.parquet", "stores column 'y' as double", "same schema"]),
    (lambda f: f.drop(columns=["race"]), ["b.parquet", "has no column 'race'"]),
    (lambda f: f.assign(y=np.where(np.arange(len(f)) == 300, 2, f["y"])), ["b.parquet", "rows from 1", "not binary"]),
    (lambda f: f.assign(score=np.where(np.arange(len(f)) == 7, np.inf, f["score"])), ["b.parquet", "infinite"]),
])
def test_bad_input_in_chunked_reads(rows: pd.DataFrame, tmp_path: Path, change, fragments: list[str]) -> None:
    folder = _lake(tmp_path, rows, last=change(rows.iloc[500:1000].reset_index(drop=True)))
    out = tmp_path / "out"
    code, _, err = _cli(folder, out)
    assert_user_error(code, err, *fragments)
    assert not out.exists()


def test_empty_glob_directory_and_mixed_kinds(rows: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, err = _cli(str(tmp_path / "nothing-*.parquet"), out)
    assert_user_error(code, err, "nothing-*.parquet", "matches no file")
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(tmp_path / "empty", out)
    assert_user_error(code, err, "empty", "holds no .parquet or .pq files")
    rows.iloc[:10].to_csv(tmp_path / "x-1.csv", index=False)
    rows.iloc[:10].to_parquet(tmp_path / "x-2.parquet", index=False)
    code, _, err = _cli(str(tmp_path / "x-*"), out)
    assert_user_error(code, err, "mixes CSV and Parquet files")
    assert not out.exists()


def test_out_of_range_scores_and_row_bootstrap_need_small_files(rows: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    rows.assign(score=rows["score"] * 4 - 2).to_parquet(path, index=False)
    out = tmp_path / "out"
    code, _, err = _cli(path, out)
    assert_user_error(code, err, "p.parquet", "is not a probability in [0, 1]", "--score-scale logit")
    code, _, err = _cli(path, out, "--exact-rows", "100000")  # small enough: exact, Brier undefined as before
    assert code == 0, err
