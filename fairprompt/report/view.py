"""What a report shows, derived from a results dictionary alone (no HTML, no plotting).

:func:`build_view` reads ``results.json`` (schema version 1, see
``docs/results-schema.md``) and returns plain dataclasses that every renderer
(HTML, Markdown) formats the same way: estimates with their intervals, the
verdict of each slice, footnotes for undefined values, disparity and compliance
rows, the model section (:class:`ModelView`) for frozen text and image models,
and one before/after section per mitigation (:class:`MitigationView`).  Nothing
here knows about models, torch or markup; user strings are kept as they are and
escaped by the renderers.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fairprompt.report.model_card import ModelCard
    from fairprompt.report.reprogram_view import ReprogramView
    from fairprompt.report.summary_view import SummaryView

HEADLINE: tuple[str, ...] = ("demographic_parity_difference", "disparate_impact", "equalized_odds_difference")
"""The between-groups disparities shown in the verdict summary."""

GROUP_METRICS: tuple[str, ...] = ("selection_rate", "base_rate", "tpr", "fpr", "ppv", "accuracy", "balanced_accuracy")
SCORE_COLUMNS: tuple[str, ...] = ("auc", "brier", "ece", "scoring_rate")
MORE_METRICS: tuple[str, ...] = ("tnr", "fnr", "npv", "fdr", "for")

LABELS: dict[str, str] = {
    "base_rate": "Base rate",
    "selection_rate": "Selection rate",
    "tpr": "TPR",
    "fpr": "FPR",
    "tnr": "TNR",
    "fnr": "FNR",
    "ppv": "PPV",
    "npv": "NPV",
    "fdr": "FDR",
    "for": "FOR",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "auc": "AUC",
    "brier": "Brier",
    "ece": "ECE",
    "scoring_rate": "Scoring rate",
    "theil_index": "Theil index",
    "generalized_entropy_index": "Generalized entropy index (α=2)",
    "demographic_parity_difference": "Demographic parity difference",
    "demographic_parity_ratio": "Demographic parity ratio",
    "disparate_impact": "Disparate impact",
    "equalized_odds_difference": "Equalized odds difference",
    "equalized_odds_difference_mean": "Equalized odds difference (mean)",
    "equal_opportunity_difference": "Equal opportunity difference",
    "average_odds_difference": "Average odds difference",
    "predictive_parity_difference": "Predictive parity difference",
    "fpr_difference": "FPR difference",
    "fnr_difference": "FNR difference",
    "accuracy_difference": "Accuracy difference",
    "between_group_theil_index": "Between-group Theil index",
    "between_group_generalized_entropy_index": "Between-group generalized entropy index (α=2)",
    "auc_difference": "AUC difference",
    "scoring_rate_difference": "Scoring rate difference",
}

DASH = "—"

DATA_KEYS = ("source", "label", "positive_label", "prediction", "score", "sensitive", "rows_audited", "split")
BOOTSTRAP_KEYS = ("n_boot", "ci_level", "seed", "method", "interval", "stratified_by", "note")
CONFIG_DEFAULTS: dict[str, Any] = {
    "n_boot": None, "ci_level": 0.95, "seed": None, "min_group_size": 30, "impact_threshold": 0.8,
    "small_category_share": 0.02, "bootstrap": None, "n_bins": None, "reference": {},
}
"""Used only where a results file lacks a setting (the audit's defaults)."""
INPUT_KEYS = ("role", "path", "sha256", "rows")


def label(name: str) -> str:
    """Display name of a metric or disparity (the key itself when unknown)."""
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _float(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def fmt_num(x: Any, digits: int = 3) -> str:
    """``0.412``; a dash for a missing or non-finite value."""
    value = _float(x)
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_int(x: Any) -> str:
    """``5,000``; a dash when missing."""
    value = _float(x)
    return DASH if value is None else f"{int(round(value)):,}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    """A share as a percentage, ``29.9%``."""
    value = _float(x)
    return DASH if value is None else f"{100.0 * value:.{digits}f}%"


def fmt_weight(x: Any) -> str:
    value = _float(x)
    return DASH if value is None else f"{value:,.2f}"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval; ``reason`` says why an undefined value is undefined."""

    value: float | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None
    note: int | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None

    @property
    def has_ci(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def value_text(self) -> str:
        return fmt_num(self.value)

    @property
    def ci_text(self) -> str:
        """``[0.401, 0.423]``, or an empty string without an interval."""
        return f"[{fmt_num(self.low)}, {fmt_num(self.high)}]" if self.has_ci and self.defined else ""

    @property
    def text(self) -> str:
        """``0.412 [0.401, 0.423]``; a dash when undefined."""
        if not self.defined:
            return DASH
        return f"{self.value_text} {self.ci_text}" if self.ci_text else self.value_text

    def __str__(self) -> str:
        return self.text


def estimate(row: Mapping[str, Any], name: str, *, reason: str | None = None, note: int | None = None) -> Estimate:
    """The estimate of metric ``name`` in a row with ``name``, ``name_ci_low`` and ``name_ci_high`` fields."""
    value = _float(row.get(name))
    return Estimate(value, _float(row.get(f"{name}_ci_low")), _float(row.get(f"{name}_ci_high")),
                    reason=reason if value is None else None, note=note if value is None else None)


def _row_estimate(row: Mapping[str, Any]) -> Estimate:
    value = _float(row.get("value"))
    return Estimate(value, _float(row.get("ci_low")), _float(row.get("ci_high")),
                    reason=None if value is not None else "undefined: fewer than two groups have this rate defined, or the reference rate is 0")


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
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Overview:
    """Everything a renderer needs, derived from one results dictionary."""

    title: str
    name: str
    created: str | None
    fairprompt_version: str | None
    schema_version: int
    command: str | None
    data: Mapping[str, Any]
    sensitive: tuple[str, ...]
    rows: int | None
    model: tuple[tuple[str, str], ...] | None
    """The ``model`` block as key/value pairs (nested values as JSON): the display of unknown kinds."""
    model_view: ModelView | None
    """The Model section, for the kinds in :data:`MODEL_KINDS`."""
    weighted: bool
    has_scores: bool
    median_score: float | None
    config: Mapping[str, Any]
    bootstrap: Mapping[str, Any]
    has_ci: bool
    ci_percent: str
    overall: tuple[tuple[str, str, Estimate], ...]
    slices: tuple[SliceView, ...]
    inputs: tuple[Mapping[str, Any], ...]
    packages: tuple[tuple[str, str | None], ...]
    seeds: tuple[tuple[str, Any], ...]
    spec_json: str | None
    group_metrics: tuple[str, ...]
    score_metrics: tuple[str, ...]
    more_metrics: tuple[str, ...]
    descriptions: Mapping[str, str]
    mitigations: tuple[MitigationView, ...] = ()
    """The before/after sections, one per ``mitigations[]`` entry (empty without mitigations)."""
    summary: SummaryView | None = None
    """The first screen (:mod:`fairprompt.report.summary_view`)."""
    model_card: ModelCard | None = None
    """The model card (:mod:`fairprompt.report.model_card`)."""
    spec_yaml: str | None = None
    """The spec as YAML, for the Provenance section."""

    @property
    def verdict(self) -> Literal["pass", "review"]:
        """``review`` when any slice needs review."""
        return "review" if any(s.verdict.status == "review" for s in self.slices) else "pass"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)


def _bool(x: Any) -> bool:
    return bool(x) if x is not None else False


def _groups(s: Mapping[str, Any], metrics: Sequence[str]) -> tuple[tuple[GroupRow, ...], tuple[Footnote, ...]]:
    reasons = {(u.get("group"), u.get("metric")): u.get("reason") for u in s.get("undefined") or ()}
    numbers: dict[str, int] = {}
    cells_by_reason: dict[str, list[tuple[str, str]]] = {}
    rows = []
    for g in s.get("groups") or ():
        group = str(g.get("group"))
        cells = {}
        for m in metrics:
            reason = None
            note = None
            if _float(g.get(m)) is None:
                reason = reasons.get((group, m)) or "not defined for this group"
                note = numbers.setdefault(reason, len(numbers) + 1)
                cells_by_reason.setdefault(reason, []).append((group, label(m)))
            cells[m] = estimate(g, m, reason=reason, note=note)
        n = _float(g.get("n"))
        rows.append(GroupRow(group=group, n=None if n is None else int(n), weight=_float(g.get("weight")),
                             share=_float(g.get("share")), small=_bool(g.get("small_group")), cells=cells))
    notes = tuple(Footnote(number, reason, tuple(cells_by_reason[reason])) for reason, number in numbers.items())
    return tuple(rows), notes


def _disparity(row: Mapping[str, Any]) -> DisparityRow:
    metric = str(row.get("metric"))
    return DisparityRow(
        metric=metric, label=label(metric), description=str(row.get("description") or ""),
        convention=str(row.get("convention")), group=None if row.get("group") is None else str(row["group"]),
        estimate=_row_estimate(row), ideal=_float(row.get("ideal")), mergeable=_bool(row.get("mergeable")),
        fairlearn=row.get("fairlearn"), aif360=row.get("aif360"),
    )


def _compliance(s: Mapping[str, Any], threshold_default: float, share_default: float) -> Compliance:
    comp = s.get("compliance") or {}
    rows = []
    has_scoring = False
    for r in comp.get("table") or ():
        has_scoring = has_scoring or "scoring_rate" in r
        rows.append(ComplianceRow(
            group=str(r.get("group")), n=None if _float(r.get("n")) is None else int(r["n"]), share=_float(r.get("share")),
            small_category=_bool(r.get("small_category")), selection_rate=_float(r.get("selection_rate")),
            impact_ratio=estimate(r, "impact_ratio", reason="no group has a positive selection rate"),
            passes=_bool(r.get("passes_four_fifths")),
            ll144_impact_ratio=estimate(r, "ll144_impact_ratio", reason="no eligible category has a positive selection rate"),
            scoring_rate=_float(r.get("scoring_rate")),
            scoring_impact_ratio=estimate(r, "scoring_impact_ratio", reason="no eligible category scores above the median"),
        ))
    threshold = _float(comp.get("impact_threshold"))
    share = _float(comp.get("small_category_share"))
    return Compliance(
        rows=tuple(rows),
        four_fifths_reference=comp.get("four_fifths_reference"), ll144_reference=comp.get("ll144_reference"),
        scoring_reference=comp.get("scoring_reference"),
        impact_threshold=threshold_default if threshold is None else threshold,
        small_category_share=share_default if share is None else share,
        excluded_rows=int(_float(comp.get("excluded_rows", s.get("excluded_rows"))) or 0),
        excluded_weight=_float(comp.get("excluded_weight", s.get("excluded_weight"))) or 0.0,
        has_scoring=has_scoring,
    )


def _verdict(comp: Compliance) -> Verdict:
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
    status: Literal["pass", "review"] = "review" if below or undefined or not comp.rows else "pass"
    return Verdict(status=status, threshold=threshold, reference=comp.four_fifths_reference, below=tuple(below),
                   undefined=tuple(undefined), uncertain=tuple(uncertain), worst=worst, single_group=len(comp.rows) == 1)


def _slice(index: int, s: Mapping[str, Any], *, metrics: Sequence[str], threshold: float, share: float) -> SliceView:
    groups, notes = _groups(s, metrics)
    disparities = [_disparity(d) for d in s.get("disparities") or ()]
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
    headline = {d.metric: d for d in between if d.metric in HEADLINE}
    comp = _compliance(s, threshold, share)
    columns = tuple(str(c) for c in s.get("columns") or ())
    return SliceView(
        index=index, anchor=f"slice-{index}", name=str(s.get("name")), columns=columns, is_intersection=len(columns) > 1,
        reference=str(s.get("reference")), reference_rule=str(s.get("reference_rule") or ""),
        excluded_rows=int(_float(s.get("excluded_rows")) or 0), excluded_weight=_float(s.get("excluded_weight")) or 0.0,
        groups=groups, notes=notes, headline=headline, verdict=_verdict(comp),
        small_groups=tuple(g for g in groups if g.small), between=between, to_reference=to_reference,
        compliance=comp, raw=s,
    )


def _spec_yaml(spec: Any) -> str | None:
    if spec is None:
        return None
    import yaml

    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def build_view(results: Mapping[str, Any]) -> Overview:
    """Derive what every renderer shows from a results dictionary (schema version 1): the sections, then the
    first-screen summary and the model card, which read the sections."""
    from fairprompt.report.model_card import build_model_card
    from fairprompt.report.summary_view import build_summary

    overview = _build_view(results)
    return replace(overview, summary=build_summary(results, overview), model_card=build_model_card(results, overview),
                   spec_yaml=_spec_yaml(results.get("spec")))


def _build_view(results: Mapping[str, Any]) -> Overview:
    audit = results.get("audit") or {}
    config = audit.get("config") or {}
    bootstrap = audit.get("bootstrap") or {}
    has_scores = _bool(audit.get("has_scores"))
    score_metrics = SCORE_COLUMNS if has_scores else ()
    metrics = GROUP_METRICS + score_metrics + MORE_METRICS
    threshold = _float(config.get("impact_threshold")) or 0.8
    share = _float(config.get("small_category_share")) or 0.02
    n_boot = int(_float(bootstrap.get("n_boot", config.get("n_boot"))) or 0)
    level = _float(bootstrap.get("ci_level", config.get("ci_level"))) or 0.95
    data = {key: None for key in DATA_KEYS} | dict(results.get("data") or {})
    bootstrap = {key: None for key in BOOTSTRAP_KEYS} | dict(bootstrap)
    config = CONFIG_DEFAULTS | {k: v for k, v in config.items() if v is not None}
    inputs = tuple({key: None for key in INPUT_KEYS} | dict(i) for i in results.get("inputs") or () if isinstance(i, Mapping))
    model = results.get("model")
    if model is not None and not isinstance(model, Mapping):
        model = {"description": model}
    command = results.get("command")
    spec = results.get("spec")
    overall = tuple(
        (str(o.get("metric")), str(o.get("description") or ""), _row_estimate(o)) for o in audit.get("overall") or ()
    )
    return Overview(
        title=str(results.get("title") or results.get("name") or "fairprompt audit"),
        name=str(results.get("name") or ""),
        created=results.get("created"),
        fairprompt_version=results.get("fairprompt_version"),
        schema_version=int(results.get("schema_version") or 1),
        command=shlex.join(str(c) for c in command) if command else None,
        data=data,
        sensitive=tuple(str(c) for c in data.get("sensitive") or ()),
        rows=None if _float(data.get("rows_audited", audit.get("n_rows"))) is None else int(data.get("rows_audited", audit.get("n_rows"))),
        model=None if not model else tuple((str(k), _text(v)) for k, v in model.items()),
        model_view=build_model_view(model),
        weighted=_bool(audit.get("weighted")),
        has_scores=has_scores,
        median_score=_float(audit.get("median_score")),
        config=config,
        bootstrap=bootstrap,
        has_ci=n_boot > 0,
        ci_percent=f"{100 * level:g}%",
        overall=overall,
        slices=tuple(_slice(i, s, metrics=metrics, threshold=threshold, share=share)
                     for i, s in enumerate(audit.get("slices") or ())),
        inputs=inputs,
        packages=tuple((str(k), v) for k, v in (results.get("packages") or {}).items()),
        seeds=tuple((str(k), v) for k, v in (results.get("seeds") or {}).items()),
        spec_json=None if spec is None else json.dumps(spec, indent=2, ensure_ascii=False),
        group_metrics=GROUP_METRICS,
        score_metrics=score_metrics,
        more_metrics=MORE_METRICS,
        descriptions=dict(audit.get("metric_descriptions") or {}),
        mitigations=build_mitigation_views(results.get("mitigations")),
    )


# The model ---------------------------------------------------------------------------------------------------------

MODEL_KINDS: tuple[str, ...] = ("frozen_text", "frozen_image")
"""Model kinds with a Model section; any other ``model`` block is shown as key/value pairs."""

SOURCES: dict[str, str] = {
    "trained in this run": "trained in this run",
    "cache": "loaded from the cache (trained by an earlier run with the same data, settings and seed)",
    "shipped with fairprompt": "shipped with fairprompt (trained once, by its authors)",
}

STOPPED_BY: dict[str, str] = {
    "max_epochs": "the epoch limit",
    "patience": "early stopping (validation loss stopped improving)",
    "early_stopping": "early stopping (validation loss stopped improving)",
}


@dataclass(frozen=True)
class Fact:
    """One row of the model's facts table: ``label``, a value, a muted ``note``.

    ``code`` lists names shown as code after the value (column names); ``block`` is
    a longer text shown on its own (an example input); ``title`` a tooltip.
    """

    label: str
    value: str
    note: str = ""
    code: tuple[str, ...] = ()
    block: str | None = None
    title: str | None = None
    summary: bool = False
    """Also listed in the Markdown summary."""


@dataclass(frozen=True)
class Score:
    """Held-out performance of one model: this one or the reference trained on the same rows."""

    name: str
    note: str
    train_rows: int | None
    test_rows: int | None
    accuracy: float | None
    auc: float | None

    @property
    def accuracy_text(self) -> str:
        return fmt_num(self.accuracy)

    @property
    def auc_text(self) -> str:
        return fmt_num(self.auc)


@dataclass(frozen=True)
class TrainingCurve:
    """Per-epoch series of the task prompt's training (``None`` where an epoch lacks a value)."""

    epochs: tuple[int, ...]
    train_loss: tuple[float | None, ...]
    val_loss: tuple[float | None, ...]
    train_accuracy: tuple[float | None, ...]
    val_accuracy: tuple[float | None, ...]
    best_epoch: int | None

    @property
    def has_loss(self) -> bool:
        return any(v is not None for v in self.train_loss + self.val_loss)

    @property
    def has_accuracy(self) -> bool:
        return any(v is not None for v in self.train_accuracy + self.val_accuracy)


@dataclass(frozen=True)
class ModelView:
    """The model section: a title line, facts, held-out scores beside the reference's, and the training curve."""

    kind: str
    title: str
    facts: tuple[Fact, ...]
    scores: tuple[Score, ...]
    curve: TrainingCurve | None
    raw: tuple[tuple[str, str], ...]

    @property
    def reference(self) -> Score | None:
        return self.scores[1] if len(self.scores) > 1 else None

    @property
    def difference(self) -> tuple[str, str] | None:
        """This model minus the reference, accuracy and AUC, signed (``−0.040``); None without a reference."""
        if len(self.scores) < 2:
            return None
        this, ref = self.scores[0], self.scores[1]
        return fmt_signed(this.accuracy, ref.accuracy), fmt_signed(this.auc, ref.auc)


def _map(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _first(block: Mapping[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present (not None) in ``block``."""
    for key in keys:
        if block.get(key) is not None:
            return block[key]
    return None


def _int(x: Any) -> int | None:
    value = _float(x)
    return None if value is None else int(round(value))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def fmt_signed(a: Any, b: Any, digits: int = 3) -> str:
    """``a - b`` with its sign (``+0.012``, ``−0.040``); a dash when either is missing."""
    x, y = _float(a), _float(b)
    if x is None or y is None:
        return DASH
    d = round(x - y, digits)
    return f"{'−' if d < 0 else '+' if d > 0 else '±'}{abs(d):.{digits}f}"


def fmt_seconds(x: Any) -> str:
    """``7.6 s``, ``2 min 05 s``, ``1 h 02 min``; a dash when missing."""
    value = _float(x)
    if value is None:
        return DASH
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_share(x: Any) -> str:
    """A small share as a percentage with two significant digits: ``0.017%``, ``1.2%``, ``35%``."""
    value = _float(x)
    if value is None:
        return DASH
    pct = 100.0 * value
    if pct == 0:
        return "0%"
    digits = max(0, 1 - int(math.floor(math.log10(abs(pct)))))
    return f"{pct:.{digits}f}%"


def _short_hash(x: Any, n: int = 12) -> str:
    text = str(x)
    return text if len(text) <= n else text[:n] + "…"


def _curve(training: Mapping[str, Any]) -> tuple[TrainingCurve | None, Mapping[str, Any]]:
    """The training curve and the block that holds it (``training.history`` for text models, else ``training``)."""
    history = _map(training.get("history"))
    holder = history if history else training
    lists = [holder[k] for k in ("epochs", "curve") if isinstance(holder.get(k), Sequence) and not isinstance(holder[k], str)]
    rows = [p for p in (lists[0] if lists else ()) if isinstance(p, Mapping)]
    if not rows:
        return None, holder
    epochs = tuple(i + 1 if _int(p.get("epoch")) is None else _int(p.get("epoch")) for i, p in enumerate(rows))
    series = lambda *keys: tuple(_float(_first(p, *keys)) for p in rows)  # noqa: E731
    curve = TrainingCurve(
        epochs=epochs, train_loss=series("train_loss", "loss"), val_loss=series("val_loss", "validation_loss"),
        train_accuracy=series("train_accuracy"), val_accuracy=series("val_accuracy", "validation_accuracy"),
        best_epoch=_int(holder.get("best_epoch")),
    )
    return (curve if curve.has_loss or curve.has_accuracy else None), holder


def _prompt_title(m: Mapping[str, Any]) -> str | None:
    """What adapts the frozen backbone, in words (``8-token soft prompt``), or None."""
    tokens = _int(m.get("prompt_tokens"))
    if m.get("task_prompt") == "none":
        return None
    if tokens:
        return f"{tokens}-token soft prompt"
    prompt = m.get("prompt")
    if isinstance(prompt, Mapping):
        prompt = prompt.get("kind") or prompt.get("name")
    if isinstance(prompt, str) and prompt:
        return prompt.replace("_", " ")
    return None


def _source(training: Mapping[str, Any]) -> str | None:
    """Where the trained part came from: ``training.source``, or ``from_cache`` as a source."""
    source = training.get("source")
    if source is None and isinstance(training.get("from_cache"), bool):
        source = "cache" if training["from_cache"] else "trained in this run"
    return None if source is None else str(source)


def _model_view(m: Mapping[str, Any]) -> ModelView:
    kind = str(m.get("kind"))
    text = _map(m.get("text"))
    splits = _map(m.get("splits"))
    training = _map(m.get("training"))
    architecture = _map(m.get("architecture"))
    curve, history = _curve(training)
    facts: list[Fact] = []

    # What the backbone is.
    backbone = m.get("backbone") if m.get("backbone") is not None else m.get("name")
    adapter = _prompt_title(m)
    if kind == "frozen_text":
        title = f"Frozen {backbone or 'text encoder'}"
        title += f" + {adapter}" if adapter else (" classifier, used as it is" if m.get("task_prompt") == "none" else "")
    else:
        name = architecture.get("name") or backbone
        title = f"Frozen {name or 'image'} classifier" + (f" + {adapter}" if adapter else "")
    sha = m.get("backbone_sha256")
    sha_note = f"weights sha256 {_short_hash(sha)}" if sha else ""
    if backbone is not None:
        facts.append(Fact("Backbone", str(backbone), note=sha_note, title=str(sha) if sha else None, summary=True))
    elif sha:
        facts.append(Fact("Backbone weights", sha_note, title=str(sha)))
    if architecture:
        details = ", ".join(f"{k} {_text(v)}" for k, v in architecture.items() if k != "name")
        facts.append(Fact("Architecture", str(architecture.get("name") or kind), note=details, summary=backbone is None))

    # Parameters: how few are trained.
    frozen = _int(_first(m, "backbone_parameters", "parameters"))
    task = _int(m.get("task_adapter_parameters"))
    extra = _int(m.get("extra_prompt_parameters"))
    trainable = _int(_first(m, "trainable_parameters", "prompt_parameters"))
    if trainable is None and (task is not None or extra is not None):
        trainable = (task or 0) + (extra or 0)
    if frozen is not None:
        facts.append(Fact("Backbone parameters", fmt_int(frozen)))
    if trainable is not None:
        total = (frozen or 0) + trainable
        share = _float(m.get("trainable_share"))
        if share is None and total:
            share = trainable / total
        value = fmt_int(trainable) + (f" of {fmt_int(total)} ({fmt_share(share)})" if frozen is not None else "")
        parts = []
        if task is not None:
            parts.append(f"task prompt and head {fmt_int(task)}")
        if extra:
            parts.append(f"fairness prompts {fmt_int(extra)}")
        facts.append(Fact("Trainable parameters", value, note="; ".join(parts), summary=True))
    if kind in MODEL_KINDS:
        if m.get("task_prompt") == "none":
            statement = "Nothing is trained: the classifier is audited as it was given, and its weights never change."
        elif kind == "frozen_text":
            statement = "The backbone's weights never change; only the soft prompt and the classification head are trained."
        elif trainable:
            statement = "The backbone's weights never change; only prompts (pixel borders or patches) are trained."
        else:
            statement = "The classifier's weights never change: it was trained once, then frozen; nothing is trained for this audit."
        facts.append(Fact("Frozen", statement, summary=True))

    # How it reads its input.
    if kind == "frozen_text":
        if m.get("task_prompt") is not None:
            facts.append(Fact("Task prompt", adapter or "none (trained classifier used as it is)",
                              note="prompt tuning (peft)" if m.get("task_prompt") == "peft" else ""))
        if m.get("pooling") is not None:
            facts.append(Fact("Pooling", str(m["pooling"])))
        if m.get("max_length") is not None:
            facts.append(Fact("Input length", f"up to {fmt_int(m['max_length'])} tokens", note="longer inputs are truncated"))
    input_size = m.get("input_size")
    if isinstance(input_size, Sequence) and not isinstance(input_size, str) and input_size:
        facts.append(Fact("Input size", " × ".join(str(s) for s in input_size) + " pixels"))
    columns = text.get("text_columns")
    if isinstance(columns, Sequence) and not isinstance(columns, str):
        sensitive = text.get("sensitive_in_text")
        note = ("" if sensitive is None else
                "sensitive columns included in the text" if sensitive else "sensitive columns left out of the text")
        facts.append(Fact("Text columns", _plural(len(columns), "column"),
                          note=note, code=tuple(str(c) for c in columns)))
    elif text.get("text_column") is not None:
        facts.append(Fact("Text column", "read as it is", code=(str(text["text_column"]),)))
    if text.get("example") is not None:
        facts.append(Fact("Example input", "first row of the data, as the model reads it", block=str(text["example"])))

    # The splits.
    if splits:
        parts = [f"{fmt_int(splits[k])} {k}" for k in ("train", "validation", "test") if _float(splits.get(k)) is not None]
        facts.append(Fact("Splits", " · ".join(parts) or DASH, note=str(splits.get("rule") or ""), summary=True))

    # Training.
    if history.get("stopping_rule") is not None:
        facts.append(Fact("Stopping rule", str(history["stopping_rule"])))
    if history.get("stopped_by") is not None:
        stopped = str(history["stopped_by"])
        facts.append(Fact("Stopped by", STOPPED_BY.get(stopped, stopped.replace("_", " ")),
                          note=f"({stopped})" if stopped in STOPPED_BY else ""))
    if curve is not None:
        facts.append(Fact("Epochs run", fmt_int(len(curve.epochs))))
    elif _float(training.get("epochs")) is not None:
        facts.append(Fact("Epochs run", fmt_int(training["epochs"])))
    best = _int(history.get("best_epoch"))
    if best is not None:
        best_loss = _float(history.get("best_val_loss"))
        facts.append(Fact("Best epoch", str(best), note=(f"validation loss {fmt_num(best_loss, 4)}; " if best_loss is not None else "")
                          + "its parameters are kept"))
    hyper = _map(_first(history, "hyper_parameters") or training.get("hyper_parameters"))
    if hyper:
        facts.append(Fact("Hyper-parameters", ", ".join(f"{k.replace('_', ' ')} {_text(v)}" for k, v in hyper.items())))
    norm = _float(history.get("final_mean_gradient_norm"))
    if norm is not None:
        facts.append(Fact("Final mean gradient norm", f"{norm:.3g}", note="norm of the mean training-loss gradient at the kept parameters (0 at an exact optimum)"))
    seconds = _first(history, "seconds", "time_s")
    if seconds is None:
        seconds = _first(training, "seconds", "time_s")
    if seconds is not None:
        world = _int(history.get("world_size"))
        source = _source(training)
        notes = ([_plural(world, "process")] if world else []) + (["measured when it was trained"] if source == "cache" else [])
        facts.append(Fact("Training time", fmt_seconds(seconds), note="; ".join(notes), summary=True))
    source = _source(training)
    if source is not None:
        key = training.get("cache_key")
        facts.append(Fact("Task prompt from" if kind == "frozen_text" else "Trained weights from",
                          SOURCES.get(str(source), str(source)), note=f"cache key {_short_hash(key)}" if key else "",
                          title=str(training.get("path") or training.get("cache_path") or key or "") or None, summary=True))
    if _float(m.get("threshold")) is not None:
        facts.append(Fact("Decision threshold", f"{_float(m['threshold']):g}", note="predicted positive when the score is at least this"))

    # Held-out performance, beside the reference trained on the same rows.
    scores: list[Score] = []
    if _float(m.get("test_accuracy")) is not None or _float(m.get("test_auc")) is not None:
        train_rows = _first(history, "train_rows")
        train_rows = _first(training, "trained_rows", "train_rows") if train_rows is None else train_rows
        train_rows = splits.get("train") if train_rows is None else train_rows
        test_rows = _first(m, "test_rows")
        test_rows = splits.get("test") if test_rows is None else test_rows
        scores.append(Score(name="This model", note="the predictions audited here", train_rows=_int(train_rows),
                            test_rows=_int(test_rows),
                            accuracy=_float(m.get("test_accuracy")), auc=_float(m.get("test_auc"))))
        ref = _map(m.get("reference"))
        if ref:
            scores.append(Score(name="Reference", note=str(ref.get("kind") or "logistic regression"),
                                train_rows=_int(ref.get("train_rows")), test_rows=_int(ref.get("test_rows")),
                                accuracy=_float(ref.get("test_accuracy")), auc=_float(ref.get("test_auc"))))
    return ModelView(kind=kind, title=title, facts=tuple(facts), scores=tuple(scores), curve=curve,
                     raw=tuple((str(k), _text(v)) for k, v in m.items()))


def build_model_view(model: Any) -> ModelView | None:
    """The Model section of a ``model`` block of a known kind (``frozen_text``, ``frozen_image``), else None."""
    if not isinstance(model, Mapping) or model.get("kind") not in MODEL_KINDS:
        return None
    return _model_view(model)


# Mitigations -------------------------------------------------------------------------------------------------------

MITIGATION_TITLES: dict[str, str] = {"fairij": "FairIJ repair", "reprogram": "FairReprogram"}
"""Section title of each mitigation (unknown names get a title from the name)."""

MEASURES: dict[str, str] = {
    "demographic_parity": "demographic parity",
    "equal_opportunity": "equal opportunity",
    "equalized_odds": "equalized odds",
}
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
TOP_SHOWN = 20
"""Flagged training rows shown in the report (results.json keeps up to 20)."""


def _seq(x: Any) -> Sequence[Any]:
    return x if isinstance(x, Sequence) and not isinstance(x, (str, bytes)) else ()


def _str(x: Any) -> str | None:
    return None if x is None else str(x)


def fmt_change(x: Any, digits: int = 3) -> str:
    """A change with its sign (``+0.012``, ``−0.040``, ``±0.000``); a dash when missing."""
    return fmt_signed(x, 0.0, digits)


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
        b, a, ideal = self.before.value, self.after.value, self.ideal
        if b is None or a is None or ideal is None:
            return ""
        gap_before, gap_after = round(abs(b - ideal), 9), round(abs(a - ideal), 9)
        if gap_after < gap_before:
            return "closer to ideal"
        if gap_after > gap_before:
            return "further from ideal"
        return "unchanged"


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
    groups: Mapping[str, str | None]
    label: str | None
    favourable: bool | None
    features: Mapping[str, str | None]


@dataclass(frozen=True)
class MitigationView:
    """One ``mitigations[]`` entry as the report shows it: what ran, before/after on the test split, the
    validation curve, the flagged rows, the files and timings; or why it failed or did not run."""

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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def slices(self) -> tuple[str, ...]:
        """Slices of the comparison table, in order (``overall`` last)."""
        names = list(dict.fromkeys(r.slice for r in self.comparison if r.slice != "overall"))
        return tuple(names + (["overall"] if any(r.slice == "overall" for r in self.comparison) else []))


def _comparison(rows: Any) -> tuple[ComparisonRow, ...]:
    out = []
    for r in _seq(rows):
        if not isinstance(r, Mapping):
            continue
        metric = str(r.get("metric"))
        before = Estimate(_float(r.get("before")), _float(r.get("before_ci_low")), _float(r.get("before_ci_high")),
                          reason=None if _float(r.get("before")) is not None else "undefined in the before-audit")
        after = Estimate(_float(r.get("after")), _float(r.get("after_ci_low")), _float(r.get("after_ci_high")),
                         reason=None if _float(r.get("after")) is not None else "undefined in the after-audit")
        change = _float(r.get("change"))
        if change is None and before.value is not None and after.value is not None:
            change = after.value - before.value
        out.append(ComparisonRow(slice=str(r.get("slice")), metric=metric, label=label(metric),
                                 ideal=_float(r.get("ideal")), before=before, after=after, change=change))
    return tuple(out)


def _fairness_name(measure: str | None, group: str | None) -> str:
    what = MEASURES.get(str(measure), str(measure or "fairness").replace("_", " "))
    return f"{what} gap of {group}" if group else f"{what} gap"


def _validation_changes(f: Mapping[str, Any], measure: str | None, group: str | None) -> tuple[ValidationChange, ...]:
    before, after = _map(f.get("before")), _map(f.get("after"))
    predicted, one_step = _map(f.get("predicted_change")), _map(f.get("one_step_change"))
    rows = (
        ValidationChange(symbol="F", what=_fairness_name(measure, group),
                         note=f"largest gap in mean predicted P(favourable) between groups, on {MEASURE_ROWS.get(str(measure), 'the validation rows')}; 0 is parity",
                         before=_float(before.get("fairness")), predicted=_float(predicted.get("fairness")),
                         one_step=_float(one_step.get("fairness")), after=_float(after.get("fairness"))),
        ValidationChange(symbol="U", what="validation loss", note="mean cross-entropy on the validation rows; lower is better",
                         before=_float(before.get("utility")), predicted=_float(predicted.get("utility")),
                         one_step=_float(one_step.get("utility")), after=_float(after.get("utility"))),
    )
    return tuple(r for r in rows if any(v is not None for v in (r.before, r.predicted, r.one_step, r.after)))


def _fairij_curve(f: Mapping[str, Any], measure: str | None, group: str | None) -> FairIJCurve | None:
    points = [p for p in _seq(f.get("curve")) if isinstance(p, Mapping) and _int(p.get("k")) is not None]
    if not points:
        return None
    before = _map(f.get("before"))
    first = next((p for p in points if _int(p.get("k")) == 0), None)

    def base(name: str, key: str) -> float | None:
        value = _float(before.get(name))
        if value is None and first is not None:
            value = _float(first.get(key))
        if value is None:  # any point with both the value and its change
            for p in points:
                v, d = _float(p.get(key)), _float(p.get(key.replace("actual_", "actual_d")))
                if v is not None and d is not None:
                    return v - d
        return value

    def plus(b: float | None, d: Any) -> float | None:
        d = _float(d)
        return None if b is None or d is None else b + d

    F0, U0 = base("fairness", "actual_F"), base("utility", "actual_U")
    selection = str(f.get("selection") or "actual")
    feasible_key = "feasible_predicted" if selection == "predicted" else "feasible_actual"
    n_train = _int(f.get("n_train"))
    chosen = next((_int(p.get("k")) for p in points if p.get("chosen") is True), _int(f.get("chosen_k")))
    budget = _float(f.get("utility_budget"))
    return FairIJCurve(
        k=tuple(_int(p.get("k")) or 0 for p in points),
        fraction=tuple(_float(p.get("fraction")) if _float(p.get("fraction")) is not None
                       else (_int(p.get("k")) or 0) / n_train if n_train else None for p in points),
        actual_F=tuple(_float(p.get("actual_F")) for p in points),
        predicted_F=tuple(plus(F0, p.get("predicted_dF")) for p in points),
        actual_U=tuple(_float(p.get("actual_U")) for p in points),
        predicted_U=tuple(plus(U0, p.get("predicted_dU")) for p in points),
        feasible=tuple(bool(p.get(feasible_key)) or _int(p.get("k")) == 0 for p in points),
        chosen_k=chosen, n_train=n_train, utility_limit=None if U0 is None or budget is None else U0 + budget,
        fairness_label=_fairness_name(measure, group), selection=selection,
    )


def _label_text(x: Any) -> str:
    value = _int(x)
    return {1: "favourable (1)", 0: "unfavourable (0)"}.get(value, DASH if x is None else str(x))  # type: ignore[arg-type]


def _flagged_groups(rows: Any, group: str | None) -> tuple[FlaggedGroups, ...]:
    by_column: dict[str, list[FlaggedGroupRow]] = {}
    for r in _seq(rows):
        if not isinstance(r, Mapping):
            continue
        column = str(r.get("column"))
        by_column.setdefault(column, []).append(FlaggedGroupRow(
            column=column, group=DASH + " (missing)" if r.get("group") is None else str(r.get("group")),
            label=_label_text(r.get("label")), train_rows=_int(r.get("train_rows")),
            flagged_rows=_int(r.get("flagged_rows")), removed_weight=_float(r.get("removed_weight"))))
    order = sorted(by_column, key=lambda c: c != group)  # the repaired column first, then as recorded
    return tuple(FlaggedGroups(column=c, repaired=c == group, rows=tuple(by_column[c])) for c in order)


def _strings(x: Any) -> dict[str, str | None]:
    return {str(k): _str(v) for k, v in _map(x).items()}


def _top_flagged(rows: Any) -> tuple[FlaggedRow, ...]:
    out = []
    for r in _seq(rows):
        if not isinstance(r, Mapping):
            continue
        favourable = r.get("favourable")
        out.append(FlaggedRow(
            rank=_int(r.get("rank")), row_id=DASH if r.get("row_id") is None else str(r.get("row_id")),
            influence_fairness=_float(r.get("I_F")), influence_utility=_float(r.get("I_U")),
            weight=_float(r.get("weight")), group=_str(r.get("group")), groups=_strings(r.get("groups")),
            label=_str(r.get("label")), favourable=favourable if isinstance(favourable, bool) else None,
            features=_strings(r.get("features"))))
    return tuple(out)


def _fmt_float(x: Any) -> str:
    value = _float(x)
    return DASH if value is None else f"{value:.3g}"


def _fairij_facts(m: Mapping[str, Any], f: Mapping[str, Any], config: Mapping[str, Any]) -> list[Fact]:
    """What ran: mode, measure, group, selection, budget, the chosen k, the curvature and damping."""
    facts: list[Fact] = []
    mode = _first(f, "mode") or config.get("mode")
    measure = _first(f, "measure") or config.get("measure")
    group = _str(m.get("group") or config.get("group"))
    if mode is not None:
        facts.append(Fact("Mode", str(mode), note=MODES.get(str(mode), "")))
    if measure is not None:
        facts.append(Fact("Fairness measure", MEASURES.get(str(measure), str(measure)),
                          note=f"validation gap F of {group}, on {MEASURE_ROWS.get(str(measure), 'the validation rows')}"
                          if group else "", code=(str(measure),)))
    if group is not None:
        facts.append(Fact("Repaired column", group, note="the sensitive column whose gap is reduced"))
    selection = f.get("selection") if f.get("selection") is not None else config.get("selection")
    if selection is not None or f.get("rule") is not None:
        facts.append(Fact("Selection", str(selection or DASH), note=str(f.get("rule") or "")))
    budget = _float(_first(f, "utility_budget"))
    budget = _float(config.get("utility_budget")) if budget is None else budget
    if budget is not None:
        facts.append(Fact("Utility budget", f"{budget:g}", note="largest accepted rise of the validation loss U"))
    max_fraction = _float(f.get("max_fraction") if f.get("max_fraction") is not None else config.get("max_fraction"))
    if max_fraction is not None:
        facts.append(Fact("Largest share considered", fmt_share(max_fraction), note="max_fraction of the training rows"))
    if f.get("weighting") is not None or f.get("graded") is not None:
        graded = f.get("graded")
        facts.append(Fact("Weighting", "graded" if graded else "binary (rows removed outright)" if graded is False else DASH,
                          note=str(f.get("weighting") or "")))
    k, n = _int(f.get("chosen_k")), _int(f.get("n_train"))
    if k is not None:
        fraction = _float(f.get("chosen_fraction"))
        if fraction is None and n:
            fraction = k / n
        value = f"k = {k:,}" + (f" of {n:,} training rows" if n is not None else "") + (
            f" ({fmt_share(fraction)})" if fraction is not None else "")
        note = "nothing down-weighted: no grid point improved F within the budget" if k == 0 else ""
        facts.append(Fact("Chosen", value, note=note, summary=True))
    flagged, removed = _int(f.get("flagged_rows")), _float(f.get("removed_weight"))
    if flagged is not None or removed is not None:
        facts.append(Fact("Flagged rows", fmt_int(flagged), note=f"total weight removed {fmt_weight(removed)}"))
    influence = _map(f.get("influence"))
    if influence:
        eigen = _map(influence.get("eigen"))
        parts = []
        if _float(eigen.get("largest")) is not None:
            parts.append(f"eigenvalues {_fmt_float(eigen.get('smallest'))} to {_fmt_float(eigen.get('largest'))}")
        if _int(eigen.get("effective_rank")) is not None:
            parts.append(f"effective rank {fmt_int(eigen.get('effective_rank'))}"
                         + (f" of {fmt_int(influence.get('p'))} parameters" if _int(influence.get("p")) is not None else ""))
        if _int(eigen.get("above_damping")) is not None:
            parts.append(f"{fmt_int(eigen.get('above_damping'))} above the damping")
        if influence.get("curvature") is not None or parts:
            facts.append(Fact("Curvature", str(influence.get("curvature") or DASH), note="; ".join(parts)))
        requested = _float(influence.get("damping_requested"))
        used = _float(influence.get("damping"))
        if requested is None:
            requested = _float(config.get("damping"))
        if requested is not None or used is not None:
            raised = influence.get("damping_raised")
            note = ("raised automatically: the matrix was numerically singular at the requested damping" if raised
                    else "used as requested" if raised is False else "")
            facts.append(Fact("Damping", f"requested {_fmt_float(requested)}, used {_fmt_float(used)}", note=note))
        extra = []
        if _float(influence.get("l2")) is not None:
            extra.append(f"L2 {_float(influence['l2']):g}")
        if _float(influence.get("mean_gradient_norm")) is not None:
            extra.append(f"mean gradient norm at the trained prompt {_fmt_float(influence['mean_gradient_norm'])}")
        if extra:
            facts.append(Fact("Trained objective", "; ".join(extra), note="the gradient norm is 0 at an exact optimum"))
        details = [d for d in _seq(_map(influence.get("fairness_detail")).get("gaps")) if isinstance(d, Mapping)]
        for d in details:
            pair = _seq(d.get("pair"))
            means = _map(d.get("group_means"))
            if means:
                text = ", ".join(f"{g} {fmt_num(v)}" for g, v in means.items())
                facts.append(Fact("Mean P(favourable) before", text,
                                  note=(f"{d.get('rows')}" if d.get("rows") else "")
                                  + (f"; largest gap between {pair[0]} and {pair[1]}" if len(pair) == 2 else "")))
    append = _map(f.get("append"))
    if append:
        training = _map(append.get("training"))
        parts = [f"{fmt_int(append.get('tokens'))} tokens"] if append.get("tokens") is not None else []
        if append.get("init") is not None:
            parts.append(f"init {append['init']}")
        if training.get("max_epochs") is not None:
            parts.append(f"up to {fmt_int(training['max_epochs'])} epochs")
        facts.append(Fact("Appended prompt", ", ".join(parts) or DASH,
                          note="; ".join(str(append[k]) for k in ("trained", "weights") if append.get(k))))
    if m.get("before_audit") is not None:
        facts.append(Fact("Before-audit", str(m["before_audit"])))
    task_prompt = _map(m.get("task_prompt"))
    if task_prompt:
        source = _source(task_prompt)
        key = task_prompt.get("cache_key")
        facts.append(Fact("Task prompt repaired", SOURCES.get(str(source), str(source or DASH)),
                          note=f"cache key {_short_hash(key)}" if key else "", title=str(key) if key else None))
    seed = f.get("seed") if f.get("seed") is not None else config.get("seed")
    if seed is not None:
        facts.append(Fact("Seed", str(seed)))
    if f.get("split_used_for_selection") is not None:
        facts.append(Fact("Split used for selection", str(f["split_used_for_selection"]),
                          note="the test split is used only by the after-audit"))
    return facts


def _test_scores(after: Mapping[str, Any]) -> list[Fact]:
    """Test accuracy and AUC before → after, with the change, from an ``after_model`` block."""
    scores = []
    if after:
        rows = _int(after.get("test_rows"))
        for what, key in (("accuracy", "accuracy"), ("AUC", "auc")):
            b, a = _float(after.get(f"before_test_{key}")), _float(after.get(f"test_{key}"))
            change = _float(after.get(f"{key}_change"))
            if change is None and a is not None and b is not None:
                change = a - b
            if a is not None or b is not None:
                scores.append(Fact(f"Test {what}", f"{fmt_num(b)} → {fmt_num(a)}", note=f"change {fmt_change(change)}"
                                   + (f" on the same {rows:,} test rows" if rows is not None else "")))
    return scores


def _after_facts(after: Mapping[str, Any]) -> tuple[Fact, ...]:
    facts = []
    if after.get("changed") is not None:
        facts.append(Fact("What changed", str(after["changed"])))
    if after.get("backbone_unchanged") is not None:
        sha = after.get("backbone_sha256")
        facts.append(Fact("Backbone", "unchanged (checked)" if after["backbone_unchanged"] else "CHANGED",
                          note=f"weights sha256 {_short_hash(sha)}" if sha else "", title=str(sha) if sha else None))
    if after.get("threshold") is not None:
        facts.append(Fact("Decision threshold", f"{_float(after['threshold']):g}" if _float(after["threshold"]) is not None
                          else str(after["threshold"])))
    return tuple(facts)


def _verification(v: Mapping[str, Any]) -> tuple[tuple[Fact, ...], tuple[tuple[str, ...], ...]]:
    if not v:
        return (), ()
    facts = []
    if v.get("method") is not None:
        facts.append(Fact("Method", str(v["method"])))
    if v.get("epochs") is not None or v.get("steps") is not None:
        facts.append(Fact("Fine-tuning", f"{fmt_int(v.get('epochs'))} epochs, {fmt_int(v.get('steps'))} steps"))
    drift = _map(v.get("control_drift"))
    if drift:
        facts.append(Fact("Control drift", f"F {fmt_change(drift.get('fairness'), 4)}, U {fmt_change(drift.get('utility'), 4)}",
                          note="control run (nothing removed) minus the trained prompt; subtracted from every check"))
    if v.get("pearson_fairness") is not None:
        facts.append(Fact("Correlation (F)", fmt_num(v["pearson_fairness"]), note="Pearson r of predicted and actual change of F"))
    if v.get("seconds") is not None:
        facts.append(Fact("Time", fmt_seconds(v["seconds"])))
    checks = tuple(
        (fmt_int(c.get("rows")), fmt_change(c.get("predicted_dF"), 4), fmt_change(c.get("actual_dF"), 4),
         fmt_change(c.get("predicted_dU"), 4), fmt_change(c.get("actual_dU"), 4))
        for c in _seq(v.get("checks")) if isinstance(c, Mapping))
    return tuple(facts), checks


def _artifacts(m: Mapping[str, Any], f: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    outputs = _map(m.get("outputs"))
    files: dict[str, str] = {}
    if outputs.get("influence_csv") is not None:
        files["influence scores (one row per training row)"] = str(outputs["influence_csv"])
    if outputs.get("artifact_dir") is not None:
        files["repaired prompt folder"] = str(outputs["artifact_dir"])
    names = {"prompt": "appended prompt (JSON)", "prompt_tensors": "appended prompt (safetensors)",
             "adapter": "repaired task prompt and head", "record": "FairIJ record (fairij.json)"}
    for name, path in (_map(outputs.get("artifacts")) or _map(f.get("artifacts"))).items():
        files.setdefault(names.get(str(name), str(name)), str(path))
    return tuple(files.items())


def _timings(m: Mapping[str, Any], f: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    timings = _map(f.get("timings"))
    rows = [(TIMINGS.get(str(k), str(k).replace("_seconds", "").replace("_", " ")), fmt_seconds(v))
            for k, v in timings.items() if _float(v) is not None]
    if _float(m.get("seconds")) is not None:
        rows.append(("Whole mitigation (with test predictions and the after-audit)", fmt_seconds(m["seconds"])))
    return tuple(rows)


def _mitigation_view(index: int, m: Mapping[str, Any]) -> MitigationView:
    name = str(m.get("name") or "mitigation")
    status = str(m.get("status") or ("ok" if m.get("fairij") else "not_run"))
    config = _map(m.get("config"))
    f = _map(m.get("fairij"))
    group = _str(m.get("group") or config.get("group"))
    measure = _str(f.get("measure") or config.get("measure"))
    after = _map(m.get("after_model"))
    command = m.get("command")
    k, n = _int(f.get("chosen_k")), _int(f.get("n_train"))
    fraction = _float(f.get("chosen_fraction"))
    if fraction is None and k is not None and n:
        fraction = k / n
    chosen_text = DASH if k is None else f"k = {k:,}" + (f" ({fmt_share(fraction)} of the training rows)" if fraction is not None else "")
    scores = _test_scores(after)
    verification, checks = _verification(_map(f.get("verification")))
    top = _top_flagged(f.get("top_flagged"))
    shown = top[:TOP_SHOWN]
    group_columns = tuple(dict.fromkeys(c for r in shown for c in r.groups))
    feature_columns = tuple(dict.fromkeys(c for r in shown for c in r.features))
    append_curve = None
    if _map(f.get("append")).get("history"):
        append_curve, _ = _curve(_map(f.get("append")))
    return MitigationView(
        index=index, anchor=f"mitigation-{index}", name=name,
        title=MITIGATION_TITLES.get(name, name.replace("_", " ").capitalize()),
        status=status, error=_str(m.get("error")), group=group, created=_str(m.get("created")),
        command=shlex.join(str(c) for c in command) if isinstance(command, Sequence) and not isinstance(command, str) and command else None,
        facts=tuple(_fairij_facts(m, f, config)) if name == "fairij" or f else (),
        comparison=_comparison(m.get("comparison")),
        scores=tuple(scores) + _after_facts(after),
        changes=_validation_changes(f, measure, group) if f else (),
        curve=_fairij_curve(f, measure, group) if f else None,
        flagged_groups=_flagged_groups(m.get("flagged_by_group"), group),
        top_flagged=shown, top_total=len(top),
        group_columns=group_columns, feature_columns=feature_columns,
        verification=verification, checks=checks,
        artifacts=_artifacts(m, f), timings=_timings(m, f),
        config=tuple((str(key), _text(value)) for key, value in config.items()),
        mode=_str(f.get("mode") or config.get("mode")), chosen_k=k, chosen_text=chosen_text, append_curve=append_curve,
    )


def build_mitigation_views(mitigations: Any) -> tuple[MitigationView, ...]:
    """The report section of each ``mitigations[]`` entry, in order; empty when the key is absent.

    Entries dispatch on ``name``: ``reprogram`` to :func:`fairprompt.report.reprogram_view.reprogram_mitigation_view`,
    anything else (``fairij``, unknown names) to the FairIJ layout."""
    from fairprompt.report.reprogram_view import reprogram_mitigation_view

    return tuple(reprogram_mitigation_view(i, m) if m.get("name") == "reprogram" else _mitigation_view(i, m)
                 for i, m in enumerate(_seq(mitigations)) if isinstance(m, Mapping))
