"""The report's first screen: what was audited, what was found, what was changed, and whether it helped.

:func:`build_summary` reads the typed results record (and the slice and repair sections built from it) and
picks one *headline disparity*: the measure and group the first mitigation with status ``ok`` (else the
first at all) was configured to repair (``demographic_parity`` of ``sex`` -> the demographic parity difference
of the ``sex`` slice), else the largest
between-groups difference of a single sensitive column.  It returns the headline before and after each
mitigation, with intervals, the accuracy cost (``after_model.accuracy_change``) and the four-fifths verdict of
each audit, failed and unrun mitigations with their message, plain sentences that say it in words, and the
points of the accuracy-fairness plot (the model before, each repaired model, each baseline that records the
headline).  Only results.json is read; user strings stay as they are and are escaped by the renderers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fairprompt.report.audit_view import SliceView, degenerate_reasons, disparity_estimate, slice_verdict
from fairprompt.report.format import DASH, Estimate, fmt_change, fmt_num, fmt_points, label
from fairprompt.report.repair_view import MitigationView, direction
from fairprompt.results.audit import AuditRecord, DisparityRow, SliceRecord
from fairprompt.results.repairs import FairIJRepair, ReprogramRepair
from fairprompt.results.run import Results

MEASURE_METRIC: dict[str, str] = {
    "demographic_parity": "demographic_parity_difference",
    "equal_opportunity": "equal_opportunity_difference",
    "equalized_odds": "equalized_odds_difference",
}
"""The between-groups disparity that measures each mitigation's ``measure`` on the test split."""

LARGEST_CANDIDATES: tuple[str, ...] = ("demographic_parity_difference", "equalized_odds_difference")
"""Without a mitigation, the headline is the largest of these (differences, ideal 0) over single-column slices."""

BASELINE_METRICS: tuple[str, ...] = ("demographic_parity_difference", "equalized_odds_difference")
"""The disparities a ``baselines[]`` row records (of the mitigation's group, on the test split)."""



@dataclass(frozen=True)
class RuleCheck:
    """The four-fifths rule on the headline slice of one audit: ``review`` when a group's impact ratio is below
    the threshold or cannot be computed."""

    status: Literal["pass", "review"]
    threshold: float
    worst_group: str | None
    worst: Estimate | None
    below: tuple[str, ...]
    undefined: tuple[str, ...]
    degenerate: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """``lowest impact ratio 0.260 [0.218, 0.308] (Female)``; for a degenerate model, that first."""
        if self.degenerate:
            ratio = "" if self.worst is None else f"; lowest impact ratio {self.worst.text} ({self.worst_group})"
            return f"degenerate model: {'; '.join(self.degenerate)}{ratio}"
        if self.worst is None:
            return "impact ratio undefined" if self.undefined else "no impact ratio recorded"
        return f"lowest impact ratio {self.worst.text} ({self.worst_group})"


def _rule_check(s: SliceRecord | None, *, threshold: float, share: float, degenerate: Sequence[str] = ()) -> RuleCheck | None:
    if s is None or s.compliance is None or not s.compliance.table:
        return None
    vd = slice_verdict(s, threshold=threshold, share=share, degenerate=degenerate)
    return RuleCheck(status=vd.status, threshold=vd.threshold, worst_group=None if vd.worst is None else vd.worst[0],
                     worst=None if vd.worst is None else vd.worst[1], below=tuple(g for g, _ in vd.below),
                     undefined=vd.undefined, degenerate=vd.degenerate)


def _review_slices(audit: AuditRecord, *, threshold: float, share: float) -> tuple[str, ...]:
    reasons = degenerate_reasons(audit)
    return tuple(s.name for s in audit.slices
                 if slice_verdict(s, threshold=threshold, share=share, degenerate=reasons).status == "review")


@dataclass(frozen=True)
class Headline:
    """The one disparity the first screen follows from before to after."""

    slice: str
    metric: str
    label: str
    ideal: float | None
    reason: str

    @property
    def title(self) -> str:
        """``Demographic parity difference by sex``."""
        return f"{self.label} by {self.slice}"

    @property
    def lower_is_fairer(self) -> bool:
        return self.ideal is None or self.ideal == 0


