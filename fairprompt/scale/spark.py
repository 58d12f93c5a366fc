"""The audit on Apache Spark: one aggregation on the cluster, the tables merged and bootstrapped on the driver.

The cluster groups the rows by the sensitive columns, the raw label and prediction values, the score bin and
whether a weight is missing, and sums rows, weights, squared weights, weighted scores and weighted squared errors
(for either label).  The driver reads those few thousand rows, checks them as the embedded reader checks a batch
(labels and predictions binary or matched to the positive label, missing values refused or dropped and counted,
scores finite and, for the histograms, in [0, 1]), and builds the same :class:`~fairprompt.metrics.counts.CountTable`
and :class:`~fairprompt.metrics.histograms.ScoreHistogram` as :mod:`fairprompt.scale.scan`, in the same group order;
:func:`~fairprompt.metrics.audit.audit_tables` does the rest.  Count metrics equal the in-memory audit's; the score
metrics carry the histogram bounds.

Needs ``pip install 'fairprompt[scale]'`` (pyspark) and Java 17.  ``master`` is any Spark master URL: ``local[*]``
(the default, every core of this machine), ``spark://host:7077`` (a standalone cluster), ``yarn`` or ``k8s://...``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairprompt.datasets.files import CSV_SUFFIXES
from fairprompt.errors import FairpromptError
from fairprompt.metrics.counts import CountTable
from fairprompt.metrics.histograms import ScoreHistogram, histogram_bins
from fairprompt.metrics.inputs import binarize
from fairprompt.scale.scan import Columns, ScanResult, sorted_values
from fairprompt.scale.sources import check_schemas, resolve_files

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from fairprompt.metrics.audit import Audit

DEFAULT_MASTER = "local[*]"


def spark_session(master: str | None = None) -> SparkSession:
    """The active Spark session, or a new one on ``master`` (a clear error without pyspark or Java)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise FairpromptError("engine spark needs pyspark: pip install 'fairprompt[scale]' (or use --engine "
                              "embedded)") from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise FairpromptError("engine spark needs Java 17 (java on the PATH or JAVA_HOME); install a JRE, or use "
                              "--engine embedded")
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    return (SparkSession.builder.master(master or DEFAULT_MASTER).appName("fairprompt")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "8").getOrCreate())


def _aggregate(frame: DataFrame, columns: Columns, *, bins: int, calibration_bins: int) -> pd.DataFrame:
    """The one aggregation, collected to the driver as a small pandas frame."""
    from pyspark.sql import functions as F

    weight = F.lit(1.0) if columns.weight is None else F.col(columns.weight).cast("double")
    keys = []
    sensitive = []
    for i, name in enumerate(columns.sensitive):
        column = F.col(name)
        if dict(frame.dtypes)[name] in ("double", "float"):
            column = F.when(F.isnan(column), F.lit(None)).otherwise(column)
        sensitive.append(column.alias(f"s{i}"))
        keys.append(f"s{i}")
    score = None
    out: list[Any] = [*sensitive, F.col(columns.label).alias("label")]
    if columns.score is not None:
        raw = F.col(columns.score).cast("double")
        score = 1.0 / (1.0 + F.exp(-raw)) if columns.score_scale == "logit" else raw
    if columns.prediction is not None:
        out.append(F.col(columns.prediction).alias("prediction"))
    else:
        out.append(F.when(F.col(columns.score).isNull(), F.lit(None))
                   .otherwise((F.col(columns.score).cast("double") >= float(columns.score_threshold)).cast("int"))
                   .alias("prediction"))
    if score is not None:
        per = bins // calibration_bins
        outer = F.least(F.greatest(F.floor(score * calibration_bins), F.lit(0)), F.lit(calibration_bins - 1))
        inner = F.least(F.greatest(F.floor((score * calibration_bins - outer) * per), F.lit(0)), F.lit(per - 1))
        out += [(outer * per + inner).cast("long").alias("bin"), score.alias("score")]
    out += [weight.alias("w"), (weight.isNull() if columns.weight is not None else F.lit(False)).alias("w_missing")]
    rows = frame.select(*out)
    group = [*keys, "label", "prediction", *(["bin"] if score is not None else []), "w_missing"]
    sums = [F.count(F.lit(1)).alias("k"), F.sum("w").alias("w"), F.sum(F.col("w") * F.col("w")).alias("w2"),
            F.min("w").alias("w_min")]
    if score is not None:
        sums += [F.sum(F.col("w") * F.col("score")).alias("ws"),
                 F.sum(F.col("w") * F.col("score") * F.col("score")).alias("se0"),
                 F.sum(F.col("w") * (F.col("score") - 1.0) * (F.col("score") - 1.0)).alias("se1"),
                 F.min("score").alias("s_min"), F.max("score").alias("s_max"),
                 F.sum(F.col("score").isNull().cast("long")).alias("s_missing")]
    return rows.groupBy(*group).agg(*sums).toPandas()


