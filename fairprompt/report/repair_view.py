"""What every repair section shares: the section itself (:class:`MitigationView`), the before/after comparison on
the test split, the repaired model's test scores and integrity checks, and the section of a repair that failed or
did not run. The method-specific parts live in :mod:`~fairprompt.report.fairij_view` and
:mod:`~fairprompt.report.reprogram_view`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fairprompt.report.format import (
    DASH,
    Estimate,
    Fact,
    command_line,
    fmt_change,
    fmt_num,
    fmt_seconds,
    label,
    settings,
    short_hash,
)
from fairprompt.results.repairs import AfterModel, FailedRepair, NotRunRepair, ShippedRepairRef
from fairprompt.results.repairs import ComparisonRow as ComparisonRecord

if TYPE_CHECKING:
    from fairprompt.report.fairij_view import FairIJCurve, FlaggedGroups, FlaggedRow, ValidationChange
    from fairprompt.report.model_view import TrainingCurve
    from fairprompt.report.reprogram_view import ReprogramView

MITIGATION_TITLES: dict[str, str] = {"fairij": "FairIJ repair", "reprogram": "FairReprogram"}
"""Section title of each repair method (unknown names get a title from the name)."""


def repair_title(name: str) -> str:
    return MITIGATION_TITLES.get(name, name.replace("_", " ").capitalize())


@dataclass(frozen=True)
class ComparisonRow:
    """One headline metric on the test split, before and after the repair (each audit's own interval)."""

    slice: str
    metric: str
    label: str
    ideal: float | None
    before: Estimate
    after: Estimate
    change: float | None

    @property
    def change_text(self) -> str:
        return fmt_change(self.change)

    @property
    def direction(self) -> str:
        """``closer to ideal``, ``further from ideal`` or ``unchanged``; empty when it cannot be told."""
        return direction(self.before.value, self.after.value, self.ideal)


def direction(before: float | None, after: float | None, ideal: float | None) -> str:
    """Whether ``after`` is closer to ``ideal`` than ``before`` (``closer to ideal``, ``further from ideal``,
    ``unchanged``); empty when one is missing."""
    if before is None or after is None or ideal is None:
        return ""
    gap_before, gap_after = round(abs(before - ideal), 9), round(abs(after - ideal), 9)
    if gap_after < gap_before:
        return "closer to ideal"
    if gap_after > gap_before:
        return "further from ideal"
    return "unchanged"


@dataclass(frozen=True)
class MitigationView:
    """One ``mitigations[]`` entry as the report shows it: what ran, before/after on the test split, the method's
    own parts (FairIJ's validation curve and flagged rows, or :class:`ReprogramView`), the files and timings; or
    why it failed or did not run."""

    index: int
    anchor: str
    name: str
    title: str
    status: str
    error: str | None
    group: str | None
    created: str | None
    command: str | None
    facts: tuple[Fact, ...]
    comparison: tuple[ComparisonRow, ...]
    scores: tuple[Fact, ...]
    """Test accuracy and AUC before and after, and what changed in the model."""
    changes: tuple[ValidationChange, ...]
    curve: FairIJCurve | None
    flagged_groups: tuple[FlaggedGroups, ...]
    top_flagged: tuple[FlaggedRow, ...]
    top_total: int
    group_columns: tuple[str, ...]
    feature_columns: tuple[str, ...]
    verification: tuple[Fact, ...]
    checks: tuple[tuple[str, ...], ...]
    """Verification rows: rows removed, predicted and actual change of F and of U."""
    artifacts: tuple[tuple[str, str], ...]
    timings: tuple[tuple[str, str], ...]
    config: tuple[tuple[str, str], ...]
    mode: str | None
    chosen_k: int | None
    chosen_text: str
    append_curve: TrainingCurve | None
    """Mode ``append``: the training curve of the appended tokens."""
    reprogram: ReprogramView | None = None
    """A ``reprogram`` entry: the FairReprogram section (:mod:`fairprompt.report.reprogram_view`); None otherwise."""
    warnings: tuple[str, ...] = ()
    """What the method warned of (FairIJ: what the one-class guard changed); a reprogram entry keeps its own."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def slices(self) -> tuple[str, ...]:
        """Slices of the comparison table, in order (``overall`` last)."""
        names = list(dict.fromkeys(r.slice for r in self.comparison if r.slice != "overall"))
        return tuple(names + (["overall"] if any(r.slice == "overall" for r in self.comparison) else []))


def comparison_rows(rows: list[ComparisonRecord] | None) -> tuple[ComparisonRow, ...]:
    """The before/after table of a repair (the change computed when it was not recorded)."""
    out = []
    for r in rows or ():
        before = Estimate.of(r.before, r.before_ci_low, r.before_ci_high, reason="undefined in the before-audit")
        after = Estimate.of(r.after, r.after_ci_low, r.after_ci_high, reason="undefined in the after-audit")
        change = r.change
        if change is None and before.value is not None and after.value is not None:
            change = after.value - before.value
        out.append(ComparisonRow(slice=r.slice, metric=r.metric, label=label(r.metric), ideal=r.ideal, before=before,
                                 after=after, change=change))
    return tuple(out)


def test_scores(after: AfterModel | None) -> list[Fact]:
    """Test accuracy and AUC before → after, with the change, from an ``after_model`` block."""
    scores: list[Fact] = []
    if after is None:
        return scores
    rows = after.test_rows
    for what, b, a, change in (("accuracy", after.before_test_accuracy, after.test_accuracy, after.accuracy_change),
                               ("AUC", after.before_test_auc, after.test_auc, after.auc_change)):
        if change is None and a is not None and b is not None:
            change = a - b
        if a is not None or b is not None:
            scores.append(Fact(f"Test {what}", f"{fmt_num(b)} → {fmt_num(a)}", note=f"change {fmt_change(change)}"
                               + (f" on the same {rows:,} test rows" if rows is not None else "")))
    return scores


def after_facts(after: AfterModel | None) -> tuple[Fact, ...]:
    """What changed in the model, the backbone check and the decision threshold of a repaired model."""
    if after is None:
        return ()
    facts = []
    if after.changed is not None:
        facts.append(Fact("What changed", after.changed))
    if after.backbone_unchanged is not None:
        sha = after.backbone_sha256
        facts.append(Fact("Backbone", "unchanged (checked)" if after.backbone_unchanged else "CHANGED",
                          note=f"weights sha256 {short_hash(sha)}" if sha else "", title=sha))
    if after.threshold is not None:
        facts.append(Fact("Decision threshold", f"{after.threshold:g}"))
    return tuple(facts)


def with_shipped(view: MitigationView, shipped: ShippedRepairRef | None) -> MitigationView:
    """A repair loaded from a shipped artifact says so first in its facts: when, by which command and in how long it
    was trained."""
    if shipped is None or not shipped.loaded:
        return view
    when = f" on {shipped.trained_at[:10]}" if shipped.trained_at else ""
    how = f" by {command_line(shipped.trained_by)}" if shipped.trained_by else ""
    took = f" in {fmt_seconds(shipped.seconds)}" if shipped.seconds is not None else ""
    fact = Fact("Trained", f"loaded from the shipped artifact, trained{when}{how}{took}", summary=True, title=shipped.key,
                note=f"not trained in this run; key {short_hash(shipped.key)}" + (f", {shipped.machine}" if shipped.machine
                                                                                  else ""))
    return replace(view, facts=(fact, *view.facts))


def unfinished_view(index: int, m: FailedRepair | NotRunRepair) -> MitigationView:
    """The section of a repair that failed (its message) or did not run (its settings)."""
    config = m.config or {}
    group = m.group or config.get("group")
    return MitigationView(
        index=index, anchor=f"mitigation-{index}", name=m.name, title=repair_title(m.name), status=m.status,
        error=m.error if isinstance(m, FailedRepair) else None, group=None if group is None else str(group),
        created=m.created if isinstance(m, FailedRepair) else None,
        command=command_line(m.command) if isinstance(m, FailedRepair) else None,
        facts=(), comparison=(), scores=(), changes=(), curve=None, flagged_groups=(), top_flagged=(), top_total=0,
        group_columns=(), feature_columns=(), verification=(), checks=(), artifacts=(), timings=(),
        config=settings(config), mode=None if config.get("mode") is None else str(config["mode"]), chosen_k=None,
        chosen_text=DASH, append_curve=None,
    )
