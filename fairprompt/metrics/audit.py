"""The audit: every group metric and disparity with bootstrap CIs, for each slice of the sensitive columns.

A *slice* is one way of grouping rows: each sensitive column on its own and,
when there are several, their intersection.  All slices come from one count
table over the finest groups (missing values kept as a group of their own), and
one set of stratified resamples serves every slice, so slice results are
consistent with each other.

>>> result = audit(y_true=y, y_pred=p, sensitive=frame[["sex", "race"]], y_score=s)
>>> result.slice("sex").groups_table        # rates per group with CIs
>>> result.slice("sex").disparities         # both conventions, with CIs
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError, did_you_mean
from fairprompt.metrics.audit_scores import ScoreResults, histogram_scores, row_scores
from fairprompt.metrics.bootstrap import MAX_N_BOOT, percentile_interval, resample_counts
from fairprompt.metrics.counts import CountTable, GroupKey, group_codes
from fairprompt.metrics.degenerate import Degeneracy, assess_degeneracy
from fairprompt.metrics.disparities import DISPARITIES
from fairprompt.metrics.histograms import ScoreHistogram
from fairprompt.metrics.inequality import between_group_entropy_index, generalized_entropy_index
from fairprompt.metrics.inputs import binarize, scores_array, sensitive_frame, weights_array
from fairprompt.metrics.rates import RATE_DESCRIPTIONS, RATE_NAMES, group_rates, safe_divide, undefined_reasons
from fairprompt.metrics.scores import SCORE_DESCRIPTIONS, SCORE_METRICS

INTERSECTION = " × "
"""Separator between column names (slice names) and values (group labels) of an intersection."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; library code never prints."""

MERGEABLE: dict[str, bool] = {name: True for name in RATE_NAMES} | {d.name: True for d in DISPARITIES} | {
    "theil_index": True, "generalized_entropy_index": True,
    "between_group_theil_index": True, "between_group_generalized_entropy_index": True,
    "impact_ratio": True, "auc": False, "brier": False, "ece": False, "scoring_rate": False,
    "scoring_impact_ratio": False, "auc_difference": False, "scoring_rate_difference": False,
}
"""Which metrics are exact functions of count tables that add across chunks (True) or need the rows."""


@dataclass(frozen=True)
class AuditConfig:
    """Settings of an audit, recorded in its output."""

    n_boot: int = 1000
    ci_level: float = 0.95
    seed: int = 0
    min_group_size: int = 30
    impact_threshold: float = 0.8
    small_category_share: float = 0.02
    bootstrap: Literal["counts", "rows"] = "counts"
    n_bins: int = 10
    reference: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_boot < 0:
            raise FairpromptError(f"n_boot must be 0 or more, got {self.n_boot}")
        if self.n_boot > MAX_N_BOOT:
            raise FairpromptError(f"n_boot must be at most {MAX_N_BOOT:,}, got {self.n_boot:,}; 1,000 to 10,000 "
                                  "resamples give stable 95% intervals")
        if not 0.0 < self.ci_level < 1.0:
            raise FairpromptError(f"ci_level must lie strictly between 0 and 1, got {self.ci_level}")
        if not 0.0 < self.impact_threshold <= 1.0:
            raise FairpromptError(f"impact_threshold must lie in (0, 1], got {self.impact_threshold}")
        if self.min_group_size < 1:
            raise FairpromptError(f"min_group_size must be at least 1, got {self.min_group_size}")
        if self.bootstrap not in ("counts", "rows"):
            raise FairpromptError(f"bootstrap must be 'counts' or 'rows', got {self.bootstrap!r}")


