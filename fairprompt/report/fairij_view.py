"""What the report shows of a FairIJ repair: what ran, predicted against one-step changes on the validation split,
the trade-off curve over k, the flagged training rows by group and the most harmful ones, the verification, the
files and timings; from the typed repair record alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fairprompt.report.format import (
    DASH,
    MEASURES,
    Fact,
    command_line,
    fairness_name,
    fmt_change,
    fmt_general,
    fmt_int,
    fmt_num,
    fmt_seconds,
    fmt_share,
    fmt_weight,
    settings,
    short_hash,
    source_text,
)
from fairprompt.report.model_view import TrainingCurve, history_curve
from fairprompt.report.repair_view import (
    MitigationView,
    after_facts,
    comparison_rows,
    repair_title,
    test_scores,
)
from fairprompt.results.fairij import FairIJRecord, FlaggedGroup, Verification
from fairprompt.results.fairij import FlaggedRow as FlaggedRecord
from fairprompt.results.repairs import FailedRepair, FairIJRepair, NotRunRepair

MEASURE_ROWS: dict[str, str] = {
    "demographic_parity": "all rows",
    "equal_opportunity": "rows with a favourable true label",
    "equalized_odds": "rows with a favourable true label, plus the same gap on rows with an unfavourable one",
}
MODES: dict[str, str] = {
    "ij": "one-step IJ update of the task prompt and head (no refit)",
    "append": "new soft tokens appended and trained on the down-weighted rows (task prompt and head frozen)",
}
TIMINGS: dict[str, str] = {
    "scoring_seconds": "Scoring (influence of every training row)",
    "jacobian_seconds": "of which margin Jacobians",
    "selection_seconds": "Selection (one-step updates along the curve)",
    "repair_seconds": "Repair",
    "verify_seconds": "Verification (paired fine-tuning)",
    "total_seconds": "FairIJ in all",
}
ARTIFACT_NAMES: dict[str, str] = {
    "prompt": "appended prompt (JSON)", "prompt_tensors": "appended prompt (safetensors)",
    "adapter": "repaired task prompt and head", "record": "FairIJ record (fairij.json)",
}
TOP_SHOWN = 20
"""Flagged training rows shown in the report (results.json keeps up to 20)."""


@dataclass(frozen=True)
class ValidationChange:
    """A validation quantity (F or U): before, the predicted and the one-step change, and the repaired model's value."""

    symbol: str
    what: str
    note: str
    before: float | None
    predicted: float | None
    one_step: float | None
    after: float | None

    @property
    def name(self) -> str:
        """``F: demographic parity gap of sex``."""
        return f"{self.symbol}: {self.what}"

    @property
    def texts(self) -> tuple[str, str, str, str]:
        return (fmt_num(self.before, 4), fmt_change(self.predicted, 4), fmt_change(self.one_step, 4),
                fmt_num(self.after, 4))


@dataclass(frozen=True)
class GridRow:
    """One grid point k in the report's table: its share, one-step validation values, and its marks."""

    k: int
    share: str
    actual_F: str
    actual_U: str
    predicted_dF: str
    predicted_dU: str
    feasible: bool
    one_class: str | None
    chosen: bool


@dataclass(frozen=True)
class FairIJCurve:
    """The trade-off as k grows, on the validation split (``None`` where a value is missing or diverged)."""

    k: tuple[int, ...]
    fraction: tuple[float | None, ...]
    actual_F: tuple[float | None, ...]
    predicted_F: tuple[float | None, ...]
    actual_U: tuple[float | None, ...]
    predicted_U: tuple[float | None, ...]
    feasible: tuple[bool, ...]
    chosen_k: int | None
    n_train: int | None
    utility_limit: float | None
    """Validation U at k = 0 plus the utility budget (the feasibility line), when both are known."""
    fairness_label: str
    selection: str
    one_class: tuple[str | None, ...] = ()
    """Per point: why its one-step validation decisions predict one class (never chosen, k = 0 aside), or None."""
    predicted_dF: tuple[float | None, ...] = ()
    predicted_dU: tuple[float | None, ...] = ()

    @property
    def rows(self) -> tuple[GridRow, ...]:
        """The grid as the report's table shows it, one row per k."""
        def at(values: tuple[Any, ...], i: int) -> Any:
            return values[i] if i < len(values) else None

        return tuple(GridRow(k=k, share=fmt_share(at(self.fraction, i)), actual_F=fmt_num(at(self.actual_F, i), 4),
                             actual_U=fmt_num(at(self.actual_U, i), 4), predicted_dF=fmt_change(at(self.predicted_dF, i), 4),
                             predicted_dU=fmt_change(at(self.predicted_dU, i), 4), feasible=bool(at(self.feasible, i)),
                             one_class=at(self.one_class, i), chosen=k == self.chosen_k)
                     for i, k in enumerate(self.k))

    @property
    def one_class_points(self) -> tuple[int, ...]:
        """The k whose one-step validation decisions predict one class."""
        return tuple(k for k, reason in zip(self.k, self.one_class) if reason)

    @property
    def has_fairness(self) -> bool:
        return any(v is not None for v in self.actual_F + self.predicted_F)

    @property
    def has_utility(self) -> bool:
        return any(v is not None for v in self.actual_U + self.predicted_U)