@dataclass(frozen=True)
class SummaryRow:
    """One line of the first-screen table: the model as audited, or one mitigation (ok, failed, not run)."""

    kind: Literal["before", "after", "failed", "not_run"]
    method: str
    anchor: str | None
    group: str | None
    estimate: Estimate | None
    change: float | None
    direction: str
    overlap: bool | None
    accuracy: float | None
    accuracy_change: float | None
    accuracy_budget: float | None
    rule: RuleCheck | None
    review_slices: tuple[str, ...] | None
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def change_text(self) -> str:
        return fmt_change(self.change)

    @property
    def accuracy_change_text(self) -> str:
        return fmt_points(self.accuracy_change)

    @property
    def within_budget(self) -> bool | None:
        """Whether the test accuracy fell by at most the mitigation's accuracy budget (None without both)."""
        if self.accuracy_budget is None or self.accuracy_change is None:
            return None
        return self.accuracy_change >= -self.accuracy_budget - 1e-12


@dataclass(frozen=True)
class TradeoffPoint:
    """One method in the accuracy-fairness plot: the headline disparity (x) against accuracy (y)."""

    label: str
    kind: Literal["before", "after", "baseline"]
    disparity: float
    accuracy: float
    disparity_low: float | None = None
    disparity_high: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Frontier:
    """A repair's whole grid on the test rows (``setting``, headline disparity, accuracy), in grid order."""

    label: str
    setting_name: str
    points: tuple[tuple[float, float, float], ...]


FRONTIER_METRICS: dict[str, str] = {"demographic_parity_difference": "demographic_parity_difference",
                                    "equalized_odds_difference": "equalized_odds_difference"}
"""The headline disparities a repair's frontier records (between the groups of its column)."""


def _frontier(m: FairIJRepair | ReprogramRepair, *, label: str, metric: str) -> Frontier | None:
    points = []
    for p in m.frontier or []:
        value = getattr(p, FRONTIER_METRICS[metric])
        if p.split == "test" and p.setting is not None and value is not None and p.accuracy is not None:
            points.append((float(p.setting), float(value), float(p.accuracy)))
    return Frontier(label, m.setting_name or "setting", tuple(points)) if len(points) >= 2 else None


@dataclass(frozen=True)
class SummaryView:
    """Everything the first screen shows."""

    model: str
    model_anchor: str | None
    data_source: str | None
    rows: int | None
    split: str | None
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    """Each sensitive column (single-column slice) with its groups."""
    intersections: tuple[tuple[str, int], ...]
    """Each intersection slice with its number of groups."""
    headline: Headline | None
    rows_table: tuple[SummaryRow, ...]
    statements: tuple[str, ...]
    """The findings in plain sentences (text; escaped by the renderer)."""
    points: tuple[TradeoffPoint, ...]
    accuracy_label: str
    threshold: float
    ci_percent: str
    n_slices: int
    has_mitigations: bool
    degenerate: tuple[str, ...] = ()
    """Why the model as audited is degenerate; empty when it is not."""
    model_notes: tuple[str, ...] = ()
    """The Model section's notes (constant predictor after training, accuracy below the yardstick)."""
    frontiers: tuple[Frontier, ...] = ()
    """Each repair's whole grid on the test rows (when it repairs the headline's column)."""
    decisions_file: str | None = None
    """predictions.parquet, when the run exported its decisions."""

    @property
    def split_short(self) -> str | None:
        """The split's name without its rule (``test split (5,000 rows)``); the whole text is the tooltip."""
        if self.split is None:
            return None
        head = self.split.split(":", 1)[0].strip()
        return head if head and len(head) <= 60 else self.split

    @property
    def before(self) -> SummaryRow | None:
        return next((r for r in self.rows_table if r.kind == "before"), None)

    @property
    def has_plot(self) -> bool:
        """A plot needs the model before and at least one other method with both values."""
        return self.has_mitigations and len(self.points) >= 2 and any(p.kind == "before" for p in self.points)


def _slice_of(audit: AuditRecord, group: str | None) -> SliceRecord | None:
    if group is None:
        return None
    return next((s for s in audit.slices if s.name == group or s.columns == [group]), None)


def _between(s: SliceRecord | None, metric: str) -> DisparityRow | None:
    return None if s is None else s.disparity(metric)


def _measure(m: object) -> str | None:
    config = getattr(m, "config", None) or {}
    if config.get("measure") is not None:
        return str(config["measure"])
    if isinstance(m, FairIJRepair) and m.fairij is not None and m.fairij.measure is not None:
        return m.fairij.measure
    if isinstance(m, ReprogramRepair) and m.reprogram is not None and m.reprogram.config is not None:
        return m.reprogram.config.measure
    return None