@dataclass(frozen=True)
class SliceAudit:
    """Results for one slice (one sensitive column, or their intersection).

    ``groups_table`` is indexed by group label with columns ``n``, ``weight``,
    ``share``, ``small_group`` and, for every metric M, ``M``, ``M_ci_low`` and
    ``M_ci_high``.  ``disparities`` has one row per disparity and convention
    (and per non-reference group for ``to_reference``).  ``compliance`` holds
    the impact-ratio table (four-fifths rule and Local Law 144 style).
    """

    name: str
    columns: tuple[str, ...]
    keys: tuple[GroupKey, ...]
    reference: str
    reference_rule: str
    groups_table: pd.DataFrame
    undefined: tuple[dict[str, str], ...]
    disparities: pd.DataFrame
    compliance: pd.DataFrame
    compliance_meta: dict[str, Any]
    excluded_rows: int
    excluded_weight: float
    curves: dict[str, Any] | None = None

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.groups_table.index)

    def disparity(self, name: str, *, convention: Literal["between_groups", "to_reference"] = "between_groups") -> pd.DataFrame:
        """Rows of ``disparities`` for one metric and convention."""
        rows = self.disparities[(self.disparities["metric"] == name) & (self.disparities["convention"] == convention)]
        if rows.empty:
            raise KeyError(f"no disparity {name!r} in convention {convention!r}")
        return rows