def tables_from_aggregate(agg: pd.DataFrame, columns: Columns, *, source: str, bins: int,
                          calibration_bins: int) -> ScanResult:
    """The driver's half: check the aggregated rows and build the count table and score histogram."""
    n_read = int(agg["k"].sum()) if len(agg) else 0
    if n_read == 0:
        raise FairpromptError(f"{source} has no rows to audit; check the input")
    missing = {"label": agg["label"].isna(), "prediction": agg["prediction"].isna()}
    if columns.score is not None:
        missing["score"] = agg["bin"].isna() | (agg["s_missing"] > 0)
    if columns.weight is not None:
        missing["weight"] = agg["w_missing"].astype(bool)
    counts = {role: int(agg.loc[mask, "k"].sum()) for role, mask in missing.items() if mask.any()}
    if counts:
        shown = " and ".join(f"{role} column {columns.roles[role]!r} ({count:,} of {n_read:,} rows)"
                             for role, count in counts.items())
        if not columns.drop_missing:
            raise FairpromptError(f"{source} has missing values in the {shown}; fill them, or leave those rows out of "
                                  "the audit with --drop-missing (predictions.drop_missing: true in a spec)")
        agg = agg[~np.logical_or.reduce([m.to_numpy() for m in missing.values()])].reset_index(drop=True)
        if agg.empty:
            raise FairpromptError(f"every row of {source} has a missing value (in the {shown}); nothing is left to "
                                  "audit: fill in the missing values")
    positive = columns.positive_label
    y = binarize(agg["label"], name=columns.label, positive_label=positive)
    p = (binarize(agg["prediction"], name=columns.prediction, positive_label=positive, require_present=False)
         if columns.prediction is not None else agg["prediction"].astype(np.int8).to_numpy())
    if columns.weight is not None and (agg["w_min"] < 0).any():
        raise FairpromptError(f"{source}: weight column {columns.weight!r} has negative values; give non-negative "
                              "finite numbers")
    if columns.score is not None:
        if not (np.isfinite(agg["s_min"]).all() and np.isfinite(agg["s_max"]).all()):
            raise FairpromptError(f"{source}: score column {columns.score!r} has infinite values; clip or drop "
                                  "those rows")
        if (agg["s_min"] < 0).any() or (agg["s_max"] > 1).any():
            raise FairpromptError(f"{source}: the scores of {columns.score!r} are not probabilities in [0, 1]; a "
                                  "Spark audit bins them over [0, 1]: if they are log-odds, say so (--score-scale "
                                  "logit, predictions.score_scale: logit)")
    cell = (2 * (1 - p) + (y != p)).astype(np.int64)
    values = [agg[f"s{i}"].map(lambda v: v.item() if isinstance(v, np.generic) else v)
              for i in range(len(columns.sensitive))]
    orders = [sorted_values(list(pd.unique(v.dropna()))) for v in values]
    rank = [{value: i for i, value in enumerate(order)} for order in orders]
    combo = [tuple(len(orders[j]) if pd.isna(v) else rank[j][v] for j, v in enumerate(row))
             for row in zip(*values)]
    unique = sorted(set(combo))
    position = {c: i for i, c in enumerate(unique)}
    group = np.array([position[c] for c in combo], dtype=np.int64)
    keys = tuple(tuple(None if c == len(orders[j]) else str(orders[j][c]) for j, c in enumerate(u)) for u in unique)
    size = len(unique)
    flat = group * 4 + cell
    k = np.bincount(flat, weights=agg["k"].to_numpy(np.float64), minlength=size * 4).reshape(size, 4)
    w = np.bincount(flat, weights=agg["w"].to_numpy(np.float64), minlength=size * 4).reshape(size, 4)
    w2 = np.bincount(flat, weights=agg["w2"].to_numpy(np.float64), minlength=size * 4).reshape(size, 4)
    if columns.weight is not None and w.sum() <= 0:
        raise FairpromptError(f"{source}: weight column {columns.weight!r} sums to zero; give positive weights")
    table = CountTable(columns=columns.sensitive, groups=keys, k=np.rint(k).astype(np.int64), w=w, w2=w2)
    histogram = None
    if columns.score is not None:
        se = np.where(y == 1, agg["se1"].to_numpy(np.float64), agg["se0"].to_numpy(np.float64))
        histogram = ScoreHistogram.summed(
            columns=columns.sensitive, groups=keys, bins=bins, calibration_bins=calibration_bins,
            flat=flat * bins + agg["bin"].to_numpy(np.int64),
            parts=(agg["k"].to_numpy(np.float64), agg["w"].to_numpy(np.float64), agg["ws"].to_numpy(np.float64), se))
    dropped = {str(columns.roles[role]): count for role, count in counts.items()}
    return ScanResult(table=table, histogram=histogram, rows=n_read, dropped=dropped,
                      weighted=columns.weight is not None, kept=None, file_rows={})