@dataclass(frozen=True)
class FlaggedGroupRow:
    """Training rows of one group and label: how many were flagged and how much weight was removed."""

    column: str
    group: str
    label: str
    train_rows: int | None
    flagged_rows: int | None
    removed_weight: float | None

    @property
    def share(self) -> float | None:
        return None if not self.train_rows or self.flagged_rows is None else self.flagged_rows / self.train_rows


@dataclass(frozen=True)
class FlaggedGroups:
    """The flagged-row table of one sensitive column."""

    column: str
    repaired: bool
    rows: tuple[FlaggedGroupRow, ...]

    @property
    def total_flagged(self) -> int:
        return sum(r.flagged_rows or 0 for r in self.rows)

    @property
    def total_train(self) -> int:
        return sum(r.train_rows or 0 for r in self.rows)


@dataclass(frozen=True)
class FlaggedRow:
    """One of the most harmful flagged training rows, with what the model reads of it."""

    rank: int | None
    row_id: str
    influence_fairness: float | None
    influence_utility: float | None
    weight: float | None
    group: str | None
    groups: dict[str, str | None]
    label: str | None
    favourable: bool | None
    features: dict[str, str | None]


def _validation_changes(f: FairIJRecord, measure: str | None, group: str | None) -> tuple[ValidationChange, ...]:
    before, after = f.before, f.after
    predicted, one_step = f.predicted_change, f.one_step_change

    def pick(block: Any, name: str) -> float | None:
        return None if block is None else getattr(block, name)

    rows = (
        ValidationChange(symbol="F", what=fairness_name(measure, group),
                         note=f"largest gap in mean predicted P(favourable) between groups, on "
                              f"{MEASURE_ROWS.get(str(measure), 'the validation rows')}; 0 is parity",
                         before=pick(before, "fairness"), predicted=pick(predicted, "fairness"),
                         one_step=pick(one_step, "fairness"), after=pick(after, "fairness")),
        ValidationChange(symbol="U", what="validation loss", note="mean cross-entropy on the validation rows; lower is better",
                         before=pick(before, "utility"), predicted=pick(predicted, "utility"),
                         one_step=pick(one_step, "utility"), after=pick(after, "utility")),
    )
    return tuple(r for r in rows if any(v is not None for v in (r.before, r.predicted, r.one_step, r.after)))


def _curve(f: FairIJRecord, measure: str | None, group: str | None) -> FairIJCurve | None:
    points = f.curve
    if not points:
        return None
    first = next((p for p in points if p.k == 0), None)

    def base(name: str, key: str) -> float | None:
        value = None if f.before is None else getattr(f.before, name)
        if value is None and first is not None:
            value = getattr(first, key)
        if value is None:  # any point with both the value and its change
            for p in points:
                v, d = getattr(p, key), getattr(p, key.replace("actual_", "actual_d"))
                if v is not None and d is not None:
                    return v - d
        return value

    def plus(b: float | None, d: float | None) -> float | None:
        return None if b is None or d is None else b + d

    F0, U0 = base("fairness", "actual_F"), base("utility", "actual_U")
    selection = f.selection or "actual"
    n_train = f.n_train
    chosen = next((p.k for p in points if p.chosen is True), f.chosen_k)
    budget = f.utility_budget
    return FairIJCurve(
        k=tuple(p.k for p in points),
        fraction=tuple(p.fraction if p.fraction is not None else p.k / n_train if n_train else None for p in points),
        actual_F=tuple(p.actual_F for p in points), predicted_F=tuple(plus(F0, p.predicted_dF) for p in points),
        actual_U=tuple(p.actual_U for p in points), predicted_U=tuple(plus(U0, p.predicted_dU) for p in points),
        feasible=tuple(bool({"predicted": p.feasible_predicted, "accuracy": p.feasible_accuracy}.get(
                           selection, p.feasible_actual)) or p.k == 0
                       for p in points),
        chosen_k=chosen, n_train=n_train,
        utility_limit=None if U0 is None or budget is None or selection == "accuracy" else U0 + budget,
        fairness_label=fairness_name(measure, group), selection=selection,
        one_class=tuple(p.one_class or None for p in points),
        predicted_dF=tuple(p.predicted_dF for p in points), predicted_dU=tuple(p.predicted_dU for p in points),
    )


