"""The audit on Apache Spark (a real local[2] SparkSession): the same tables as the embedded engine, count metrics to
1e-12, score metrics within their histogram bounds, from the CLI and from a Spark DataFrame.

Without Java these tests are skipped with a banner (conftest.py); under CI=true they fail instead."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli
from fairprompt.errors import FairpromptError
from fairprompt.metrics import audit
from fairprompt.scale import Columns, scan_predictions

JAVA = bool(os.environ.get("JAVA_HOME") or shutil.which("java"))
if not JAVA and os.environ.get("CI") == "true":
    pytest.fail("CI=true but no Java: the Spark tests need a JRE (.ci/run installs one)", pytrace=False)
pytestmark = [pytest.mark.skipif(not JAVA, reason="no Java: the Spark engine cannot start"), pytest.mark.slow]
pyspark = pytest.importorskip("pyspark")

COLUMNS = Columns(label="y", prediction="pred", score="score", weight="w", sensitive=("sex", "race"))


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("fairprompt-tests").config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    yield session
    session.stop()


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 20_000
    frame = pd.DataFrame({"sex": rng.choice(["f", "m"], n), "race": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
                          "y": rng.integers(0, 2, n), "w": rng.uniform(0.5, 2.0, n)})
    frame["score"] = np.clip(rng.beta(2, 2, n) * 0.7 + frame["y"] * 0.25, 0, 1)
    frame["pred"] = (frame["score"] >= 0.5).astype(int)
    frame.loc[rng.random(n) < 0.01, "race"] = None
    return frame


@pytest.fixture(scope="module")
def lake(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lake")
    for i, part in enumerate(np.array_split(np.arange(len(rows)), 4)):
        rows.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def test_spark_tables_equal_the_embedded_ones(spark, rows: pd.DataFrame, lake: Path) -> None:
    from fairprompt.scale.spark import spark_scan

    embedded = scan_predictions(lake, columns=COLUMNS, exact_rows=0)
    on_spark = spark_scan(lake, columns=COLUMNS)
    assert on_spark.table.groups == embedded.table.groups
    np.testing.assert_array_equal(on_spark.table.k, embedded.table.k)
    np.testing.assert_allclose(on_spark.table.w, embedded.table.w, rtol=1e-12)
    np.testing.assert_array_equal(on_spark.histogram.index, embedded.histogram.index)
    np.testing.assert_array_equal(on_spark.histogram.k, embedded.histogram.k)
    np.testing.assert_allclose(on_spark.histogram.se, embedded.histogram.se, rtol=1e-9, atol=1e-12)


def test_spark_audit_of_a_dataframe_matches_the_in_memory_audit(spark, rows: pd.DataFrame) -> None:
    from fairprompt.scale.spark import spark_audit

    frame = spark.createDataFrame(rows)
    got = spark_audit(frame, label="y", prediction="pred", score="score", weight="w", sensitive=["sex", "race"],
                      n_boot=200, seed=3)
    want = audit(y_true=rows["y"], y_pred=rows["pred"], y_score=rows["score"], sample_weight=rows["w"],
                 sensitive=rows[["sex", "race"]], n_boot=200, seed=3)
    assert got.weighted and got.score_histogram is not None
    for one, other in zip(want.slices, got.slices):
        a, b = one.groups_table, other.groups_table
        for column in ("selection_rate", "selection_rate_ci_low", "selection_rate_ci_high", "tpr", "fpr_ci_low"):
            np.testing.assert_allclose(b[column], a[column], rtol=0, atol=1e-12)
        np.testing.assert_allclose(b["brier"], a["brier"], rtol=0, atol=1e-12)
        assert (np.abs(b["auc"] - a["auc"]) <= b["auc_bound"] + 1e-12).all()
        assert (np.abs(b["scoring_rate"] - a["scoring_rate"]) <= b["scoring_rate_bound"] + 1e-12).all()


def test_cli_engine_spark(spark, lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "spark"
    args = ["-q", "audit", "--predictions", str(lake), "--label", "y", "--prediction", "pred", "--score", "score",
            "--weight", "w", "--sensitive", "sex,race", "--n-boot", "50", "--engine", "spark", "--spark-master",
            "local[2]"]
    code, _, err = run_cli(*args, "--out", str(out))
    assert code == 0, err
    embedded = tmp_path / "embedded"
    code, _, err = run_cli(*args[:-4], "--exact-rows", "0", "--out", str(embedded))
    assert code == 0, err
    a, b = (json.loads((p / "results.json").read_text())["audit"] for p in (embedded, out))
    assert a["count_table"]["groups"] == b["count_table"]["groups"] and a["count_table"]["k"] == b["count_table"]["k"]
    np.testing.assert_allclose(b["count_table"]["w"], a["count_table"]["w"], rtol=1e-12)  # sums in another order
    for one, other in zip(a["slices"], b["slices"]):
        for column in ("selection_rate", "selection_rate_ci_low", "selection_rate_ci_high"):
            np.testing.assert_allclose([g[column] for g in other["groups"]], [g[column] for g in one["groups"]],
                                       rtol=0, atol=1e-12)


def test_spark_bad_input(spark, rows: pd.DataFrame, tmp_path: Path) -> None:
    from fairprompt.scale.spark import spark_tables

    bad = spark.createDataFrame(rows.assign(y=np.where(np.arange(len(rows)) == 5, 3, rows["y"])))
    with pytest.raises(FairpromptError, match="column 'y' is not binary"):
        spark_tables(bad, columns=COLUMNS)
    holes = spark.createDataFrame(rows.assign(w=np.where(np.arange(len(rows)) < 3, np.nan, rows["w"])))
    with pytest.raises(FairpromptError, match=r"missing values in the weight column 'w' \(3 of 20,000 rows\)"):
        spark_tables(holes, columns=COLUMNS)
    with pytest.raises(FairpromptError, match="has no column 'nope'"):
        spark_tables(spark.createDataFrame(rows), columns=Columns(label="nope", prediction="pred", sensitive=("sex",)))
    path = tmp_path / "logit.parquet"
    rows.assign(score=rows["score"] * 6 - 3).to_parquet(path, index=False)
    out = tmp_path / "out"
    code, _, err = run_cli("audit", "--predictions", str(path), "--label", "y", "--prediction", "pred", "--score",
                           "score", "--sensitive", "sex", "--engine", "spark", "--out", str(out))
    assert_user_error(code, err, "not probabilities in [0, 1]", "--score-scale logit")
    assert not out.exists()