def spark_tables(frame: DataFrame, *, columns: Columns, calibration_bins: int = 10,
                 source: str = "the Spark DataFrame") -> ScanResult:
    """Count table and score histogram of a Spark DataFrame, from one aggregation."""
    absent = [c for c in columns.needed if c not in frame.columns]
    if absent:
        raise FairpromptError(f"{source} has no column {absent[0]!r}; name one of {', '.join(frame.columns[:12])}")
    bins = histogram_bins(calibration_bins)
    agg = _aggregate(frame, columns, bins=bins, calibration_bins=calibration_bins)
    return tables_from_aggregate(agg, columns, source=source, bins=bins, calibration_bins=calibration_bins)


def spark_scan(path: str | Path, *, columns: Columns, master: str | None = None,
               exact_rows: int | None = None) -> ScanResult:
    """The files behind ``path`` (as :func:`fairprompt.scale.scan_predictions` resolves them) aggregated on Spark.

    ``exact_rows`` is not used: a Spark audit always comes from the tables."""
    del exact_rows
    text = str(path)
    if "://" in text:  # a path only the cluster reads (s3a://, hdfs://, abfss://): Spark resolves it
        spark = spark_session(master)
        frame = (spark.read.csv(text, header=True, inferSchema=True) if text.lower().endswith(CSV_SUFFIXES)
                 else spark.read.parquet(text))
        return spark_tables(frame, columns=columns, source=f"predictions '{text}'")
    sources = resolve_files(path)
    check_schemas(sources, columns.needed)
    spark = spark_session(master)
    files = [str(f) for f in sources.files]
    frame = (spark.read.parquet(*files) if sources.kind == "parquet"
             else spark.read.csv(files, header=True, inferSchema=True))
    result = spark_tables(frame, columns=columns, source=f"predictions file '{sources.given}'")
    return dataclasses.replace(result, file_rows={Path(f): None for f in files})


def spark_audit(frame: DataFrame, *, label: str, sensitive: list[str] | tuple[str, ...], prediction: str | None = None,
                score: str | None = None, weight: str | None = None, positive_label: Any = None,
                score_threshold: float | None = None, score_scale: str = "probability", drop_missing: bool = False,
                reference: Mapping[str, Any] | None = None, n_boot: int = 1000, ci_level: float = 0.95, seed: int = 0,
                min_group_size: int = 30, impact_threshold: float = 0.8) -> Audit:
    """:func:`fairprompt.metrics.audit` of a Spark DataFrame's columns: aggregated on the cluster, audited here."""
    from fairprompt.metrics.audit import audit_tables

    columns = Columns(label=label, sensitive=tuple(sensitive), prediction=prediction, score=score, weight=weight,
                      positive_label=positive_label, score_threshold=score_threshold,
                      score_scale=score_scale, drop_missing=drop_missing)  # type: ignore[arg-type]
    scan = spark_tables(frame, columns=columns)
    return audit_tables(table=scan.table, histogram=scan.histogram, weighted=scan.weighted, reference=reference,
                        n_boot=n_boot, ci_level=ci_level, seed=seed, min_group_size=min_group_size,
                        impact_threshold=impact_threshold)