def _label_text(value: int | None) -> str:
    return {1: "favourable (1)", 0: "unfavourable (0)"}.get(value, DASH if value is None else str(value))  # type: ignore[arg-type]


def _flagged_groups(rows: list[FlaggedGroup] | None, group: str | None) -> tuple[FlaggedGroups, ...]:
    by_column: dict[str, list[FlaggedGroupRow]] = {}
    for r in rows or ():
        by_column.setdefault(r.column, []).append(FlaggedGroupRow(
            column=r.column, group=DASH + " (missing)" if r.group is None else r.group, label=_label_text(r.label),
            train_rows=r.train_rows, flagged_rows=r.flagged_rows, removed_weight=r.removed_weight))
    order = sorted(by_column, key=lambda c: c != group)  # the repaired column first, then as recorded
    return tuple(FlaggedGroups(column=c, repaired=c == group, rows=tuple(by_column[c])) for c in order)


def _top_flagged(rows: list[FlaggedRecord]) -> tuple[FlaggedRow, ...]:
    return tuple(FlaggedRow(rank=r.rank, row_id=str(r.row_id), influence_fairness=r.I_F, influence_utility=r.I_U,
                            weight=r.weight, group=r.group, groups=dict(r.groups), label=r.label,
                            favourable=r.favourable, features=dict(r.features)) for r in rows)


def _setting(f: FairIJRecord | None, config: dict[str, Any], key: str) -> Any:
    """A setting as FairIJ recorded it, else as configured."""
    value = None if f is None else getattr(f, key, None)
    return config.get(key) if value is None else value


def _influence_facts(f: FairIJRecord, config: dict[str, Any]) -> list[Fact]:
    influence = f.influence
    if influence is None:
        return []
    facts: list[Fact] = []
    eigen = influence.eigen
    parts = []
    if eigen is not None and eigen.largest is not None:
        parts.append(f"eigenvalues {fmt_general(eigen.smallest)} to {fmt_general(eigen.largest)}")
    if eigen is not None and eigen.effective_rank is not None:
        parts.append(f"effective rank {fmt_int(eigen.effective_rank)}"
                     + (f" of {fmt_int(influence.p)} parameters" if influence.p is not None else ""))
    if eigen is not None and eigen.above_damping is not None:
        parts.append(f"{fmt_int(eigen.above_damping)} above the damping")
    if influence.curvature is not None or parts:
        facts.append(Fact("Curvature", influence.curvature or DASH, note="; ".join(parts)))
    requested = influence.damping_requested if influence.damping_requested is not None else config.get("damping")
    if requested is not None or influence.damping is not None:
        raised = influence.damping_raised
        note = ("raised automatically: the matrix was numerically singular at the requested damping" if raised
                else "used as requested" if raised is False else "")
        facts.append(Fact("Damping", f"requested {fmt_general(requested)}, used {fmt_general(influence.damping)}",
                          note=note))
    extra = []
    if influence.l2 is not None:
        extra.append(f"L2 {influence.l2:g}")
    if influence.mean_gradient_norm is not None:
        extra.append(f"mean gradient norm at the trained prompt {fmt_general(influence.mean_gradient_norm)}")
    if extra:
        facts.append(Fact("Trained objective", "; ".join(extra), note="the gradient norm is 0 at an exact optimum"))
    for d in influence.fairness_detail.gaps if influence.fairness_detail else ():
        if d.group_means:
            text = ", ".join(f"{g} {fmt_num(v)}" for g, v in d.group_means.items())
            pair = d.pair or []
            facts.append(Fact("Mean P(favourable) before", text,
                              note=(d.rows or "") + (f"; largest gap between {pair[0]} and {pair[1]}" if len(pair) == 2 else "")))
    return facts


