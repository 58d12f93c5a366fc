"""The audit part of the record: what :meth:`fairprompt.metrics.Audit.to_dict` writes, typed.

Group and compliance rows carry one ``M``, ``M_ci_low``, ``M_ci_high`` triple per metric; their fields are
built from the metric engine's names (:data:`~fairprompt.metrics.rates.RATE_NAMES`,
:data:`~fairprompt.metrics.scores.SCORE_METRICS`), so a metric added there is a field here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, create_model

from fairprompt.metrics.rates import RATE_NAMES
from fairprompt.metrics.scores import SCORE_METRICS
from fairprompt.results.base import Real, Record

GROUP_METRICS: tuple[str, ...] = (*RATE_NAMES, *SCORE_METRICS)
"""Every per-group metric a group row can carry, in the order the audit writes them."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval (each None when undefined or not computed)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None


def _estimate(row: Record, name: str) -> Estimate:
    value = getattr(row, "for_" if name == "for" else name, None)
    return Estimate(value, getattr(row, f"{name}_ci_low", None), getattr(row, f"{name}_ci_high", None))


def _metric_fields(names: tuple[str, ...]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in names:
        for suffix in ("", "_ci_low", "_ci_high"):
            key = f"{name}{suffix}"
            if key == "for":  # the false omission rate: a Python keyword, so the attribute is ``for_``
                fields["for_"] = (Real | None, Field(None, alias="for"))
            else:
                fields[key] = (Real | None, None)
    return fields


class _GroupBase(Record):
    """The counts of one group of a slice (the metric fields are added below)."""

    group: str
    n: int
    weight: Real | None = None
    share: Real | None = None
    small_group: bool | None = None
    auc_bound: Real | None = None
    """Largest distance of ``auc`` to the exact AUC when it came from score histograms (else absent)."""
    scoring_rate_bound: Real | None = None
    """Largest distance of ``scoring_rate`` to the exact rate when it came from score histograms (else absent)."""

    def estimate(self, metric: str) -> Estimate:
        """``metric`` with its interval (``"for"`` works too; its attribute is ``for_``)."""
        return _estimate(self, metric)


GroupRow = create_model("GroupRow", __base__=_GroupBase, __doc__="One group of a slice: counts and every metric with its "
                        "interval.", **_metric_fields(GROUP_METRICS))


class _ComplianceBase(Record):
    group: str
    n: int
    share: Real | None = None
    small_category: bool | None = None
    selection_rate: Real | None = None
    impact_ratio: Real | None = None
    impact_ratio_ci_low: Real | None = None
    impact_ratio_ci_high: Real | None = None
    ll144_impact_ratio: Real | None = None
    ll144_impact_ratio_ci_low: Real | None = None
    ll144_impact_ratio_ci_high: Real | None = None
    scoring_rate: Real | None = None
    scoring_impact_ratio: Real | None = None
    scoring_impact_ratio_ci_low: Real | None = None
    scoring_impact_ratio_ci_high: Real | None = None
    passes_four_fifths: bool | None = None

    def estimate(self, name: str) -> Estimate:
        return _estimate(self, name)


class ComplianceRow(_ComplianceBase):
    """One group's impact ratios: four-fifths (to the highest selection rate) and Local Law 144 style."""


class Compliance(Record):
    """A slice's impact-ratio table and how its references were chosen."""

    table: list[ComplianceRow] = Field(default_factory=list)
    four_fifths_reference: str | None = None
    ll144_reference: str | None = None
    scoring_reference: str | None = None
    impact_threshold: Real | None = None
    small_category_share: Real | None = None
    excluded_rows: int | None = None
    excluded_weight: Real | None = None


class Undefined(Record):
    """Why a group's metric is undefined (``null``)."""

    group: str
    metric: str
    reason: str


class DisparityRow(Record):
    """A disparity in one convention: ``between_groups`` (max-min or min/max, as fairlearn) or ``to_reference``
    (signed, group minus reference, as AIF360), with the names of its fairlearn and AIF360 twins."""

    metric: str
    convention: Literal["between_groups", "to_reference"]
    group: str | None = None
    value: Real | None = None
    ci_low: Real | None = None
    ci_high: Real | None = None
    description: str | None = None
    fairlearn: str | None = None
    aif360: str | None = None
    ideal: Real | None = None
    mergeable: bool | None = None

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.value, self.ci_low, self.ci_high)


class RocCurve(Record):
    fpr: list[Real]
    tpr: list[Real]


class CalibrationCurve(Record):
    mean_score: list[Real | None]
    positive_share: list[Real | None]
    weight: list[Real]


class Curves(Record):
    """Plotted series of a slice with scores, by group label."""

    roc: dict[str, RocCurve | None] = Field(default_factory=dict)
    calibration: dict[str, CalibrationCurve] = Field(default_factory=dict)


