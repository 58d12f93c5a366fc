"""Audits at any scale: wall time and peak memory of the out-of-core predictions audit against a bare scan.

Data: generated Parquet, ``--sizes`` rows (default 10^6, 10^7, 10^8) in files of at most 10^7 rows (a directory,
as a data lake holds them): two sensitive columns (sex: 2 values, race: 5 values, 10 intersectional groups),
a label, a prediction and a score in [0, 1].

Measured per size, each in its own process (so that peak RSS is that run's alone), alternating, median of
``--repeats``:
- bare: the same columns read batch by batch with the same engine (pyarrow), each batch's numeric columns turned
  into numpy arrays and its string columns dictionary-encoded: the I/O and decoding lower bound.
- fairprompt: ``scan_predictions`` (count table and score histograms) then ``audit_tables`` with 1,000 resamples
  for every metric (count-table multinomials and score-histogram multinomials), i.e. the whole audit but the
  report; the score-CI part timed on its own too (``audit_tables`` with and without the histogram).
- spark (``--spark``): the same audit on a local[2] SparkSession (``spark_scan`` + ``audit_tables``) against a bare
  Spark aggregation of the same columns (count and sums by sex and race).
- duckdb (``--duckdb``, when importable): the count table and the score histograms as one DuckDB GROUP BY, the peer
  the issue names for the embedded engine, with its memory_limit set.

Targets: peak RSS at most 1 GB at every size, time at most 2x the bare scan, score CIs at 10^6 rows in at most 2 s.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--sizes 1e6 1e7 1e8] [--repeats 1] [--spark] [--duckdb]
[--json docs/benchmarks/scale.json] [--shared "..."]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, log, write_json

FILE_ROWS = 10_000_000
COLUMNS = ["sex", "race", "y", "pred", "score"]


def generate(folder: Path, rows: int, seed: int = 0) -> Path:
    """``rows`` rows of predictions in Parquet files of at most FILE_ROWS rows (reused when already there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = folder / f"rows_{rows}"
    done = target / "_complete"
    if done.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sexes = pa.array(["female", "male"])
    races = pa.array(["Asian", "Black", "Hispanic", "Other", "White"])
    for part, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        sex = rng.choice(2, n, p=[0.3, 0.7]).astype(np.int32)
        race = rng.choice(5, n, p=[0.1, 0.2, 0.15, 0.05, 0.5]).astype(np.int32)
        y = (rng.random(n) < 0.3 + 0.1 * sex).astype(np.int8)
        score = np.clip(rng.beta(2, 3, n) + 0.25 * y + 0.05 * sex, 0.0, 1.0)
        table = pa.table({"sex": pa.DictionaryArray.from_arrays(pa.array(sex), sexes),
                          "race": pa.DictionaryArray.from_arrays(pa.array(race), races),
                          "y": y, "pred": (score >= 0.5).astype(np.int8), "score": score})
        pq.write_table(table, target / f"part-{part:03d}.parquet", row_group_size=1 << 20)
    done.write_text("ok")
    return target


def _child(mode: str, path: str, spark: bool) -> None:
    """One measured run, in this process; prints one JSON line."""
    import resource

    import pyarrow.parquet  # noqa: F401  (imports are not timed: every mode pays them once per process)
    if mode.startswith("fairprompt"):
        import fairprompt.metrics.audit  # noqa: F401
        import fairprompt.scale  # noqa: F401
    if mode.startswith("spark"):
        import fairprompt.scale.spark  # noqa: F401
    t0 = time.perf_counter()
    out: dict[str, float | int | str] = {"mode": mode}
    if mode == "bare":
        import pyarrow.parquet as pq

        total = 0
        for file in sorted(Path(path).glob("*.parquet")):
            for batch in pq.ParquetFile(file).iter_batches(batch_size=1 << 20, columns=COLUMNS):
                for name in COLUMNS:
                    column = batch.column(name)
                    if hasattr(column, "indices"):
                        column.indices.to_numpy()
                    else:
                        column.to_numpy()
                total += batch.num_rows
        out["rows"] = total
    elif mode in ("fairprompt", "fairprompt_counts"):
        from fairprompt.metrics.audit import audit_tables
        from fairprompt.scale import Columns, scan_predictions

        columns = Columns(label="y", prediction="pred", score="score", sensitive=("sex", "race"))
        scan = scan_predictions(path, columns=columns, exact_rows=0)
        out["scan_seconds"] = time.perf_counter() - t0
        t = time.perf_counter()
        audit_tables(table=scan.table, histogram=None, n_boot=1000)
        out["count_audit_seconds"] = time.perf_counter() - t
        if mode == "fairprompt":
            t = time.perf_counter()
            result = audit_tables(table=scan.table, histogram=scan.histogram, n_boot=1000)
            out["full_audit_seconds"] = time.perf_counter() - t
            out["score_ci_seconds"] = out["full_audit_seconds"] - out["count_audit_seconds"]
            out["histogram_entries"] = int(scan.histogram.index.size)
            out["largest_auc_bound"] = float(max(s.groups_table["auc_bound"].max() for s in result.slices))
        out["rows"] = scan.rows
    elif mode in ("spark", "spark_bare"):
        from fairprompt.scale.spark import spark_scan, spark_session

        session = spark_session("local[2]")
        session.sparkContext.setLogLevel("ERROR")
        out["session_seconds"] = time.perf_counter() - t0
        t = time.perf_counter()
        if mode == "spark_bare":
            from pyspark.sql import functions as F

            frame = session.read.parquet(path)
            rows = frame.groupBy("sex", "race").agg(F.count(F.lit(1)), F.sum("y"), F.sum("pred"),
                                                    F.sum("score")).collect()
            out["rows"] = int(sum(r[2] for r in rows))
        else:
            from fairprompt.metrics.audit import audit_tables
            from fairprompt.scale import Columns

            columns = Columns(label="y", prediction="pred", score="score", sensitive=("sex", "race"))
            scan = spark_scan(path, columns=columns)
            out["aggregate_seconds"] = time.perf_counter() - t
            audit_tables(table=scan.table, histogram=scan.histogram, n_boot=1000)
            out["rows"] = scan.rows
        out["work_seconds"] = time.perf_counter() - t
    elif mode == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute("SET memory_limit='1GB'")
        con.execute(f"SET threads={os.cpu_count()}")
        query = (f"SELECT sex, race, y, pred, least(greatest(floor(score * 4100), 0), 4099) AS bin, count(*) AS k, "
                 f"sum(score) AS ws, sum((score - y) * (score - y)) AS se FROM read_parquet('{path}/*.parquet') "
                 "GROUP BY ALL")
        out["groups"] = len(con.execute(query).fetchall())
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def _measure(mode: str, path: Path, spark: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).parent, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 1e8])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--spark", action="store_true")
    parser.add_argument("--spark-sizes", nargs="+", type=float, default=None, help="sizes for Spark (default --sizes)")
    parser.add_argument("--duckdb", action="store_true")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "fairprompt_bench_scale")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--shared", default="nothing noted", help="what shared the cores during the run")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], spark=False)
        return
    start = time.perf_counter()
    results = []
    for size in (int(s) for s in args.sizes):
        t = time.perf_counter()
        path = generate(args.data, size)
        megabytes = sum(f.stat().st_size for f in path.glob("*.parquet")) / 1e6
        log(f"{size:,} rows ready in {time.perf_counter() - t:.1f} s ({megabytes:.0f} MB)")
        modes = ["bare", "fairprompt"] + (["duckdb"] if args.duckdb else [])
        if args.spark and size in [int(s) for s in (args.spark_sizes or args.sizes)]:
            modes += ["spark_bare", "spark"]
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for repeat in range(args.repeats):
            for mode in modes:
                runs[mode].append(_measure(mode, path, args.spark))
                log(f"{size:,} {mode} repeat {repeat + 1}: {runs[mode][-1]['seconds']:.1f} s, "
                    f"{runs[mode][-1]['peak_rss_mb']:.0f} MB")
        median = {m: {key: statistics.median(r[key] for r in rs) for key in rs[0] if isinstance(rs[0][key], float | int)}
                  for m, rs in runs.items()}
        row = {"rows": size, "bytes": sum(f.stat().st_size for f in path.glob("*.parquet")), "runs": runs,
               "median": median, "ratio_to_bare": median["fairprompt"]["seconds"] / median["bare"]["seconds"]}
        if "spark" in median:
            row["spark_ratio_to_bare_aggregation"] = median["spark"]["work_seconds"] / median["spark_bare"]["work_seconds"]
        if "duckdb" in median:
            row["duckdb_seconds"] = median["duckdb"]["seconds"]
        log(f"{size:,}: fairprompt {median['fairprompt']['seconds']:.1f} s ({row['ratio_to_bare']:.2f}x bare "
            f"{median['bare']['seconds']:.1f} s), peak {median['fairprompt']['peak_rss_mb']:.0f} MB, score CIs "
            f"{median['fairprompt']['score_ci_seconds']:.2f} s")
        results.append(row)
    out = {"benchmark": "scale", "engine": "embedded (pyarrow batches + numpy)", "n_boot": 1000, "results": results,
           "targets": {"peak_rss_mb": 1024, "ratio_to_bare": 2.0, "score_ci_seconds_at_1e6": 2.0},
           "host": {"cpus": os.cpu_count(), "shared": args.shared}}
    write_json(out, args.json, start=start)


if __name__ == "__main__":
    main()