def _facts(m: FairIJRepair | FailedRepair | NotRunRepair, f: FairIJRecord | None, config: dict[str, Any],
           group: str | None) -> list[Fact]:
    """What ran: mode, measure, group, selection, budget, the chosen k, the curvature and damping."""
    facts: list[Fact] = []
    mode, measure = _setting(f, config, "mode"), _setting(f, config, "measure")
    if mode is not None:
        facts.append(Fact("Mode", str(mode), note=MODES.get(str(mode), "")))
    if measure is not None:
        facts.append(Fact("Fairness measure", MEASURES.get(str(measure), str(measure)),
                          note=f"validation gap F of {group}, on {MEASURE_ROWS.get(str(measure), 'the validation rows')}"
                          if group else "", code=(str(measure),)))
    if group is not None:
        facts.append(Fact("Repaired column", group, note="the sensitive column whose gap is reduced"))
    selection = _setting(f, config, "selection")
    rule = None if f is None else f.rule
    if selection is not None or rule is not None:
        facts.append(Fact("Selection", str(selection or DASH), note=rule or ""))
    budget = _setting(f, config, "utility_budget")
    if selection == "accuracy":
        drop = _setting(f, config, "max_accuracy_drop")
        if drop is not None:
            facts.append(Fact("Accuracy budget", f"{drop * 100:g} pt",
                              note="the most validation accuracy a grid point may lose against k = 0"))
    elif budget is not None:
        facts.append(Fact("Utility budget", f"{budget:g}", note="largest accepted rise of the validation loss U"))
    max_fraction = _setting(f, config, "max_fraction")
    if max_fraction is not None:
        facts.append(Fact("Largest share considered", fmt_share(max_fraction), note="max_fraction of the training rows"))
    if f is not None and (f.weighting is not None or f.graded is not None):
        facts.append(Fact("Weighting", "graded" if f.graded else "binary (rows removed outright)" if f.graded is False
                          else DASH, note=f.weighting or ""))
    if f is not None and f.chosen_k is not None:
        k, n = f.chosen_k, f.n_train
        fraction = f.chosen_fraction if f.chosen_fraction is not None else k / n if n else None
        value = f"k = {k:,}" + (f" of {n:,} training rows" if n is not None else "") + (
            f" ({fmt_share(fraction)})" if fraction is not None else "")
        note = "nothing down-weighted: no grid point improved F within the budget" if k == 0 else ""
        facts.append(Fact("Chosen", value, note=note, summary=True))
    if f is not None and (f.flagged_rows is not None or f.removed_weight is not None):
        facts.append(Fact("Flagged rows", fmt_int(f.flagged_rows), note=f"total weight removed {fmt_weight(f.removed_weight)}"))
    if f is not None:
        facts += _influence_facts(f, config)
    append = None if f is None else f.append
    if append is not None:
        parts = [f"{fmt_int(append.tokens)} tokens"] if append.tokens is not None else []
        if append.init is not None:
            parts.append(f"init {append.init}")
        if append.training is not None and append.training.max_epochs is not None:
            parts.append(f"up to {fmt_int(append.training.max_epochs)} epochs")
        facts.append(Fact("Appended prompt", ", ".join(parts) or DASH,
                          note="; ".join(x for x in (append.trained, append.weights) if x)))
    if isinstance(m, FairIJRepair):
        if m.before_audit is not None:
            facts.append(Fact("Before-audit", m.before_audit))
        tp = m.task_prompt
        if tp is not None and (tp.source is not None or tp.cache_key is not None):
            facts.append(Fact("Task prompt repaired", source_text(tp.source),
                              note=f"cache key {short_hash(tp.cache_key)}" if tp.cache_key else "", title=tp.cache_key))
    seed = _setting(f, config, "seed")
    if seed is not None:
        facts.append(Fact("Seed", str(seed)))
    if f is not None and f.split_used_for_selection is not None:
        facts.append(Fact("Split used for selection", f.split_used_for_selection,
                          note="the test split is used only by the after-audit"))
    return facts


