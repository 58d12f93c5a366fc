"""Speed and memory of the metric engine against fairlearn and AIF360, in the same run.

Data: N rows, two string sensitive columns (sex: 2 values, 30/70; race: 5 values,
50/20/15/10/5 %), 10 intersectional groups, random labels, scores and predictions.

Measured per N:
- fairprompt: point metrics + ``n_boot`` (1000) stratified count-table bootstrap CIs for
  every count-based rate and disparity, on all three slices (sex, race, sex x race);
  peak extra memory by tracemalloc in a separate run.
- fairlearn ``MetricFrame`` (selection rate, TPR, FPR, FNR, TNR, accuracy, precision) by
  sex x race: point estimates, then ``n_boot`` = a few resamples, timed per resample and
  extrapolated linearly to 1000 (said so in the output; 1000 would take hours).
- AIF360 ``ClassificationMetric``: the metrics it shares (statistical parity difference,
  disparate impact, equal opportunity, average odds, FPR/FNR differences, error rate
  difference, Theil index) for every non-reference intersectional group against the
  reference group, including building its datasets.
- fairprompt score-based CIs (AUC, Brier, ECE, scoring rate) need row-level resampling:
  timed separately with a smaller number of resamples and extrapolated to 1000.

Point estimates are compared with fairlearn's and AIF360's (max absolute difference).

Run: ``.venv/bin/python benchmarks/bench_metrics.py`` (add ``--rows 100000`` for one size,
``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fairprompt.metrics import audit


def make_data(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["Female", "Male"]), n, p=[0.3, 0.7])
    race = rng.choice(np.array(["White", "Black", "Asian", "Hispanic", "Other"]), n, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + 0.1 * (sex == "Male") + rng.random(n) * 0.55, 0, 1)
    return pd.DataFrame({"sex": sex, "race": race, "y": y, "score": score, "pred": (score >= 0.5).astype(int)})


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def peak_mb(fn) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def fairlearn_frame(df: pd.DataFrame, n_boot: int | None):
    from fairlearn.metrics import (
        MetricFrame,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_negative_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, precision_score

    metrics = {
        "selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate,
        "fnr": false_negative_rate, "tnr": true_negative_rate, "accuracy": accuracy_score,
        "ppv": lambda yt, yp: precision_score(yt, yp, zero_division=np.nan),
    }
    kwargs = dict(n_boot=n_boot, ci_quantiles=[0.025, 0.975], random_state=0) if n_boot else {}
    return MetricFrame(metrics=metrics, y_true=df["y"], y_pred=df["pred"], sensitive_features=df[["sex", "race"]], **kwargs)


def aif360_metrics(df: pd.DataFrame, reference: tuple[str, str]) -> dict[str, dict[str, float]]:
    logging.getLogger().setLevel(logging.ERROR)  # aif360 logs warnings about optional packages at import
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from aif360.datasets import BinaryLabelDataset
        from aif360.metrics import ClassificationMetric

    groups = df["sex"] + " × " + df["race"]
    codes, uniques = pd.factorize(groups, sort=True)
    frame = pd.DataFrame({"g": codes.astype(float), "y": df["y"].astype(float)})
    truth = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["g"],
                               favorable_label=1.0, unfavorable_label=0.0)
    predicted = truth.copy(deepcopy=True)
    predicted.labels = df["pred"].to_numpy(float).reshape(-1, 1)
    ref = float(list(uniques).index(" × ".join(reference)))
    out: dict[str, dict[str, float]] = {}
    for code, label in enumerate(uniques):
        if float(code) == ref:
            continue
        m = ClassificationMetric(truth, predicted, unprivileged_groups=[{"g": float(code)}], privileged_groups=[{"g": ref}])
        out[label] = {
            "demographic_parity_difference": m.statistical_parity_difference(),
            "disparate_impact": m.disparate_impact(),
            "equal_opportunity_difference": m.equal_opportunity_difference(),
            "average_odds_difference": m.average_odds_difference(),
            "fpr_difference": m.false_positive_rate_difference(),
            "fnr_difference": m.false_negative_rate_difference(),
            "accuracy_difference": -m.error_rate_difference(),
        }
    out["theil_index"] = {"value": ClassificationMetric(truth, predicted, unprivileged_groups=[{"g": 0.0}],
                                                        privileged_groups=[{"g": ref}]).theil_index()}
    return out


def bench(n: int, *, n_boot: int, fairlearn_boot: int, score_boot: int) -> dict:
    df = make_data(n)
    sensitive = df[["sex", "race"]]
    row: dict = {"rows": n, "n_boot": n_boot}

    run = lambda: audit(y_true=df["y"], y_pred=df["pred"], sensitive=sensitive, n_boot=n_boot, seed=0)  # noqa: E731
    point = lambda: audit(y_true=df["y"], y_pred=df["pred"], sensitive=sensitive, n_boot=0)  # noqa: E731
    row["fairprompt_point_s"], _ = timed(point, repeat=3)
    row["fairprompt_boot_s"], ours = timed(run, repeat=3)
    row["fairprompt_peak_mb"] = peak_mb(run)
    inter = ours.slice("sex × race")

    row["fairlearn_point_s"], mf = timed(lambda: fairlearn_frame(df, None), repeat=2)  # first call warms up
    if fairlearn_boot:
        t, _ = timed(lambda: fairlearn_frame(df, fairlearn_boot))
        row["fairlearn_per_resample_s"] = (t - row["fairlearn_point_s"]) / fairlearn_boot
        row["fairlearn_1000_extrapolated_s"] = row["fairlearn_point_s"] + 1000 * row["fairlearn_per_resample_s"]
    by_group = mf.by_group
    by_group.index = [f"{a} × {b}" for a, b in by_group.index]
    diffs = []
    for ours_name, theirs in (("selection_rate", "selection_rate"), ("tpr", "tpr"), ("fpr", "fpr"), ("fnr", "fnr"),
                              ("tnr", "tnr"), ("accuracy", "accuracy"), ("ppv", "ppv")):
        diffs.append(np.nanmax(np.abs(inter.groups_table[ours_name].to_numpy()
                                      - by_group.loc[inter.groups_table.index, theirs].to_numpy(float))))
    row["max_abs_diff_vs_fairlearn"] = float(max(diffs))

    reference = ("Male", "White")
    aif360_metrics(df.iloc[:1000], reference)  # warm-up: imports
    row["aif360_s"], theirs = timed(lambda: aif360_metrics(df, reference))
    ours_ref = audit(y_true=df["y"], y_pred=df["pred"], sensitive=sensitive, n_boot=0,
                     reference={"sex": "Male", "race": "White"}).slice("sex × race")
    diffs = []
    for group, values in theirs.items():
        if group == "theil_index":
            diffs.append(abs(values["value"] - float(ours.overall.set_index("metric").loc["theil_index", "value"])))
            continue
        for name, value in values.items():
            mine = ours_ref.disparities
            mine = mine[(mine["metric"] == name) & (mine["convention"] == "to_reference") & (mine["group"] == group)]
            diffs.append(abs(float(mine["value"].iloc[0]) - value))
    row["max_abs_diff_vs_aif360"] = float(max(diffs))
    t_point_ref, _ = timed(lambda: audit(y_true=df["y"], y_pred=df["pred"], sensitive=sensitive, n_boot=0,
                                         reference={"sex": "Male", "race": "White"}))
    row["fairprompt_point_ref_s"] = t_point_ref

    if score_boot:
        t0, _ = timed(lambda: audit(y_true=df["y"], y_pred=df["pred"], y_score=df["score"], sensitive=sensitive, n_boot=0))
        t1, _ = timed(lambda: audit(y_true=df["y"], y_pred=df["pred"], y_score=df["score"], sensitive=sensitive,
                                    n_boot=score_boot, seed=0))
        row["score_point_s"] = t0
        row["score_boot_n"] = score_boot
        row["score_per_resample_s"] = (t1 - t0) / score_boot
        row["score_1000_extrapolated_s"] = t0 + 1000 * row["score_per_resample_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--fairlearn-boot", type=int, default=2, help="fairlearn resamples actually run (then extrapolated)")
    parser.add_argument("--score-boot", type=int, default=50, help="score-metric resamples actually run (then extrapolated)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_metrics.json")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.fairlearn_boot, args.score_boot, args.n_boot = [20_000], 1, 5, 200

    print(f"cores: {os.cpu_count()}; numpy {np.__version__}; pandas {pd.__version__}")
    rows = []
    for n in args.rows:
        row = bench(n, n_boot=args.n_boot, fairlearn_boot=args.fairlearn_boot, score_boot=args.score_boot)
        rows.append(row)
        print(f"\nN = {n:,} rows, 10 intersectional groups, {args.n_boot} resamples")
        print(f"  fairprompt  point metrics (all slices)               {row['fairprompt_point_s']:8.3f} s")
        print(f"  fairprompt  point + {args.n_boot} CIs, all count metrics   {row['fairprompt_boot_s']:8.3f} s   "
              f"peak extra memory {row['fairprompt_peak_mb']:.1f} MB")
        print(f"  fairlearn   MetricFrame point (7 metrics)             {row['fairlearn_point_s']:8.3f} s   "
              f"-> fairprompt point is {row['fairlearn_point_s'] / row['fairprompt_point_s']:.1f}x faster")
        if "fairlearn_per_resample_s" in row:
            print(f"  fairlearn   bootstrap: {row['fairlearn_per_resample_s']:.2f} s per resample "
                  f"(measured on {args.fairlearn_boot}); "
                  f"1000 resamples extrapolated linearly: {row['fairlearn_1000_extrapolated_s']:.0f} s "
                  f"-> fairprompt with CIs is {row['fairlearn_1000_extrapolated_s'] / row['fairprompt_boot_s']:.0f}x faster")
        print(f"  AIF360      ClassificationMetric, 9 comparisons + Theil {row['aif360_s']:8.3f} s   "
              f"-> fairprompt point is {row['aif360_s'] / row['fairprompt_point_ref_s']:.1f}x faster")
        print(f"  point estimates: max |fairprompt - fairlearn| = {row['max_abs_diff_vs_fairlearn']:.1e}, "
              f"max |fairprompt - AIF360| = {row['max_abs_diff_vs_aif360']:.1e}")
        if "score_per_resample_s" in row:
            print(f"  score-based CIs (AUC, Brier, ECE, scoring rate; row resampling): "
                  f"{row['score_per_resample_s'] * 1000:.1f} ms per resample "
                  f"(measured on {row['score_boot_n']}); 1000 resamples extrapolated: {row['score_1000_extrapolated_s']:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