def _pick_headline(results: Results, repairs: Sequence[MitigationView], sensitive: Sequence[str]) -> Headline | None:
    audit = results.audit
    entries = results.repairs
    ordered = [m for m in entries if m.status == "ok"] + [m for m in entries if m.status != "ok"]
    for m in ordered:
        group = m.group or (m.config or {}).get("group") or (sensitive[0] if sensitive else None)
        metric = MEASURE_METRIC.get(str(_measure(m)))
        s = _slice_of(audit, None if group is None else str(group))
        d = _between(s, metric) if metric else None
        if s is not None and d is not None:
            index = entries.index(m)
            title = repairs[index].title if index < len(repairs) else m.name
            return Headline(slice=s.name, metric=str(metric), label=label(str(metric)), ideal=d.ideal,
                            reason=f"the gap {title} was configured to reduce")
    best: tuple[float, SliceRecord, DisparityRow] | None = None
    single = [s for s in audit.slices if len(s.columns) <= 1] or list(audit.slices)
    for s in single:
        for metric in LARGEST_CANDIDATES:
            d = _between(s, metric)
            value = None if d is None else Estimate.of(d.value).value
            if value is not None and (best is None or abs(value) > best[0]):
                best = (abs(value), s, d)
    if best is None:
        return None
    _, s, d = best
    scope = " of a single sensitive column" if len(single) < len(audit.slices) else ""
    return Headline(slice=s.name, metric=d.metric, label=label(d.metric), ideal=d.ideal,
                    reason=f"the largest demographic parity or equalized odds difference{scope}")


def _overlap(a: Estimate | None, b: Estimate | None) -> bool | None:
    if a is None or b is None or not (a.has_ci and b.has_ci and a.defined and b.defined):
        return None
    return not (a.high < b.low or b.high < a.low)  # type: ignore[operator]


def _overall_accuracy(audit: AuditRecord | None) -> Estimate | None:
    row = None if audit is None else audit.overall_metric("accuracy")
    return None if row is None else disparity_estimate(row)


def _accuracy_ci(acc: float | None, est: Estimate | None) -> tuple[float | None, float | None]:
    """The audit's interval of accuracy, when the audit's accuracy is the accuracy shown (same rows)."""
    if acc is None or est is None or est.value is None or abs(est.value - acc) > 1e-9:
        return None, None
    return est.low, est.high


def _comparison_estimate(m: FairIJRepair | ReprogramRepair, slice_name: str, metric: str) -> Estimate | None:
    for r in m.comparison or ():
        if r.slice == slice_name and r.metric == metric and Estimate.of(r.after).value is not None:
            return Estimate.of(r.after, r.after_ci_low, r.after_ci_high)
    return None


def _method_name(mv: MitigationView) -> str:
    """``FairReprogram (λ = 1)``, ``FairIJ repair (k = 10)``, or the title alone."""
    if mv.reprogram is not None:
        chosen = mv.reprogram.chosen_text
    else:
        chosen = DASH if mv.chosen_k is None else f"k = {mv.chosen_k:,}"
    return mv.title if chosen == DASH else f"{mv.title} ({chosen})"


def _groups(audit: AuditRecord) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[tuple[str, int], ...]]:
    single, inter = [], []
    for s in audit.slices:
        names = tuple(g.group for g in s.groups)
        if s.is_intersection:
            inter.append((s.name, len(names)))
        else:
            single.append((s.name, names))
    return tuple(single), tuple(inter)