def _verification(v: Verification | None) -> tuple[tuple[Fact, ...], tuple[tuple[str, ...], ...]]:
    if v is None:
        return (), ()
    facts = []
    if v.method is not None:
        facts.append(Fact("Method", v.method))
    if v.epochs is not None or v.steps is not None:
        facts.append(Fact("Fine-tuning", f"{fmt_int(v.epochs)} epochs, {fmt_int(v.steps)} steps"))
    drift = v.control_drift
    if drift is not None:
        facts.append(Fact("Control drift", f"F {fmt_change(drift.fairness, 4)}, U {fmt_change(drift.utility, 4)}",
                          note="control run (nothing removed) minus the trained prompt; subtracted from every check"))
    if v.pearson_fairness is not None:
        facts.append(Fact("Correlation (F)", fmt_num(v.pearson_fairness), note="Pearson r of predicted and actual change of F"))
    if v.seconds is not None:
        facts.append(Fact("Time", fmt_seconds(v.seconds)))
    checks = tuple((fmt_int(c.rows), fmt_change(c.predicted_dF, 4), fmt_change(c.actual_dF, 4),
                    fmt_change(c.predicted_dU, 4), fmt_change(c.actual_dU, 4)) for c in v.checks)
    return tuple(facts), checks


def _artifacts(m: FairIJRepair, f: FairIJRecord | None) -> tuple[tuple[str, str], ...]:
    outputs = m.outputs
    files: dict[str, str] = {}
    if outputs is not None and outputs.influence_csv is not None:
        files["influence scores (one row per training row)"] = outputs.influence_csv
    if outputs is not None and outputs.artifact_dir is not None:
        files["repaired prompt folder"] = outputs.artifact_dir
    recorded = (outputs.artifacts if outputs is not None else {}) or (f.artifacts if f is not None else {})
    for name, path in recorded.items():
        files.setdefault(ARTIFACT_NAMES.get(name, name), path)
    return tuple(files.items())


def _timings(m: FairIJRepair, f: FairIJRecord | None) -> tuple[tuple[str, str], ...]:
    rows = [(TIMINGS.get(k, k.replace("_seconds", "").replace("_", " ")), fmt_seconds(v))
            for k, v in (f.timings if f is not None else {}).items() if v is not None]
    if m.seconds is not None:
        rows.append(("Whole mitigation (with test predictions and the after-audit)", fmt_seconds(m.seconds)))
    return tuple(rows)


def fairij_view(index: int, m: FairIJRepair | FailedRepair | NotRunRepair) -> MitigationView:
    """The report section of a FairIJ entry (``ok``, ``failed`` or ``not_run``)."""
    config = m.config or {}
    f = m.fairij if isinstance(m, FairIJRepair) else None
    group = m.group or (None if config.get("group") is None else str(config["group"]))
    measure = _setting(f, config, "measure")
    k = None if f is None else f.chosen_k
    n = None if f is None else f.n_train
    fraction = None if f is None else f.chosen_fraction
    if fraction is None and k is not None and n:
        fraction = k / n
    chosen_text = DASH if k is None else f"k = {k:,}" + (f" ({fmt_share(fraction)} of the training rows)"
                                                         if fraction is not None else "")
    finished = isinstance(m, FairIJRepair)
    verification, checks = _verification(None if f is None else f.verification)
    top = _top_flagged(f.top_flagged) if f is not None else ()
    shown = top[:TOP_SHOWN]
    append_curve: TrainingCurve | None = history_curve(f.append.history) if f is not None and f.append else None
    return MitigationView(
        index=index, anchor=f"mitigation-{index}", name=m.name, title=repair_title(m.name), status=m.status,
        error=m.error if isinstance(m, FailedRepair) else None, group=group,
        created=None if isinstance(m, NotRunRepair) else m.created,
        command=None if isinstance(m, NotRunRepair) else command_line(m.command),
        facts=tuple(_facts(m, f, config, group)),
        comparison=comparison_rows(m.comparison) if finished else (),
        scores=tuple(test_scores(m.after_model)) + after_facts(m.after_model) if finished else (),
        changes=_validation_changes(f, measure, group) if f is not None else (),
        curve=_curve(f, measure, group) if f is not None else None,
        flagged_groups=_flagged_groups(m.flagged_by_group, group) if finished else (),
        top_flagged=shown, top_total=len(top),
        group_columns=tuple(dict.fromkeys(c for r in shown for c in r.groups)),
        feature_columns=tuple(dict.fromkeys(c for r in shown for c in r.features)),
        verification=verification, checks=checks,
        artifacts=_artifacts(m, f) if finished else (), timings=_timings(m, f) if finished else (),
        config=settings(config), mode=None if _setting(f, config, "mode") is None else str(_setting(f, config, "mode")),
        chosen_k=k, chosen_text=chosen_text, append_curve=append_curve, warnings=tuple(f.warnings) if f is not None else (),
    )
