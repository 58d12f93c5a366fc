"""What a report shows, derived from a results dictionary alone (no HTML, no plotting).

:func:`build_view` reads ``results.json`` (schema version 1, see
``docs/results-schema.md``) and returns plain dataclasses that every renderer
(HTML, Markdown) formats the same way: estimates with their intervals, the
verdict of each slice, footnotes for undefined values, disparity and compliance
rows, and the model section (:class:`ModelView`) for frozen text and image models.  Nothing here knows about models, torch or markup; user strings are kept
as they are and escaped by the renderers.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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


def build_view(results: Mapping[str, Any]) -> Overview:
    """Derive what every renderer shows from a results dictionary (schema version 1)."""
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
