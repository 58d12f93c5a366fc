"""The report's first screen: what was audited, what was found, what was changed, and whether it helped.

:func:`build_summary` reads a results dictionary (and the :class:`~fairprompt.report.view.Overview` built from
it) and picks one *headline disparity*: the measure and group the first mitigation with status ``ok`` (else the
first at all) was configured to repair (``demographic_parity`` of ``sex`` -> the demographic parity difference
of the ``sex`` slice), else the largest
between-groups difference of a single sensitive column.  It returns the headline before and after each
mitigation, with intervals, the accuracy cost (``after_model.accuracy_change``) and the four-fifths verdict of
each audit, failed and unrun mitigations with their message, plain sentences that say it in words, and the
points of the accuracy-fairness plot (the model before, each repaired model, each baseline that records the
headline).  Only results.json is read; user strings stay as they are and are escaped by the renderers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fairprompt.report.view import (
    DASH, Estimate, _compliance, _float, _map, _row_estimate, _seq, _str, _verdict, fmt_change, fmt_num, label,
)

if TYPE_CHECKING:
    from fairprompt.report.view import MitigationView, Overview

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


def fmt_points(x: Any) -> str:
    """A change of a share in percentage points: ``+0.1 pt``, ``−0.4 pt``, ``±0.0 pt``; a dash when missing."""
    value = _float(x)
    if value is None:
        return DASH
    d = round(100.0 * value, 1)
    return f"{'−' if d < 0 else '+' if d > 0 else '±'}{abs(d):.1f} pt"


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

    @property
    def text(self) -> str:
        """``lowest impact ratio 0.260 [0.218, 0.308] (Female)``."""
        if self.worst is None:
            return "impact ratio undefined" if self.undefined else "no impact ratio recorded"
        return f"lowest impact ratio {self.worst.text} ({self.worst_group})"


def _rule_check(s: Mapping[str, Any] | None, *, threshold: float, share: float) -> RuleCheck | None:
    if not s or not _map(s.get("compliance")).get("table"):
        return None
    vd = _verdict(_compliance(s, threshold, share))
    return RuleCheck(status=vd.status, threshold=vd.threshold, worst_group=None if vd.worst is None else vd.worst[0],
                     worst=None if vd.worst is None else vd.worst[1], below=tuple(g for g, _ in vd.below),
                     undefined=vd.undefined)


def _review_slices(audit: Mapping[str, Any], *, threshold: float, share: float) -> tuple[str, ...]:
    out = []
    for s in _seq(audit.get("slices")):
        if isinstance(s, Mapping) and _verdict(_compliance(s, threshold, share)).status == "review":
            out.append(str(s.get("name")))
    return tuple(out)


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


def _slice_index(audit: Mapping[str, Any], group: str | None) -> Mapping[str, Any] | None:
    if group is None:
        return None
    for s in _seq(audit.get("slices")):
        if isinstance(s, Mapping) and (s.get("name") == group or list(_seq(s.get("columns"))) == [group]):
            return s
    return None


def _by_name(audit: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return next((s for s in _seq(audit.get("slices")) if isinstance(s, Mapping) and s.get("name") == name), None)


def _between(s: Mapping[str, Any] | None, metric: str) -> Mapping[str, Any] | None:
    if not s:
        return None
    return next((d for d in _seq(s.get("disparities")) if isinstance(d, Mapping) and d.get("metric") == metric
                 and d.get("convention") == "between_groups"), None)


def _measure(m: Mapping[str, Any]) -> str | None:
    config = _map(m.get("config"))
    for block in (config, _map(m.get("fairij")), _map(_map(m.get("reprogram")).get("config"))):
        if block.get("measure") is not None:
            return str(block["measure"])
    return None


def _group(m: Mapping[str, Any], sensitive: Sequence[str]) -> str | None:
    group = m.get("group") or _map(m.get("config")).get("group")
    if group is None and sensitive:
        return sensitive[0]
    return _str(group)


def _pick_headline(results: Mapping[str, Any], v: Overview) -> Headline | None:
    audit = _map(results.get("audit"))
    entries = [m for m in _seq(results.get("mitigations")) if isinstance(m, Mapping)]
    ordered = [m for m in entries if m.get("status") == "ok"] + [m for m in entries if m.get("status") != "ok"]
    for m in ordered:
        measure, group = _measure(m), _group(m, v.sensitive)
        metric = MEASURE_METRIC.get(str(measure))
        s = _slice_index(audit, group)
        d = _between(s, metric) if metric else None
        if s is not None and d is not None:
            title = v.mitigations[entries.index(m)].title if entries.index(m) < len(v.mitigations) else str(m.get("name"))
            return Headline(slice=str(s.get("name")), metric=str(metric), label=label(str(metric)),
                            ideal=_float(d.get("ideal")),
                            reason=f"the gap {title} was configured to reduce")
    best: tuple[float, Mapping[str, Any], Mapping[str, Any]] | None = None
    slices = [s for s in _seq(audit.get("slices")) if isinstance(s, Mapping)]
    single = [s for s in slices if len(_seq(s.get("columns"))) <= 1] or slices
    for s in single:
        for metric in LARGEST_CANDIDATES:
            d = _between(s, metric)
            value = None if d is None else _float(d.get("value"))
            if value is not None and (best is None or abs(value) > best[0]):
                best = (abs(value), s, d)
    if best is None:
        return None
    _, s, d = best
    scope = " of a single sensitive column" if len(single) < len(slices) else ""
    return Headline(slice=str(s.get("name")), metric=str(d.get("metric")), label=label(str(d.get("metric"))),
                    ideal=_float(d.get("ideal")),
                    reason=f"the largest demographic parity or equalized odds difference{scope}")


def _direction(before: float | None, after: float | None, ideal: float | None) -> str:
    if before is None or after is None or ideal is None:
        return ""
    b, a = round(abs(before - ideal), 9), round(abs(after - ideal), 9)
    return "closer to ideal" if a < b else "further from ideal" if a > b else "unchanged"


def _overlap(a: Estimate | None, b: Estimate | None) -> bool | None:
    if a is None or b is None or not (a.has_ci and b.has_ci and a.defined and b.defined):
        return None
    return not (a.high < b.low or b.high < a.low)  # type: ignore[operator]


def _overall_accuracy(audit: Mapping[str, Any]) -> Estimate | None:
    row = next((o for o in _seq(audit.get("overall")) if isinstance(o, Mapping) and o.get("metric") == "accuracy"), None)
    return None if row is None else _row_estimate(row)


def _accuracy_ci(acc: float | None, est: Estimate | None) -> tuple[float | None, float | None]:
    """The audit's interval of accuracy, when the audit's accuracy is the accuracy shown (same rows)."""
    if acc is None or est is None or est.value is None or abs(est.value - acc) > 1e-9:
        return None, None
    return est.low, est.high


def _comparison_estimate(m: Mapping[str, Any], slice_name: str, metric: str) -> Estimate | None:
    for r in _seq(m.get("comparison")):
        if isinstance(r, Mapping) and r.get("slice") == slice_name and r.get("metric") == metric:
            value = _float(r.get("after"))
            if value is not None:
                return Estimate(value, _float(r.get("after_ci_low")), _float(r.get("after_ci_high")))
    return None


def _method_name(mv: MitigationView) -> str:
    """``FairReprogram (λ = 1)``, ``FairIJ repair (k = 10)``, or the title alone."""
    if mv.reprogram is not None:
        chosen = mv.reprogram.chosen_text
    else:
        chosen = DASH if mv.chosen_k is None else f"k = {mv.chosen_k:,}"
    return mv.title if chosen == DASH else f"{mv.title} ({chosen})"


def _groups(audit: Mapping[str, Any]) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[tuple[str, int], ...]]:
    single, inter = [], []
    for s in _seq(audit.get("slices")):
        if not isinstance(s, Mapping):
            continue
        names = tuple(str(g.get("group")) for g in _seq(s.get("groups")) if isinstance(g, Mapping))
        if len(_seq(s.get("columns"))) > 1:
            inter.append((str(s.get("name")), len(names)))
        else:
            single.append((str(s.get("name")), names))
    return tuple(single), tuple(inter)


def _model_text(v: Overview) -> tuple[str, str | None]:
    if v.model_view is not None:
        return v.model_view.title, "model"
    if v.model:
        raw = dict(v.model)
        kind = raw.get("kind") or raw.get("name") or raw.get("description")
        return (str(kind).replace("_", " ") if kind else "recorded (see Provenance)"), None
    return "not recorded: the predictions were supplied, so fairprompt does not know the model", None


def build_summary(results: Mapping[str, Any], v: Overview) -> SummaryView:
    """The first screen of the report (see the module docstring)."""
    audit = _map(results.get("audit"))
    model = _map(results.get("model"))
    threshold = _float(v.config.get("impact_threshold")) or 0.8
    share = _float(v.config.get("small_category_share")) or 0.02
    headline = _pick_headline(results, v)
    groups, intersections = _groups(audit)
    entries = [m for m in _seq(results.get("mitigations")) if isinstance(m, Mapping)]
    ok_after = [_map(m.get("after_model")) for m in entries if m.get("status") == "ok"]

    # The model as audited: its test accuracy where the run recorded one, else the audit's overall accuracy.
    overall_before = _overall_accuracy(audit)
    acc_before = next((_float(a.get("before_test_accuracy")) for a in ok_after
                       if _float(a.get("before_test_accuracy")) is not None), None)
    if acc_before is None:
        acc_before = _float(model.get("test_accuracy"))
    test_accuracy = acc_before is not None
    if acc_before is None and overall_before is not None:
        acc_before = overall_before.value
    accuracy_label = "test accuracy" if test_accuracy else "accuracy on the audited rows"

    s_before = _by_name(audit, headline.slice) if headline else None
    d_before = _between(s_before, headline.metric) if headline else None
    est_before = _row_estimate(d_before) if d_before else None
    rows: list[SummaryRow] = [SummaryRow(
        kind="before", method="Before (as audited)" if entries else "As audited", anchor="summary", group=None, estimate=est_before, change=None,
        direction="", overlap=None, accuracy=acc_before, accuracy_change=None, accuracy_budget=None,
        rule=_rule_check(s_before, threshold=threshold, share=share),
        review_slices=_review_slices(audit, threshold=threshold, share=share))]
    points: list[TradeoffPoint] = []
    if headline and est_before is not None and est_before.value is not None and acc_before is not None:
        low, high = _accuracy_ci(acc_before, overall_before)
        points.append(TradeoffPoint("before (as audited)", "before", est_before.value, acc_before,
                                    est_before.low, est_before.high, low, high))

    for m, mv in zip(entries, v.mitigations):
        method = _method_name(mv)
        if mv.status == "failed":
            rows.append(SummaryRow(kind="failed", method=mv.title, anchor=mv.anchor, group=mv.group, estimate=None,
                                   change=None, direction="", overlap=None, accuracy=None, accuracy_change=None,
                                   accuracy_budget=None, rule=None, review_slices=None,
                                   error=mv.error or "no error message was recorded"))
            continue
        if not mv.ok:
            rows.append(SummaryRow(kind="not_run", method=mv.title, anchor=mv.anchor, group=mv.group, estimate=None,
                                   change=None, direction="", overlap=None, accuracy=None, accuracy_change=None,
                                   accuracy_budget=None, rule=None, review_slices=None))
            continue
        after_audit = _map(m.get("after"))
        after_model = _map(m.get("after_model"))
        s_after = _by_name(after_audit, headline.slice) if headline else None
        d_after = _between(s_after, headline.metric) if headline else None
        est_after = _row_estimate(d_after) if d_after else (
            _comparison_estimate(m, headline.slice, headline.metric) if headline else None)
        change = (None if est_after is None or est_before is None or est_after.value is None or est_before.value is None
                  else est_after.value - est_before.value)
        acc_after = _float(after_model.get("test_accuracy"))
        overall_after = _overall_accuracy(after_audit)
        if acc_after is None and not test_accuracy and overall_after is not None:
            acc_after = overall_after.value
        acc_change = _float(after_model.get("accuracy_change"))
        if acc_change is None and acc_after is not None and acc_before is not None:
            acc_change = acc_after - acc_before
        config = _map(m.get("config"))
        budget = _float(config.get("max_accuracy_drop"))
        notes: list[str] = []
        if mv.group and headline and mv.group != headline.slice:
            notes.append(f"repairs {mv.group}, not {headline.slice}")
        r = mv.reprogram
        if r is not None and r.rule_met is False:
            notes.append("rule not met: no λ > 0 kept the accuracy within the budget, so the most accurate λ was taken")
        after_thr = _float(_map(after_audit.get("config")).get("impact_threshold")) or threshold
        rows.append(SummaryRow(
            kind="after", method=method, anchor=mv.anchor, group=mv.group, estimate=est_after, change=change,
            direction=_direction(None if est_before is None else est_before.value,
                                 None if est_after is None else est_after.value, headline.ideal if headline else None),
            overlap=_overlap(est_before, est_after), accuracy=acc_after, accuracy_change=acc_change,
            accuracy_budget=budget, rule=_rule_check(s_after, threshold=after_thr, share=share),
            review_slices=_review_slices(after_audit, threshold=after_thr, share=share) if after_audit.get("slices") else None,
            notes=tuple(notes)))
        if est_after is not None and est_after.value is not None and acc_after is not None:
            low, high = _accuracy_ci(acc_after, overall_after)
            points.append(TradeoffPoint(f"after {method}", "after", est_after.value, acc_after, est_after.low,
                                        est_after.high, low, high))
        if headline and headline.metric in BASELINE_METRICS and mv.group == headline.slice:
            points.extend(_baseline_points(m, headline.metric, own=mv.name, known=points))

    return SummaryView(
        model=_model_text(v)[0], model_anchor=_model_text(v)[1], data_source=_str(v.data.get("source")), rows=v.rows,
        split=_str(v.data.get("split")), groups=groups, intersections=intersections, headline=headline,
        rows_table=tuple(rows), statements=tuple(_statements(headline, rows, v.ci_percent, accuracy_label)),
        points=tuple(points), accuracy_label=accuracy_label, threshold=threshold, ci_percent=v.ci_percent,
        n_slices=len(v.slices), has_mitigations=bool(entries),
    )


def _baseline_points(m: Mapping[str, Any], metric: str, *, own: str, known: Sequence[TradeoffPoint]) -> list[TradeoffPoint]:
    """Baselines with accuracy and the headline; the untriggered model and the mitigation's own row are the
    before and after points already, and so is any row with the same two values as a point shown."""
    out = []
    for b in _seq(m.get("baselines")):
        if not isinstance(b, Mapping):
            continue
        method = str(b.get("method") or DASH)
        acc, x = _float(b.get("test_accuracy")), _float(b.get(metric))
        if acc is None or x is None:
            continue
        lower = method.lower()
        if lower.startswith(("untriggered", "before", "unrepaired")) or lower.startswith((own, "fair" + own)):
            continue
        if any(abs(p.accuracy - acc) < 1e-9 and abs(p.disparity - x) < 1e-9 for p in list(known) + out):
            continue
        out.append(TradeoffPoint(method, "baseline", x, acc, note=str(b.get("description") or "")))
    return out


def _statements(headline: Headline | None, rows: Sequence[SummaryRow], ci_percent: str, accuracy_label: str) -> list[str]:
    before = rows[0]
    out: list[str] = []
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
