"""How far can re-deciding the un-repaired scores go?  A bound for the accuracy a DP target costs (issue [4/7]).

    .venv/bin/python benchmarks/bound_group_thresholds.py [--predictions reports/adult_income/predictions.parquet]
        [--json docs/benchmarks/group_threshold_bound_adult.json]

Reads the audited model's scores from a ``make demo`` run's predictions.parquet (validation and test rows; the
final rows are never there unless ``--final`` was given, and this script refuses them) and, per split, searches
one threshold per sex over 401 score quantiles: the most accurate pair whose demographic-parity difference is at
most each cap.  The thresholds are chosen on the very rows they are scored on (in-sample, the group known), so
the accuracy is an optimistic bound for any repair that only re-decides these scores: a group-blind repair can
beat it only by making the scores themselves better.  Randomised thresholds (ThresholdOptimizer) can interpolate
between two such points; bench_frontier.py's ``threshold_optimizer_tol`` fits them on validation instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CAPS = (0.02, 0.039, 0.06, 0.08, 0.097, 0.12)


def best_pairs(score: np.ndarray, y: np.ndarray, female: np.ndarray, *, caps: tuple[float, ...]) -> dict[str, dict]:
    """For each cap, the most accurate (female threshold, male threshold) pair with DP difference <= cap."""
    grid = np.unique(np.quantile(score, np.linspace(0, 1, 401)))
    grid = np.concatenate([grid, [np.inf]])
    f, m = female, ~female
    sf, sm, yf, ym = score[f], score[m], y[f], y[m]
    rate_f = np.array([(sf >= t).mean() for t in grid])
    rate_m = np.array([(sm >= t).mean() for t in grid])
    right_f = np.array([((sf >= t) == yf).sum() for t in grid])
    right_m = np.array([((sm >= t) == ym).sum() for t in grid])
    dp = np.abs(rate_f[:, None] - rate_m[None, :])
    accuracy = (right_f[:, None] + right_m[None, :]) / len(y)
    out = {}
    for cap in caps:
        masked = np.where(dp <= cap + 1e-12, accuracy, -1.0)
        i, j = np.unravel_index(int(np.argmax(masked)), masked.shape)
        out[f"{cap:g}"] = {"accuracy": float(accuracy[i, j]), "dp": float(dp[i, j]),
                           "threshold_female": float(grid[i]), "threshold_male": float(grid[j])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=Path, default=ROOT / "reports/adult_income/predictions.parquet")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    frame = pd.read_parquet(args.predictions)
    audited = frame[frame["method"] == "audited"]
    if (audited["split"] == "final").any():
        raise SystemExit(f"{args.predictions} holds final rows; this bound is computed on validation and test only")
    source = args.predictions.resolve()
    result = {"benchmark": "benchmarks/bound_group_thresholds.py",
              "predictions": str(source.relative_to(ROOT) if source.is_relative_to(ROOT) else source),
              "what": "most accurate pair of thresholds by sex on the audited model's scores with DP <= cap, chosen "
                      "in-sample on each split (an optimistic bound for re-deciding these scores)", "splits": {}}
    for split in ("validation", "test"):
        rows = audited[audited["split"] == split]
        score, y = rows["score"].to_numpy(float), rows["label"].to_numpy(int)
        female = rows["sex"].astype(str).to_numpy() == "Female"
        base = float(((score >= 0.5) == y).mean())
        base_dp = float(abs((score[female] >= 0.5).mean() - (score[~female] >= 0.5).mean()))
        pairs = best_pairs(score, y, female, caps=CAPS)
        result["splits"][split] = {"rows": int(len(rows)), "unrepaired": {"accuracy": base, "dp": base_dp},
                                   "caps": pairs}
        print(f"{split}: un-repaired accuracy {base:.4f}, DP {base_dp:.3f}")
        for cap, p in pairs.items():
            print(f"  DP <= {cap:>5} ({1 - float(cap) / base_dp:+.0%} of the gap removed at least): accuracy "
                  f"{p['accuracy']:.4f} ({(p['accuracy'] - base) * 100:+.2f} pt), DP {p['dp']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