def build_summary(results: Results, *, slices: Sequence[SliceView], repairs: Sequence[MitigationView], model: str,
                  model_anchor: str | None, rows: int | None, ci_percent: str, threshold: float,
                  share: float, model_notes: Sequence[str] = ()) -> SummaryView:
    """The first screen of the report (see the module docstring)."""
    audit = results.audit
    data = results.data
    sensitive = data.sensitive if data is not None else []
    headline = _pick_headline(results, repairs, sensitive)
    groups, intersections = _groups(audit)
    entries = results.repairs
    ok_after = [m.after_model for m in entries if isinstance(m, (FairIJRepair, ReprogramRepair)) and m.after_model]

    # The model as audited: its test accuracy where the run recorded one, else the audit's overall accuracy.
    overall_before = _overall_accuracy(audit)
    acc_before = next((a.before_test_accuracy for a in ok_after if a.before_test_accuracy is not None), None)
    if acc_before is None:
        acc_before = getattr(results.model, "test_accuracy", None)
    test_accuracy = acc_before is not None
    if acc_before is None and overall_before is not None:
        acc_before = overall_before.value
    accuracy_label = "test accuracy" if test_accuracy else "accuracy on the audited rows"

    degenerate = degenerate_reasons(audit)
    s_before = audit.slice(headline.slice) if headline else None
    d_before = _between(s_before, headline.metric) if headline else None
    est_before = disparity_estimate(d_before) if d_before else None
    table: list[SummaryRow] = [SummaryRow(
        kind="before", method="Before (as audited)" if entries else "As audited", anchor="summary", group=None,
        estimate=est_before, change=None, direction="", overlap=None, accuracy=acc_before, accuracy_change=None,
        accuracy_budget=None, rule=_rule_check(s_before, threshold=threshold, share=share, degenerate=degenerate),
        review_slices=_review_slices(audit, threshold=threshold, share=share))]
    points: list[TradeoffPoint] = []
    frontiers: list[Frontier] = []
    if headline and est_before is not None and est_before.value is not None and acc_before is not None:
        low, high = _accuracy_ci(acc_before, overall_before)
        points.append(TradeoffPoint("before (as audited)", "before", est_before.value, acc_before,
                                    est_before.low, est_before.high, low, high))

    for m, mv in zip(entries, repairs):
        method = _method_name(mv)
        if mv.status == "failed":
            table.append(SummaryRow(kind="failed", method=mv.title, anchor=mv.anchor, group=mv.group, estimate=None,
                                    change=None, direction="", overlap=None, accuracy=None, accuracy_change=None,
                                    accuracy_budget=None, rule=None, review_slices=None,
                                    error=mv.error or "no error message was recorded"))
            continue
        if not mv.ok or not isinstance(m, (FairIJRepair, ReprogramRepair)):
            table.append(SummaryRow(kind="not_run", method=mv.title, anchor=mv.anchor, group=mv.group, estimate=None,
                                    change=None, direction="", overlap=None, accuracy=None, accuracy_change=None,
                                    accuracy_budget=None, rule=None, review_slices=None))
            continue
        after_audit, after_model = m.after, m.after_model
        s_after = after_audit.slice(headline.slice) if headline and after_audit else None
        d_after = _between(s_after, headline.metric) if headline else None
        est_after = disparity_estimate(d_after) if d_after else (
            _comparison_estimate(m, headline.slice, headline.metric) if headline else None)
        change = (None if est_after is None or est_before is None or est_after.value is None or est_before.value is None
                  else est_after.value - est_before.value)
        acc_after = None if after_model is None else after_model.test_accuracy
        overall_after = _overall_accuracy(after_audit)
        if acc_after is None and not test_accuracy and overall_after is not None:
            acc_after = overall_after.value
        acc_change = None if after_model is None else after_model.accuracy_change
        if acc_change is None and acc_after is not None and acc_before is not None:
            acc_change = acc_after - acc_before
        budget = (m.config or {}).get("max_accuracy_drop")
        notes: list[str] = []
        if mv.group and headline and mv.group != headline.slice:
            notes.append(f"repairs {mv.group}, not {headline.slice}")
        r = mv.reprogram
        if r is not None and r.rule_met is False:
            notes.append("rule not met: no λ > 0 kept the accuracy within the budget, so the most accurate λ was taken")
        if degenerate:
            notes.append("repaired a degenerate model: its before/after change says little about fairness")
        after_degenerate = degenerate_reasons(after_audit)
        if after_degenerate:
            notes.append(f"the repaired model is degenerate: {'; '.join(after_degenerate)}")
        after_threshold = threshold
        if after_audit is not None and after_audit.config.impact_threshold:
            after_threshold = float(after_audit.config.impact_threshold)
        table.append(SummaryRow(
            kind="after", method=method, anchor=mv.anchor, group=mv.group, estimate=est_after, change=change,
            direction=direction(None if est_before is None else est_before.value,
                                None if est_after is None else est_after.value, headline.ideal if headline else None),
            overlap=_overlap(est_before, est_after), accuracy=acc_after, accuracy_change=acc_change,
            accuracy_budget=None if budget is None else float(budget),
            rule=_rule_check(s_after, threshold=after_threshold, share=share, degenerate=after_degenerate),
            review_slices=_review_slices(after_audit, threshold=after_threshold, share=share)
            if after_audit is not None and after_audit.slices else None,
            notes=tuple(notes)))
        if est_after is not None and est_after.value is not None and acc_after is not None:
            low, high = _accuracy_ci(acc_after, overall_after)
            points.append(TradeoffPoint(f"after {method}", "after", est_after.value, acc_after, est_after.low,
                                        est_after.high, low, high))
        if headline and headline.metric in FRONTIER_METRICS and mv.group == headline.slice and acc_after is not None:
            found = _frontier(m, label=method, metric=headline.metric)
            if found is not None:
                frontiers.append(found)
        if headline and headline.metric in BASELINE_METRICS and mv.group == headline.slice and isinstance(m, ReprogramRepair):
            points.extend(_baseline_points(m, headline.metric, own=mv.name, known=points))

    return SummaryView(
        model=model, model_anchor=model_anchor, data_source=data.source if data else None, rows=rows,
        split=data.split if data else None, groups=groups, intersections=intersections, headline=headline,
        rows_table=tuple(table),
        statements=tuple(_statements(headline, table, ci_percent, accuracy_label, degenerate=degenerate)),
        points=tuple(points), accuracy_label=accuracy_label, threshold=threshold, ci_percent=ci_percent,
        n_slices=len(slices), has_mitigations=bool(entries), degenerate=degenerate, model_notes=tuple(model_notes),
        frontiers=tuple(frontiers), decisions_file=results.decisions.file if results.decisions is not None else None,
    )


