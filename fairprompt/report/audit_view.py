"""What the report shows of an audit's slices: group tables with footnoted undefined cells, disparities in both
conventions, the impact-ratio tables and the four-fifths verdict, from the typed audit record alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fairprompt.metrics.compare import HEADLINE
from fairprompt.report.format import Estimate, label
from fairprompt.results.audit import AuditRecord, OverallRow, SliceRecord
from fairprompt.results.audit import Compliance as ComplianceRecord
from fairprompt.results.audit import DisparityRow as DisparityRecord

GROUP_METRICS: tuple[str, ...] = ("selection_rate", "base_rate", "tpr", "fpr", "ppv", "accuracy", "balanced_accuracy")
SCORE_COLUMNS: tuple[str, ...] = ("auc", "brier", "ece", "scoring_rate")
MORE_METRICS: tuple[str, ...] = ("tnr", "fnr", "npv", "fdr", "for")

UNDEFINED_DISPARITY = "undefined: fewer than two groups have this rate defined, or the reference rate is 0"


@dataclass(frozen=True)
class Footnote:
    number: int
    reason: str
    cells: tuple[tuple[str, str], ...]  # (group, metric label)


@dataclass(frozen=True)
class GroupRow:
    group: str
    n: int | None
    weight: float | None
    share: float | None
    small: bool
    cells: dict[str, Estimate]


@dataclass(frozen=True)
class DisparityRow:
    metric: str
    label: str
    description: str
    convention: str
    group: str | None
    estimate: Estimate
    ideal: float | None
    mergeable: bool
    fairlearn: str | None
    aif360: str | None


@dataclass(frozen=True)
class ReferenceBlock:
    """The ``to_reference`` rows of one disparity (one per non-reference group)."""

    metric: str
    label: str
    description: str
    ideal: float | None
    mergeable: bool
    fairlearn: str | None
    aif360: str | None
    rows: tuple[DisparityRow, ...]


@dataclass(frozen=True)
class ComplianceRow:
    group: str
    n: int | None
    share: float | None
    small_category: bool
    selection_rate: float | None
    impact_ratio: Estimate
    passes: bool
    ll144_impact_ratio: Estimate
    scoring_rate: float | None
    scoring_impact_ratio: Estimate


@dataclass(frozen=True)
class Compliance:
    rows: tuple[ComplianceRow, ...]
    four_fifths_reference: str | None
    ll144_reference: str | None
    scoring_reference: str | None
    impact_threshold: float
    small_category_share: float
    excluded_rows: int
    excluded_weight: float
    has_scoring: bool

    @property
    def small_categories(self) -> tuple[ComplianceRow, ...]:
        return tuple(r for r in self.rows if r.small_category)


@dataclass(frozen=True)
class Verdict:
    """``pass`` when every group's impact ratio (to the highest selection rate) reaches the threshold, else ``review``."""

    status: Literal["pass", "review"]
    threshold: float
    reference: str | None
    below: tuple[tuple[str, Estimate], ...]
    undefined: tuple[str, ...]
    uncertain: tuple[tuple[str, Estimate], ...]
    worst: tuple[str, Estimate] | None
    single_group: bool
    degenerate: tuple[str, ...] = ()
    """Why the audited model is degenerate (then the status is ``review`` whatever the impact ratios say)."""

    @property
    def worst_text(self) -> str:
        """``lowest impact ratio 0.260 [0.218, 0.308] (Female)``."""
        if self.worst is None:
            return "impact ratio undefined" if self.undefined else "no impact ratio recorded"
        return f"lowest impact ratio {self.worst[1].text} ({self.worst[0]})"


@dataclass(frozen=True)
class SliceView:
    index: int
    anchor: str
    name: str
    columns: tuple[str, ...]
    is_intersection: bool
    reference: str
    reference_rule: str
    excluded_rows: int
    excluded_weight: float
    groups: tuple[GroupRow, ...]
    notes: tuple[Footnote, ...]
    headline: dict[str, DisparityRow]
    verdict: Verdict
    small_groups: tuple[GroupRow, ...]
    between: tuple[DisparityRow, ...]
    to_reference: tuple[ReferenceBlock, ...]
    compliance: Compliance
    record: SliceRecord


def _groups(s: SliceRecord, metrics: Sequence[str]) -> tuple[tuple[GroupRow, ...], tuple[Footnote, ...]]:
    reasons = {(u.group, u.metric): u.reason for u in s.undefined}
    numbers: dict[str, int] = {}
    cells_by_reason: dict[str, list[tuple[str, str]]] = {}
    rows = []
    for g in s.groups:
        cells = {}
        for m in metrics:
            recorded = g.estimate(m)
            reason = note = None
            if Estimate.of(recorded.value).value is None:
                reason = reasons.get((g.group, m)) or "not defined for this group"
                note = numbers.setdefault(reason, len(numbers) + 1)
                cells_by_reason.setdefault(reason, []).append((g.group, label(m)))
            cells[m] = Estimate.of(recorded.value, recorded.ci_low, recorded.ci_high, reason=reason, note=note)
        rows.append(GroupRow(group=g.group, n=g.n, weight=g.weight, share=g.share, small=bool(g.small_group), cells=cells))
    notes = tuple(Footnote(number, reason, tuple(cells_by_reason[reason])) for reason, number in numbers.items())
    return tuple(rows), notes


def disparity_estimate(d: DisparityRecord | OverallRow) -> Estimate:
    """A disparity (or overall metric) with its interval, and why it is undefined when it is."""
    return Estimate.of(d.value, d.ci_low, d.ci_high, reason=UNDEFINED_DISPARITY)