@dataclass(frozen=True)
class Audit:
    """A complete audit: overall metrics and one :class:`SliceAudit` per slice."""

    config: AuditConfig
    n_rows: int
    weighted: bool
    has_scores: bool
    overall: pd.DataFrame
    slices: tuple[SliceAudit, ...]
    table: CountTable
    median_score: float | None = None
    degeneracy: Degeneracy | None = None
    """Whether the model is degenerate (constant, constant in a group, or no better than the majority class)."""
    score_histogram: dict[str, Any] | None = None
    """How the score metrics came from merged histograms (bins, bound rule); None when they are exact."""

    @property
    def degenerate(self) -> bool:
        return self.degeneracy is not None and self.degeneracy.degenerate

    def slice(self, name: str) -> SliceAudit:
        """The slice called ``name`` (a column, or columns joined by ' × ')."""
        for s in self.slices:
            if s.name == name:
                return s
        raise KeyError(f"no slice {name!r}{did_you_mean(name, [s.name for s in self.slices])}")

    @property
    def metrics(self) -> tuple[str, ...]:
        return RATE_NAMES + (SCORE_METRICS if self.has_scores else ())

    def by_group(self) -> pd.DataFrame:
        """All slices' group tables stacked, with ``slice`` and ``group`` columns first (for CSV)."""
        frames = []
        for s in self.slices:
            frame = s.groups_table.reset_index(names="group")
            frame.insert(0, "slice", s.name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (NaN becomes None) of everything the audit found."""
        from fairprompt.metrics.audit_record import audit_to_dict

        return audit_to_dict(self)


def _label(key: GroupKey) -> str:
    return INTERSECTION.join("<missing>" if v is None else str(v) for v in key)


def check_reference(frame: pd.DataFrame, reference: Mapping[str, Any]) -> None:
    """Raise a FairpromptError unless every reference column is in ``frame`` and its group occurs there."""
    for column, value in reference.items():
        if column not in frame.columns:
            raise FairpromptError(f"reference names column {column!r}, which is not a sensitive column"
                                  f"{did_you_mean(column, frame.columns)}")
        observed = pd.unique(frame[column].dropna().astype(str))
        if str(value) not in observed:
            raise FairpromptError(
                f"reference group {value!r} does not occur in sensitive column {column!r}{did_you_mean(str(value), observed)}"
            )


def _choose_reference(
    columns: tuple[str, ...], keys: tuple[GroupKey, ...], weight: np.ndarray, configured: Mapping[str, str]
) -> tuple[int, str]:
    if all(c in configured for c in columns):
        wanted = tuple(str(configured[c]) for c in columns)
        if wanted in keys:
            return keys.index(wanted), "configured"
        if len(columns) == 1:
            raise FairpromptError(
                f"reference group {wanted[0]!r} does not occur in sensitive column {columns[0]!r}"
                f"{did_you_mean(wanted[0], [k[0] for k in keys])}"
            )
    return int(np.argmax(weight)), "largest group"


def _with_ci(values: np.ndarray, samples: np.ndarray | None, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if samples is None or samples.shape[0] == 0:
        nan = np.full(np.shape(values), np.nan)
        return np.asarray(values, float), nan, nan.copy()
    low, high = percentile_interval(samples, level=level)
    return np.asarray(values, float), low, high


def _disparity_rows(
    rates: dict[str, np.ndarray], boot: dict[str, np.ndarray] | None, *, ref: int, labels: tuple[str, ...], level: float
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for d in DISPARITIES:
        if d.between_groups is not None:
            value, low, high = _with_ci(d.between_groups(rates), None if boot is None else d.between_groups(boot), level)
            rows.append(dict(metric=d.name, convention="between_groups", group=None, value=float(value),
                             ci_low=float(low), ci_high=float(high), description=d.description,
                             fairlearn=d.fairlearn, aif360=d.aif360, ideal=d.ideal))
        if d.to_reference is not None:
            value, low, high = _with_ci(d.to_reference(rates, ref), None if boot is None else d.to_reference(boot, ref), level)
            for g, label in enumerate(labels):
                if g == ref:
                    continue
                rows.append(dict(metric=d.name, convention="to_reference", group=label, value=float(value[g]),
                                 ci_low=float(low[g]), ci_high=float(high[g]), description=d.description,
                                 fairlearn=d.fairlearn, aif360=d.aif360, ideal=d.ideal))
    return rows


def _index_rows(w: np.ndarray, boot: np.ndarray | None, level: float) -> list[dict[str, Any]]:
    rows = []
    for name, alpha in (("between_group_theil_index", 1.0), ("between_group_generalized_entropy_index", 2.0)):
        value, low, high = _with_ci(
            between_group_entropy_index(w, alpha=alpha),
            None if boot is None else between_group_entropy_index(boot, alpha=alpha),
            level,
        )
        rows.append(dict(metric=name, convention="between_groups", group=None, value=float(value), ci_low=float(low),
                         ci_high=float(high), description=f"generalized entropy index (alpha={alpha:g}) of group-mean benefits",
                         fairlearn=None, aif360=name, ideal=0.0))
    return rows


def _score_disparities(scores: dict[str, np.ndarray], boot: dict[str, np.ndarray] | None, level: float) -> list[dict[str, Any]]:
    from fairprompt.metrics.disparities import spread

    rows = []
    for name, base, desc in (("auc_difference", "auc", "gap in ROC AUC"),
                             ("scoring_rate_difference", "scoring_rate", "gap in scoring rate (share above the median score)")):
        value, low, high = _with_ci(spread(scores[base]), None if boot is None else spread(boot[base]), level)
        rows.append(dict(metric=name, convention="between_groups", group=None, value=float(value), ci_low=float(low),
                         ci_high=float(high), description=desc, fairlearn=None, aif360=None, ideal=0.0))
    return rows


def _impact_ratios(rate: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Each group's rate over the highest rate among ``eligible`` groups, along the last axis."""
    masked = np.where(eligible & ~np.isnan(rate), rate, -np.inf)
    best = masked.max(axis=-1, keepdims=True)
    return safe_divide(rate, np.where(np.isfinite(best), best, np.nan))


def audit(
    *,
    y_true: Any,
    y_pred: Any,
    sensitive: Any,
    y_score: Any = None,
    sample_weight: Any = None,
    positive_label: Any = None,
    reference: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    min_group_size: int = 30,
    impact_threshold: float = 0.8,
    small_category_share: float = 0.02,
    bootstrap: Literal["counts", "rows"] = "counts",
    n_bins: int = 10,
    progress: Progress | None = None,
) -> Audit:
    """Audit binary predictions for group fairness.

    Args:
        y_true: true labels (0/1, or any values with ``positive_label``).
        y_pred: predicted labels, coded like ``y_true``.
        sensitive: one or more sensitive columns (DataFrame, Series, mapping or array).
            Several columns give each column's slice and their intersection.
            Missing values exclude a row from the slices that need that column (counted).
        y_score: optional scores (probabilities for Brier and ECE) for score-based metrics.
        sample_weight: optional non-negative row weights.
        positive_label: the favourable label value when labels are not 0/1.
        reference: reference group per column for the ``to_reference`` convention;
            default the largest group.
        n_boot: bootstrap resamples (0 disables CIs; at most :data:`~fairprompt.metrics.bootstrap.MAX_N_BOOT`).
        ci_level: confidence level of the percentile intervals.
        seed: seed of every random draw.
        min_group_size: groups with fewer rows are flagged ``small_group``.
        impact_threshold: four-fifths rule threshold on impact ratios.
        small_category_share: categories below this share of rows are marked (Local Law 144's 2%).
        bootstrap: ``counts`` (multinomial draws on count tables; default) or ``rows``.
        n_bins: calibration bins for ECE.
        progress: optional callback ``progress(stage, done, total)``.
    """
    config = AuditConfig(
        n_boot=n_boot, ci_level=ci_level, seed=seed, min_group_size=min_group_size, impact_threshold=impact_threshold,
        small_category_share=small_category_share, bootstrap=bootstrap, n_bins=n_bins,
        reference={str(k): str(v) for k, v in (reference or {}).items()},
    )
    y = binarize(y_true, name=getattr(y_true, "name", None) or "y_true", positive_label=positive_label)
    p = binarize(y_pred, name=getattr(y_pred, "name", None) or "y_pred", positive_label=positive_label, require_present=False)
    n_rows = y.size
    if n_rows == 0:
        raise FairpromptError("there are no rows to audit; check the input file and filters")
    if p.size != n_rows:
        raise FairpromptError(f"y_pred has {p.size} values but y_true has {n_rows}; give one prediction per row")
    frame = sensitive_frame(sensitive, n_rows=n_rows)
    check_reference(frame, config.reference)
    weights = (None if sample_weight is None
               else weights_array(sample_weight, name=getattr(sample_weight, "name", None) or "sample_weight", n_rows=n_rows))
    scores = None if y_score is None else scores_array(y_score, name=getattr(y_score, "name", None) or "y_score")
    if scores is not None and scores.size != n_rows:
        raise FairpromptError(f"y_score has {scores.size} values but y_true has {n_rows}; give one score per row")

    fine_index, fine_keys = group_codes(frame)
    columns = tuple(frame.columns)
    table = CountTable.from_codes(y_true=y, y_pred=p, group_index=fine_index, groups=fine_keys, columns=columns,
                                  sample_weight=weights)
    counts_rng, rows_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    slice_columns, projections = _slicing(table)
    fine_boot = _count_resamples(table, config, counts_rng, progress)
    score_results, rows_boot = row_scores(
        y=y, p=p, scores=scores, weights=weights, fine_index=fine_index, n_fine=len(fine_keys),
        projections=projections, n_bins=n_bins, n_boot=config.n_boot, rows_bootstrap=config.bootstrap == "rows",
        rng=rows_rng, progress=progress)
    if rows_boot is not None:
        fine_boot = rows_boot
    return _assemble(config, table=table, fine_boot=fine_boot, scores=score_results, n_rows=n_rows,
                     weighted=weights is not None, slice_columns=slice_columns, projections=projections)


def audit_tables(
    *,
    table: CountTable,
    histogram: ScoreHistogram | None = None,
    weighted: bool = False,
    reference: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    min_group_size: int = 30,
    impact_threshold: float = 0.8,
    small_category_share: float = 0.02,
    progress: Progress | None = None,
) -> Audit:
    """The audit from a count table over the finest groups and, for the score metrics, a score histogram over the
    same groups: what an out-of-core scan or a Spark aggregation builds (:mod:`fairprompt.scale`).

    The count-based results equal :func:`audit`'s on the same rows when the table's groups are in the same order
    (the intervals too: the same multinomial draws); the score metrics carry the histogram's error bounds.
    ``weighted``: whether the rows had sample weights (the table's weight sums then differ from its counts).
    Arguments otherwise as for :func:`audit`; the ECE's bins are the histogram's calibration bins.
    """
    config = AuditConfig(
        n_boot=n_boot, ci_level=ci_level, seed=seed, min_group_size=min_group_size, impact_threshold=impact_threshold,
        small_category_share=small_category_share, bootstrap="counts",
        n_bins=histogram.calibration_bins if histogram is not None else 10,
        reference={str(k): str(v) for k, v in (reference or {}).items()},
    )
    n_rows = int(table.k.sum())
    if n_rows == 0:
        raise FairpromptError("there are no rows to audit; check the input file and filters")
    if histogram is not None and (histogram.columns != table.columns or histogram.groups != table.groups):
        raise ValueError("the score histogram's groups differ from the count table's; build both from the same scan")
    check_table(table, config.reference)
    counts_rng, rows_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    slice_columns, projections = _slicing(table)
    fine_boot = _count_resamples(table, config, counts_rng, progress)
    score_results = None if histogram is None else histogram_scores(
        histogram=histogram, projections=projections, n_boot=config.n_boot, rng=rows_rng, progress=progress)
    return _assemble(config, table=table, fine_boot=fine_boot, scores=score_results, n_rows=n_rows,
                     weighted=weighted, slice_columns=slice_columns, projections=projections)


def check_table(table: CountTable, reference: Mapping[str, Any]) -> None:
    """:func:`check_reference` and the two-groups rule of a sensitive column, on a count table."""
    for i, column in enumerate(table.columns):
        observed = sorted({str(key[i]) for key in table.groups if key[i] is not None})
        if len(observed) < 2:
            only = repr(observed[0]) if observed else "no value"
            raise FairpromptError(
                f"sensitive column {column!r} has a single value ({only}); an audit compares at least two groups, "
                "so choose a column with two or more values")
    for column, value in reference.items():
        if column not in table.columns:
            raise FairpromptError(f"reference names column {column!r}, which is not a sensitive column"
                                  f"{did_you_mean(column, table.columns)}")
        i = table.columns.index(column)
        observed = sorted({str(key[i]) for key in table.groups if key[i] is not None})
        if str(value) not in observed:
            raise FairpromptError(f"reference group {value!r} does not occur in sensitive column {column!r}"
                                  f"{did_you_mean(str(value), observed)}")


def _slicing(table: CountTable) -> tuple[list[tuple[str, ...]], list[tuple[np.ndarray, tuple[GroupKey, ...]]]]:
    """Each slice's columns (each column, then their intersection) and the map of fine groups to its groups."""
    columns = table.columns
    slice_columns = [(c,) for c in columns] + ([columns] if len(columns) > 1 else [])
    return slice_columns, [table.projection(cols) for cols in slice_columns]


def _count_resamples(table: CountTable, config: AuditConfig, rng: np.random.Generator,
                     progress: Progress | None) -> np.ndarray | None:
    if config.n_boot <= 0 or config.bootstrap != "counts":
        return None
    if progress:
        progress("bootstrap: count tables", 0, config.n_boot)
    out = resample_counts(table, n_boot=config.n_boot, rng=rng)
    if progress:
        progress("bootstrap: count tables", config.n_boot, config.n_boot)
    return out


def _assemble(config: AuditConfig, *, table: CountTable, fine_boot: np.ndarray | None, scores: ScoreResults | None,
              n_rows: int, weighted: bool, slice_columns: list[tuple[str, ...]],
              projections: list[tuple[np.ndarray, tuple[GroupKey, ...]]]) -> Audit:
    """Every slice's groups, disparities and compliance tables, and the overall metrics."""
    level = config.ci_level
    fine_keys = table.groups
    slices = []
    for i, (cols, (target, keys)) in enumerate(zip(slice_columns, projections)):
        one_hot = np.zeros((len(fine_keys), len(keys)))
        keep = target >= 0
        one_hot[np.flatnonzero(keep), target[keep]] = 1.0
        w = np.einsum("gc,gs->sc", table.w, one_hot)
        k = np.einsum("gc,gs->sc", table.k, one_hot)
        boot = None if fine_boot is None else np.einsum("bgc,gs->bsc", fine_boot, one_hot)
        labels = tuple(_label(key) for key in keys)
        group_weight = w.sum(axis=1)
        ref, rule = _choose_reference(cols, keys, group_weight, config.reference)

        rates = group_rates(w)
        boot_rates = None if boot is None else group_rates(boot)
        data: dict[str, Any] = {
            "n": k.sum(axis=1).astype(np.int64),
            "weight": group_weight,
            "share": group_weight / group_weight.sum(),
        }
        data["small_group"] = data["n"] < config.min_group_size
        for name in RATE_NAMES:
            value, low, high = _with_ci(rates[name], None if boot_rates is None else boot_rates[name], level)
            data[name], data[f"{name}_ci_low"], data[f"{name}_ci_high"] = value, low, high
        reasons = undefined_reasons(w)
        undefined = [dict(group=labels[g], metric=m, reason=r) for m, rs in reasons.items() for g, r in enumerate(rs) if r]

        score_point: dict[str, np.ndarray] = {}
        score_samples: dict[str, np.ndarray] | None = None
        curves = None
        if scores is not None:
            part = scores.slices[i]
            score_point, score_samples = part.point, part.samples
            for name in SCORE_METRICS:
                value, low, high = _with_ci(score_point[name], None if score_samples is None else score_samples[name], level)
                data[name], data[f"{name}_ci_low"], data[f"{name}_ci_high"] = value, low, high
                for g in np.flatnonzero(np.isnan(value)):
                    why = {"auc": "group lacks positive or negative rows"}.get(name, "scores are not probabilities in [0, 1]")
                    undefined.append(dict(group=labels[g], metric=name, reason=why))
            if part.bounds is not None:
                for name, bound in part.bounds.items():
                    data[f"{name}_bound"] = bound
            calibration = part.calibration
            curves = {
                "roc": {labels[g]: None if c is None else {"fpr": c[0].tolist(), "tpr": c[1].tolist()}
                        for g, c in enumerate(part.roc)},
                "calibration": {labels[g]: {"mean_score": calibration["mean_score"][g].tolist(),
                                            "positive_share": calibration["positive_share"][g].tolist(),
                                            "weight": calibration["weight"][g].tolist()} for g in range(len(keys))},
            }
        groups_table = pd.DataFrame(data, index=pd.Index(labels, name="group"))

        disparity_rows = _disparity_rows(rates, boot_rates, ref=ref, labels=labels, level=level)
        disparity_rows += _index_rows(w, boot, level)
        if score_point:
            disparity_rows += _score_disparities(score_point, score_samples, level)
        disparities = pd.DataFrame(disparity_rows)
        disparities["mergeable"] = disparities["metric"].map(MERGEABLE).fillna(False).astype(bool)

        # Compliance: impact ratios to the highest-rate group (four-fifths) and LL144 style.
        share = data["share"]
        small_category = share < config.small_category_share
        eligible = ~small_category if (~small_category).any() else np.ones_like(small_category)
        everyone = np.ones_like(small_category)
        comp: dict[str, Any] = {"n": data["n"], "share": share, "small_category": small_category}
        for column, rate_name, allowed, point, samples in (
            ("impact_ratio", "selection_rate", everyone, rates, boot_rates),
            ("ll144_impact_ratio", "selection_rate", eligible, rates, boot_rates),
            ("scoring_impact_ratio", "scoring_rate", eligible, score_point, score_samples),
        ):
            if rate_name not in point:
                continue
            value, low, high = _with_ci(
                _impact_ratios(point[rate_name], allowed),
                None if samples is None else _impact_ratios(samples[rate_name], allowed), level,
            )
            comp[rate_name] = point[rate_name]
            comp[column], comp[f"{column}_ci_low"], comp[f"{column}_ci_high"] = value, low, high
        comp["passes_four_fifths"] = comp["impact_ratio"] >= config.impact_threshold
        compliance = pd.DataFrame(comp, index=pd.Index(labels, name="group"))
        _, excluded = table.marginal(cols)
        best = int(np.nanargmax(np.where(np.isnan(rates["selection_rate"]), -np.inf, rates["selection_rate"])))
        best_eligible = int(np.argmax(np.where(eligible & ~np.isnan(rates["selection_rate"]), rates["selection_rate"], -np.inf)))
        meta = {
            "four_fifths_reference": labels[best],
            "ll144_reference": labels[best_eligible],
            "scoring_reference": None,
            "impact_threshold": config.impact_threshold,
            "small_category_share": config.small_category_share,
            "excluded_rows": int(excluded.k.sum()),
            "excluded_weight": float(excluded.w.sum()),
        }
        if "scoring_rate" in score_point:
            sr = score_point["scoring_rate"]
            meta["scoring_reference"] = labels[int(np.argmax(np.where(eligible & ~np.isnan(sr), sr, -np.inf)))]

        slices.append(SliceAudit(
            name=INTERSECTION.join(cols), columns=cols, keys=keys, reference=labels[ref], reference_rule=rule,
            groups_table=groups_table, undefined=tuple(undefined), disparities=disparities, compliance=compliance,
            compliance_meta=meta, excluded_rows=meta["excluded_rows"], excluded_weight=meta["excluded_weight"], curves=curves,
        ))

    # Overall metrics on every row (missing sensitive values included).
    total_w = table.w.sum(axis=0, keepdims=True)
    total_boot = None if fine_boot is None else fine_boot.sum(axis=1, keepdims=True)
    overall_rates = group_rates(total_w)
    overall_boot = None if total_boot is None else group_rates(total_boot)
    overall_rows = []
    for name in RATE_NAMES:
        value, low, high = _with_ci(overall_rates[name], None if overall_boot is None else overall_boot[name], level)
        overall_rows.append(dict(metric=name, value=float(value[0]), ci_low=float(low[0]), ci_high=float(high[0]),
                                 description=RATE_DESCRIPTIONS[name]))
    for name, alpha in (("theil_index", 1.0), ("generalized_entropy_index", 2.0)):
        value, low, high = _with_ci(generalized_entropy_index(table.w, alpha=alpha),
                                    None if fine_boot is None else generalized_entropy_index(fine_boot, alpha=alpha), level)
        overall_rows.append(dict(metric=name, value=float(value), ci_low=float(low), ci_high=float(high),
                                 description=f"generalized entropy index (alpha={alpha:g}) "
                                             "of individual benefits b = pred - y + 1"))
    if scores is not None:
        point, samples = scores.overall.point, scores.overall.samples
        for name in SCORE_METRICS:
            value, low, high = _with_ci(point[name], None if samples is None else samples[name], level)
            overall_rows.append(dict(metric=name, value=float(value[0]), ci_low=float(low[0]), ci_high=float(high[0]),
                                     description=SCORE_DESCRIPTIONS[name]))
    overall = pd.DataFrame(overall_rows)
    overall["mergeable"] = overall["metric"].map(MERGEABLE).fillna(False).astype(bool)

    return Audit(config=config, n_rows=n_rows, weighted=weighted, has_scores=scores is not None,
                 overall=overall, slices=tuple(slices), table=table,
                 median_score=None if scores is None else scores.median,
                 degeneracy=assess_degeneracy(table, boot=fine_boot, level=level),
                 score_histogram=None if scores is None else scores.describe())