def _baseline_points(m: ReprogramRepair, metric: str, *, own: str, known: Sequence[TradeoffPoint]) -> list[TradeoffPoint]:
    """Baselines with accuracy and the headline; the untriggered model and the mitigation's own row are the
    before and after points already, and so is any row with the same two values as a point shown."""
    out: list[TradeoffPoint] = []
    for b in m.baselines or ():
        acc, x = Estimate.of(b.test_accuracy).value, Estimate.of(getattr(b, metric)).value
        if acc is None or x is None:
            continue
        lower = b.method.lower()
        if lower.startswith(("untriggered", "before", "unrepaired")) or lower.startswith((own, "fair" + own)):
            continue
        if any(abs(p.accuracy - acc) < 1e-9 and abs(p.disparity - x) < 1e-9 for p in list(known) + out):
            continue
        out.append(TradeoffPoint(b.method, "baseline", x, acc, note=b.description or ""))
    return out


def _statements(headline: Headline | None, rows: Sequence[SummaryRow], ci_percent: str, accuracy_label: str, *,
                degenerate: Sequence[str] = ()) -> list[str]:
    before = rows[0]
    out: list[str] = []
    if degenerate:
        out.append(f"The model as audited is degenerate ({'; '.join(degenerate)}), so its fairness verdict is REVIEW: "
                   "a model that gives (nearly) everyone the same decision can pass the four-fifths rule and still be "
                   "useless." + (" The repairs below ran on it all the same." if len(rows) > 1 else ""))
    if headline is None or before.estimate is None:
        out.append("No headline disparity was recorded (no slice has a demographic parity or equalized odds difference).")
    else:
        ideal = "" if headline.ideal is None else f"; {fmt_num(headline.ideal, 0)} is parity"
        when = "before any repair" if len(rows) > 1 else "as audited"
        sentence = f"{headline.title}: {before.estimate.text} {when} ({headline.reason}{ideal})."
        if before.rule is not None:
            sentence += (f" Four-fifths rule on {headline.slice} (impact ratio ≥ {before.rule.threshold:g}): "
                         f"{before.rule.status}, {before.rule.text}.")
        out.append(sentence)
    for r in rows[1:]:
        if r.kind == "failed":
            out.append(f"{r.method}{f' of {r.group}' if r.group else ''} failed: {r.error}. Nothing was repaired.")
            continue
        if r.kind == "not_run":
            out.append(f"{r.method}{f' of {r.group}' if r.group else ''} was not run.")
            continue
        if headline is None or before.estimate is None:
            continue
        after = r.estimate.text if r.estimate is not None else f"{DASH} (not recorded)"
        sentence = f"{headline.title}: {before.estimate.text} → {after} after {r.method}"
        if r.accuracy_change is not None:
            sentence += f", {r.accuracy_change_text} {accuracy_label}"
        sentence += "."
        if r.direction:
            sentence += f" The gap is {r.direction}" + (f" ({r.change_text})" if r.change is not None else "")
            if r.overlap is not None:
                sentence += (f"; the two {ci_percent} intervals overlap (they are not paired, so overlap neither "
                             "confirms nor rules out a real change)" if r.overlap
                             else f"; the two {ci_percent} intervals do not overlap")
            sentence += "."
        if r.rule is not None:
            sentence += f" Four-fifths rule on {headline.slice} after: {r.rule.status}, {r.rule.text}."
        if r.within_budget is not None:
            budget = fmt_points(-(r.accuracy_budget or 0))
            sentence += (f" The {accuracy_label} cost is {'within' if r.within_budget else 'beyond'} the accuracy budget "
                         f"the operating point was chosen with ({budget}, max_accuracy_drop, on the selection rows).")
        out.append(sentence)
    return out