class SliceRecord(Record):
    """One sensitive column, or the intersection of several (``name`` joined by `` × ``)."""

    name: str
    columns: list[str] = Field(default_factory=list)
    reference: str | None = None
    reference_rule: str | None = None
    excluded_rows: int = 0
    excluded_weight: Real | None = None
    groups: list[GroupRow] = Field(default_factory=list)  # type: ignore[valid-type]
    undefined: list[Undefined] = Field(default_factory=list)
    disparities: list[DisparityRow] = Field(default_factory=list)
    compliance: Compliance | None = None
    curves: Curves | None = None

    @property
    def is_intersection(self) -> bool:
        return len(self.columns) > 1

    def disparity(self, metric: str, convention: str = "between_groups") -> DisparityRow | None:
        """The ``metric`` disparity in ``convention`` (the first one, for ``between_groups``), or None."""
        return next((d for d in self.disparities if d.metric == metric and d.convention == convention), None)


class OverallRow(Record):
    """A metric on every audited row, missing attributes included."""

    metric: str
    value: Real | None = None
    ci_low: Real | None = None
    ci_high: Real | None = None
    description: str | None = None
    mergeable: bool | None = None

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.value, self.ci_low, self.ci_high)


class BootstrapRecord(Record):
    """How the intervals were computed."""

    n_boot: int
    ci_level: Real
    seed: int | None = None
    method: Literal["counts", "rows"] | None = None
    interval: str | None = None
    stratified_by: list[str] = Field(default_factory=list)
    note: str | None = None


class AuditConfigRecord(Record):
    """The audit's settings (:class:`fairprompt.metrics.AuditConfig`)."""

    n_boot: int | None = None
    ci_level: Real = 0.95
    seed: int | None = None
    min_group_size: int = 30
    impact_threshold: Real = 0.8
    small_category_share: Real = 0.02
    bootstrap: Literal["counts", "rows"] | None = None
    n_bins: int | None = None
    reference: dict[str, str] = Field(default_factory=dict)


class CountTableRecord(Record):
    """The finest count table (the single source of every count-based metric): per group of ``columns``, the
    ``k`` row counts and ``w`` weights of each cell of ``cells``."""

    columns: list[str]
    cells: list[str]
    groups: list[list[str | None]]
    k: list[list[int]]
    w: list[list[Real]]


class DegenerateReasonRecord(Record):
    """One reason the model is degenerate (:mod:`fairprompt.metrics.degenerate`)."""

    code: Literal["constant", "constant_in_group", "no_better_than_majority"]
    message: str


class DegenerateThresholds(Record):
    min_group_rows: int
    min_label_share: Real
    max_decision_share: Real


class DegenerateRecord(Record):
    """Whether the audited model is degenerate, and why: a fairness verdict on it says nothing."""

    degenerate: bool
    reasons: list[DegenerateReasonRecord] = Field(default_factory=list)
    accuracy: Real | None = None
    majority_accuracy: Real | None = None
    margin: Real | None = None
    margin_ci_low: Real | None = None
    margin_ci_high: Real | None = None
    bound: Literal["bootstrap", "point"] | None = None
    thresholds: DegenerateThresholds | None = None
    note: str | None = None


class ScoreHistogramRecord(Record):
    """How the score metrics came from merged score histograms (an out-of-core or Spark audit)."""

    bins: int
    note: str


class AuditRecord(Record):
    """An audit (:meth:`fairprompt.metrics.Audit.to_dict`): the before-audit, or a repaired model's after-audit."""

    n_rows: int
    weighted: bool = False
    has_scores: bool = False
    median_score: Real | None = None
    metrics: list[str] = Field(default_factory=list)
    metric_descriptions: dict[str, str] = Field(default_factory=dict)
    mergeable: dict[str, bool] = Field(default_factory=dict)
    bootstrap: BootstrapRecord | None = None
    config: AuditConfigRecord = Field(default_factory=AuditConfigRecord)
    overall: list[OverallRow] = Field(default_factory=list)
    degenerate: DegenerateRecord | None = None
    """None only in a record migrated without a count table."""
    score_histogram: ScoreHistogramRecord | None = None
    """Set when the score metrics came from histograms (their bounds are in the group rows); None: exact."""
    slices: list[SliceRecord] = Field(default_factory=list)
    count_table: CountTableRecord | None = None

    @property
    def is_degenerate(self) -> bool:
        return self.degenerate is not None and self.degenerate.degenerate

    def slice(self, name: str) -> SliceRecord | None:
        """The slice called ``name``, or None."""
        return next((s for s in self.slices if s.name == name), None)

    def overall_metric(self, metric: str) -> OverallRow | None:
        return next((o for o in self.overall if o.metric == metric), None)