def _disparity(d: DisparityRecord) -> DisparityRow:
    return DisparityRow(metric=d.metric, label=label(d.metric), description=d.description or "", convention=d.convention,
                        group=d.group, estimate=disparity_estimate(d), ideal=d.ideal, mergeable=bool(d.mergeable),
                        fairlearn=d.fairlearn, aif360=d.aif360)


def compliance_view(s: SliceRecord, *, threshold: float, share: float) -> Compliance:
    """The impact-ratio table of a slice (``threshold`` and ``share``: the audit's, when the slice lacks them)."""
    comp = s.compliance or ComplianceRecord()
    rows = tuple(ComplianceRow(
        group=r.group, n=r.n, share=r.share, small_category=bool(r.small_category), selection_rate=r.selection_rate,
        impact_ratio=Estimate.of(r.impact_ratio, r.impact_ratio_ci_low, r.impact_ratio_ci_high,
                                 reason="no group has a positive selection rate"),
        passes=bool(r.passes_four_fifths),
        ll144_impact_ratio=Estimate.of(r.ll144_impact_ratio, r.ll144_impact_ratio_ci_low, r.ll144_impact_ratio_ci_high,
                                       reason="no eligible category has a positive selection rate"),
        scoring_rate=r.scoring_rate,
        scoring_impact_ratio=Estimate.of(r.scoring_impact_ratio, r.scoring_impact_ratio_ci_low,
                                         r.scoring_impact_ratio_ci_high,
                                         reason="no eligible category scores above the median"),
    ) for r in comp.table)
    return Compliance(
        rows=rows, four_fifths_reference=comp.four_fifths_reference, ll144_reference=comp.ll144_reference,
        scoring_reference=comp.scoring_reference,
        impact_threshold=threshold if comp.impact_threshold is None else float(comp.impact_threshold),
        small_category_share=share if comp.small_category_share is None else float(comp.small_category_share),
        excluded_rows=comp.excluded_rows if comp.excluded_rows is not None else s.excluded_rows,
        excluded_weight=float(comp.excluded_weight if comp.excluded_weight is not None else s.excluded_weight or 0.0),
        has_scoring=any("scoring_rate" in r.model_fields_set for r in comp.table),
    )


def degenerate_reasons(audit: AuditRecord | None) -> tuple[str, ...]:
    """Why the model of ``audit`` is degenerate, in words (empty when it is not, or was not checked)."""
    if audit is None or audit.degenerate is None:
        return ()
    return tuple(r.message for r in audit.degenerate.reasons)


def verdict(comp: Compliance, *, degenerate: Sequence[str] = ()) -> Verdict:
    """The four-fifths verdict of an impact-ratio table (``review`` for a degenerate model, with the reasons)."""
    threshold = comp.impact_threshold
    below, undefined, uncertain = [], [], []
    worst: tuple[str, Estimate] | None = None
    for r in comp.rows:
        est = r.impact_ratio
        if est.value is None:
            undefined.append(r.group)
            continue
        if worst is None or est.value < worst[1].value:  # type: ignore[operator]
            worst = (r.group, est)
        if est.value < threshold:
            below.append((r.group, est))
        elif est.low is not None and est.low < threshold:
            uncertain.append((r.group, est))
    status: Literal["pass", "review"] = "review" if below or undefined or not comp.rows or degenerate else "pass"
    return Verdict(status=status, threshold=threshold, reference=comp.four_fifths_reference, below=tuple(below),
                   undefined=tuple(undefined), uncertain=tuple(uncertain), worst=worst, single_group=len(comp.rows) == 1,
                   degenerate=tuple(degenerate))


def slice_verdict(s: SliceRecord, *, threshold: float, share: float, degenerate: Sequence[str] = ()) -> Verdict:
    return verdict(compliance_view(s, threshold=threshold, share=share), degenerate=degenerate)


def slice_view(index: int, s: SliceRecord, *, metrics: Sequence[str], threshold: float, share: float,
               degenerate: Sequence[str] = ()) -> SliceView:
    """The report section of one slice."""
    groups, notes = _groups(s, metrics)
    disparities = [_disparity(d) for d in s.disparities]
    between = tuple(d for d in disparities if d.convention == "between_groups")
    blocks: dict[str, list[DisparityRow]] = {}
    for d in disparities:
        if d.convention == "to_reference":
            blocks.setdefault(d.metric, []).append(d)
    to_reference = tuple(
        ReferenceBlock(metric=m, label=rows[0].label, description=rows[0].description, ideal=rows[0].ideal,
                       mergeable=rows[0].mergeable, fairlearn=rows[0].fairlearn, aif360=rows[0].aif360, rows=tuple(rows))
        for m, rows in blocks.items()
    )
    comp = compliance_view(s, threshold=threshold, share=share)
    return SliceView(
        index=index, anchor=f"slice-{index}", name=s.name, columns=tuple(s.columns), is_intersection=s.is_intersection,
        reference=str(s.reference), reference_rule=s.reference_rule or "", excluded_rows=s.excluded_rows,
        excluded_weight=float(s.excluded_weight or 0.0), groups=groups, notes=notes,
        headline={d.metric: d for d in between if d.metric in HEADLINE}, verdict=verdict(comp, degenerate=degenerate),
        small_groups=tuple(g for g in groups if g.small), between=between, to_reference=to_reference,
        compliance=comp, record=s,
    )
