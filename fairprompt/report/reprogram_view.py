"""What the report shows of a FairReprogram entry (``mitigations[]`` with ``name: reprogram``), from results alone.

:func:`reprogram_mitigation_view` turns one entry into a :class:`~fairprompt.report.repair_view.MitigationView`
whose ``reprogram`` field holds a :class:`ReprogramView`: what ran (trigger, objective, measure, group,
tuning rows, trainable parameters, the lambda grid, the chosen lambda and its rule), one
:class:`LambdaPoint` per lambda plus the untriggered model on the selection rows (the Pareto figure
and table), the trigger itself (:class:`TriggerView`: the words of a hard trigger, the nearest
vocabulary words of a soft one, the picture of a border or patch), the baselines on the test split
and the warnings.  The before/after comparison on the test split, the files, timings and settings use
the same fields as FairIJ's section, so the shared template parts render them unchanged.

Like every report section, nothing here knows about models, torch or markup: user strings are
kept as they are and escaped by the renderers.  The one value inserted into markup as an attribute, a
trigger picture, is kept only when it is a PNG data URI of valid base64 (:func:`png_data_uri`).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace
from typing import Any

from fairprompt.report.format import (
    DASH,
    MEASURES,
    Fact,
    command_line,
    fairness_name,
    fmt_change,
    fmt_int,
    fmt_lambda,
    fmt_num,
    fmt_seconds,
    fmt_share,
    settings,
    short_hash,
    source_text,
)
from fairprompt.report.repair_view import MitigationView, after_facts, comparison_rows, repair_title, test_scores
from fairprompt.results.repairs import AfterModel, FailedRepair, NotRunRepair, ReprogramRepair
from fairprompt.results.reprogram import BaselineRow as BaselineRecord
from fairprompt.results.reprogram import LambdaPoint as PointRecord
from fairprompt.results.reprogram import ReprogramRecord, ReprogramSettings, SelectionScores, TriggerDescription

TRIGGER_KINDS: dict[str, str] = {
    "soft": "soft prompt: continuous token vectors added to every input",
    "hard": "hard prompt: vocabulary words added to every input",
    "conditional": "conditional prompt: token vectors written for each input by a small generator that reads it",
    "border": "pixel border: a learned frame around every image",
    "patch": "pixel patch: a learned square over one corner of every image",
}
OBJECTIVES: dict[str, str] = {
    "adversary": "an adversary predicts the group from the model's output; the trigger is trained to defeat it "
                 "(task loss − λ × adversary loss)",
    "surrogate": "task loss + λ × gap², with the gap a differentiable gap in mean P(favourable) between groups",
}
TUNING_SPLITS: dict[str, str] = {
    "train": "triggers trained on the training split, chosen on the validation split",
    "validation": "triggers trained on one half of the validation split, chosen on the other half",
}
ARTIFACT_NAMES: dict[str, str] = {
    "trigger": "chosen trigger (JSON)", "trigger_tensors": "chosen trigger (safetensors)",
    "record": "FairReprogram record (reprogram.json)",
}
PNG_PREFIX = "data:image/png;base64,"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_data_uri(value: Any) -> str | None:
    """``value`` when it is ``data:image/png;base64,`` followed by valid base64 of a PNG file, else None.

    Only such a string is put into an ``<img src>``: anything else (another scheme, another media type,
    characters outside base64, a payload that is not a PNG) is reported as not shown."""
    if not isinstance(value, str) or not value.startswith(PNG_PREFIX):
        return None
    payload = value[len(PNG_PREFIX):]
    if not _BASE64.fullmatch(payload) or len(payload) % 4:
        return None
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    return value if raw.startswith(_PNG_SIGNATURE) else None



@dataclass(frozen=True)
class LambdaPoint:
    """One trained trigger (or the untriggered model, ``lam`` None) on the selection rows."""

    lam: float | None
    accuracy: float | None
    gap: float | None
    demographic_parity: float | None
    equalized_odds: float | None
    epochs: int | None
    epoch_seconds: float | None
    pareto: bool
    chosen: bool
    diverged: str | None
    one_class: str | None = None
    """Why its decisions on the selection rows predict one class (then it is never chosen); None: they do not."""
    swap_flip_rate: float | None = None
    """The share of selection rows naming an identity whose decision flips under identity swaps (``selection:
    swap_flips``); None: not measured."""

    @property
    def name(self) -> str:
        """``λ = 4``, ``λ = 0 (control)``, or ``untriggered model``."""
        if self.lam is None:
            return "untriggered model"
        return f"λ = {self.lam:g}" + (" (control)" if self.lam == 0 else "")

    @property
    def plotted(self) -> bool:
        return self.accuracy is not None and self.gap is not None


@dataclass(frozen=True)
class TriggerView:
    """How the chosen trigger is shown: the words (hard), the nearest words (soft) or the picture (border, patch)."""

    kind: str | None
    words: tuple[str, ...] = ()
    text: str | None = None
    token_ids: tuple[str, ...] = ()
    nearest_words: tuple[str, ...] = ()
    tokens: int | None = None
    dim: int | None = None
    bottleneck: int | None = None
    """A conditional trigger's bottleneck (its tokens are written per input)."""
    norms: tuple[float | None, ...] = ()
    image_uri: str | None = None
    """The picture as a PNG data URI, only when :func:`png_data_uri` accepts it."""
    image_recorded: bool = False
    """A picture was recorded (``image_png`` present), whether or not it is shown."""
    image_size: str | None = None
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def is_image(self) -> bool:
        return self.kind in ("border", "patch") or self.image_recorded

    @property
    def norms_text(self) -> str:
        return ", ".join(fmt_num(n) for n in self.norms)


@dataclass(frozen=True)
class BaselineRow:
    """One method on the test split: the untriggered model, a post-processing baseline, or the chosen trigger."""

    method: str
    description: str
    test_accuracy: float | None
    demographic_parity: float | None
    equalized_odds: float | None
    accuracy_change: float | None
    is_reprogram: bool

    @property
    def change_text(self) -> str:
        return fmt_change(self.accuracy_change)


@dataclass(frozen=True)
class ReprogramView:
    """The FairReprogram part of a mitigation section (the shared parts stay on :class:`MitigationView`)."""

    trigger_kind: str | None
    modality: str | None
    measure: str | None
    objective: str | None
    group: str | None
    gap_label: str
    """``demographic parity gap of sex``: the gap the lambdas trade accuracy against."""
    tuning_how: str | None
    rule: str | None
    rule_met: bool | None
    chosen_lambda: float | None
    points: tuple[LambdaPoint, ...]
    before: LambdaPoint | None
    """The untriggered model on the selection rows."""
    trigger: TriggerView
    baselines: tuple[BaselineRow, ...]
    warnings: tuple[str, ...]
    accuracy_budget: float | None = None
    """``max_accuracy_drop``: the rule accepts λ whose selection accuracy is at most this far below the untriggered model's."""

    @property
    def accuracy_floor(self) -> float | None:
        """The untriggered model's selection accuracy minus the accuracy budget, when both are known."""
        if self.before is None or self.before.accuracy is None or self.accuracy_budget is None:
            return None
        return self.before.accuracy - self.accuracy_budget

    @property
    def chosen_text(self) -> str:
        return DASH if self.chosen_lambda is None else f"λ = {self.chosen_lambda:g}"

    @property
    def chosen(self) -> LambdaPoint | None:
        return next((p for p in self.points if p.chosen), None)

    @property
    def diverged(self) -> tuple[LambdaPoint, ...]:
        return tuple(p for p in self.points if p.diverged)

    @property
    def one_class(self) -> tuple[LambdaPoint, ...]:
        """The points whose decisions on the selection rows predict one class (never chosen while another is left)."""
        return tuple(p for p in self.points if p.one_class)

    @property
    def has_swap_flips(self) -> bool:
        """Some point records its identity-swap flip rate (``selection: swap_flips``)."""
        return any(p.swap_flip_rate is not None for p in (*self.points, *([self.before] if self.before else [])))

    @property
    def has_plot(self) -> bool:
        return any(p.plotted for p in self.points)

    @property
    def rule_text(self) -> str:
        return {True: "met", False: "not met"}.get(self.rule_met, DASH)  # type: ignore[arg-type]


def _point(p: PointRecord, *, chosen: float | None) -> LambdaPoint:
    history = p.history or []
    seconds = p.epoch_seconds
    if seconds is None and history:
        values = [h.seconds for h in history if h.seconds is not None]
        seconds = sum(values) / len(values) if values else None
    return LambdaPoint(
        lam=p.lambda_, accuracy=p.accuracy, gap=p.gap, demographic_parity=p.demographic_parity_difference,
        equalized_odds=p.equalized_odds_difference, epochs=len(history) if history else None, epoch_seconds=seconds,
        pareto=p.pareto is True, chosen=p.chosen if p.chosen is not None else p.lambda_ == chosen,
        diverged=p.diverged or None, one_class=p.one_class or None, swap_flip_rate=p.swap_flip_rate,
    )


def _before(b: SelectionScores) -> LambdaPoint:
    return LambdaPoint(lam=None, accuracy=b.accuracy, gap=b.gap, demographic_parity=b.demographic_parity_difference,
                       equalized_odds=b.equalized_odds_difference, epochs=None, epoch_seconds=None, pareto=False,
                       chosen=False, diverged=None, one_class=b.one_class or None,
                       swap_flip_rate=b.swap_flip_rate)


def _points(r: ReprogramRecord, chosen: float | None) -> tuple[LambdaPoint, ...]:
    out = tuple(_point(p, chosen=chosen) for p in r.points)
    if not any(p.chosen for p in out) or sum(p.chosen for p in out) > 1:
        out = tuple(replace(p, chosen=p.lam is not None and p.lam == chosen) for p in out)
    return out


def _trigger(t: TriggerDescription | None, kind: str | None) -> TriggerView:
    if t is None:
        return TriggerView(kind=kind)
    size = t.image_size or []
    return TriggerView(
        kind=t.kind or kind, words=tuple(t.words or ()), text=t.text, token_ids=tuple(str(i) for i in t.token_ids or ()),
        nearest_words=tuple(t.nearest_words or ()), tokens=t.tokens, dim=t.dim, bottleneck=t.bottleneck,
        norms=tuple(t.norms or ()),
        image_uri=png_data_uri(t.image_png), image_recorded=t.image_png is not None,
        image_size=f"{size[1]} × {size[0]} pixels" if len(size) == 2 else None, settings=settings(t.config),
    )


def _baselines(rows: list[BaselineRecord] | None) -> tuple[BaselineRow, ...]:
    return tuple(BaselineRow(
        method=b.method, description=b.description or "", test_accuracy=b.test_accuracy,
        demographic_parity=b.demographic_parity_difference, equalized_odds=b.equalized_odds_difference,
        accuracy_change=b.accuracy_change, is_reprogram=b.method.lower().startswith(("fairreprogram", "reprogram")),
    ) for b in rows or ())


class _Settings:
    """A setting as the run recorded it (``reprogram.config``), else as the spec configured it."""

    def __init__(self, recorded: ReprogramSettings | None, configured: dict[str, Any]) -> None:
        self.recorded, self.configured = recorded, configured

    def __call__(self, key: str) -> Any:
        value = None if self.recorded is None else getattr(self.recorded, key, None)
        if value is None or (key == "lambdas" and not value):
            return self.configured.get(key)
        return value


def _trigger_fact(view: ReprogramView, setting: _Settings, parameters: Any) -> Fact | None:
    kind, t = view.trigger_kind, view.trigger
    if kind is None:
        return None
    shape = ""
    if kind in ("soft", "conditional"):
        tokens = t.tokens if t.tokens is not None else setting("tokens")
        shape = f"{tokens:,} tokens" + (f" of dimension {t.dim:,}" if t.dim is not None else "") if tokens is not None else ""
        bottleneck = t.bottleneck if t.bottleneck is not None else setting("bottleneck")
        if kind == "conditional" and bottleneck is not None:
            shape += f", written per input through a bottleneck of {bottleneck:,}"
    elif kind == "hard":
        words = None if parameters is None else parameters.deployed_trigger_tokens
        words = words if words is not None else len(t.words) if t.words else setting("tokens")
        shape = f"{words:,} words" if words is not None else ""
    elif kind == "border" and setting("width") is not None:
        shape = f"{setting('width'):,} pixels wide"
    elif kind == "patch" and setting("patch_size") is not None:
        size = setting("patch_size")
        corner = setting("corner")
        shape = f"{size} × {size} pixels" + (f", {str(corner).replace('_', ' ')} corner" if corner else "")
    note = TRIGGER_KINDS.get(kind, "")
    if view.modality:
        note = f"{note}; {view.modality} model" if note else f"{view.modality} model"
    return Fact("Trigger", kind + (f" ({shape})" if shape else ""), note=note, summary=True)


def _facts(m: ReprogramRepair | FailedRepair | NotRunRepair, r: ReprogramRecord | None, view: ReprogramView,
           setting: _Settings) -> list[Fact]:
    """What ran: the trigger, objective, measure, group, tuning rows, parameters, the lambdas and the choice."""
    parameters = None if r is None else r.parameters
    facts: list[Fact] = []
    trigger = _trigger_fact(view, setting, parameters)
    if trigger is not None:
        facts.append(trigger)
    if view.objective is not None:
        note = OBJECTIVES.get(view.objective, "")
        if setting("projection") is True:
            note += "; with gradient projection (Zhang, Lemoine and Mitchell, 2018)"
        elif setting("projection") is False and view.objective == "adversary":
            note += "; no gradient projection"
        anchor = setting("anchor")
        if view.objective == "surrogate" and isinstance(anchor, int | float) and anchor > 0:
            note += (f"; with the rate anchor {anchor:g}: + λ × {anchor:g} × (the batch's mean P(favourable) minus the "
                     "untriggered model's)², so the mean score may not drift")
        counterfactual = setting("counterfactual")
        if view.objective == "surrogate" and isinstance(counterfactual, int | float) and counterfactual > 0:
            note += (f"; with the counterfactual term {counterfactual:g}: + λ × {counterfactual:g} × the mean squared "
                     f"change of P(favourable) when each row's identity phrases are swapped ({setting('swap_terms')})")
        facts.append(Fact("Objective", view.objective, note=note, summary=True))
    if view.measure is not None:
        facts.append(Fact("Fairness measure", MEASURES.get(view.measure, view.measure.replace("_", " ")),
                          note=f"the gap is the between-groups {view.gap_label} on the selection rows", code=(view.measure,),
                          summary=True))
    if view.group is not None:
        facts.append(Fact("Group column", view.group, note="the sensitive column whose gap the trigger reduces"))
    tuning = None if r is None else r.tuning
    how = view.tuning_how or TUNING_SPLITS.get(str(setting("tuning_split")), None)
    parts = []
    if tuning is not None and tuning.fit_rows is not None:
        parts.append(f"{fmt_int(tuning.fit_rows)} rows to train each trigger")
    if tuning is not None and tuning.selection_rows is not None:
        parts.append(f"{fmt_int(tuning.selection_rows)} rows to choose λ")
    if tuning is not None and tuning.groups:
        parts.append("groups " + ", ".join(tuning.groups))
    if how or parts:
        facts.append(Fact("Tuning", how or DASH, note="; ".join([*parts, "the test split is never seen"]), summary=True))
    if parameters is not None and parameters.trigger_trainable is not None:
        trained, total = parameters.trigger_trainable, parameters.model_total
        share = parameters.trainable_share_of_model
        if share is None and total:
            share = trained / total
        value = (f"{trained:,}" + (f" of {total:,}" if total is not None else "")
                 + (f" ({fmt_share(share)})" if share is not None else ""))
        notes = ["the trigger alone trains"]
        if parameters.backbone is not None:
            notes.append(f"backbone {fmt_int(parameters.backbone)} parameters, frozen")
        notes.append("task adapter untouched")
        if parameters.note:
            notes.append(parameters.note)
        facts.append(Fact("Trainable parameters", value, note="; ".join(notes), summary=True))
    lambdas = [fmt_lambda(x) for x in setting("lambdas") or ()] or [fmt_lambda(p.lam) for p in view.points]
    if lambdas:
        facts.append(Fact("λ grid", ", ".join(lambdas),
                          note="one fresh trigger per λ, same seed and batch order; λ = 0 is the control (task loss alone)"))
    if view.accuracy_budget is not None:
        facts.append(Fact("Accuracy budget", f"{view.accuracy_budget:g}",
                          note="largest accepted drop of selection accuracy below the untriggered model's"))
    if view.chosen_lambda is not None or view.rule is not None:
        facts.append(Fact("Chosen", view.chosen_text, note=view.rule or "", summary=True))
    if view.rule_met is not None:
        facts.append(Fact("Rule met", "yes" if view.rule_met else "no",
                          note="" if view.rule_met else ("no λ > 0 stayed within the accuracy budget without predicting "
                                                         "one class; the most accurate λ of the grid was taken"),
                          summary=True))
    chosen, before = view.chosen, view.before
    if chosen is not None and before is not None and (chosen.plotted or before.plotted):
        facts.append(Fact("On the selection rows",
                          f"accuracy {fmt_num(before.accuracy)} → {fmt_num(chosen.accuracy)}, gap {fmt_num(before.gap)} → "
                          f"{fmt_num(chosen.gap)}", note="untriggered model → chosen trigger", summary=True))
    training = []
    if setting("epochs") is not None:
        training.append(f"{fmt_int(setting('epochs'))} epochs")
    if setting("batch_size") is not None:
        training.append(f"batch size {fmt_int(setting('batch_size'))}")
    if setting("lr") is not None:
        training.append(f"learning rate {setting('lr'):g}")
    if view.objective == "adversary":
        if setting("adversary_lr") is not None:
            training.append(f"adversary learning rate {setting('adversary_lr'):g}")
        if setting("adversary_hidden") is not None:
            training.append(f"adversary hidden units {fmt_int(setting('adversary_hidden'))}")
    if setting("max_rows") is not None:
        training.append(f"at most {fmt_int(setting('max_rows'))} tuning rows")
    if training:
        facts.append(Fact("Training", ", ".join(training)))
    if isinstance(m, ReprogramRepair):
        if m.before_audit is not None:
            facts.append(Fact("Before-audit", m.before_audit))
        tp = m.task_prompt
        if tp is not None and (tp.source is not None or tp.cache_key is not None):
            facts.append(Fact("Task prompt (not changed)", source_text(tp.source),
                              note=f"cache key {short_hash(tp.cache_key)}" if tp.cache_key else "", title=tp.cache_key))
    if setting("seed") is not None:
        facts.append(Fact("Seed", str(setting("seed"))))
    return facts


def _scores(after: AfterModel | None) -> tuple[Fact, ...]:
    facts = list(test_scores(after)) + list(after_facts(after))
    if after is not None and after.adapter_unchanged is not None:
        facts.append(Fact("Task adapter", "unchanged (checked)" if after.adapter_unchanged else "CHANGED",
                          note="FairReprogram trains the trigger alone"))
    return tuple(facts)


def _artifacts(m: ReprogramRepair, r: ReprogramRecord | None) -> tuple[tuple[str, str], ...]:
    outputs = m.outputs
    files: dict[str, str] = {}
    if outputs is not None and outputs.artifact_dir is not None:
        files["trigger folder"] = outputs.artifact_dir
    recorded = (outputs.artifacts if outputs is not None else {}) or (r.artifacts if r is not None else {})
    for name, path in recorded.items():
        files.setdefault(ARTIFACT_NAMES.get(name, name), path)
    return tuple(files.items())


def _timings(m: ReprogramRepair, r: ReprogramRecord | None, view: ReprogramView) -> tuple[tuple[str, str], ...]:
    rows = []
    if r is not None and r.seconds is not None:
        rows.append(("Training every λ and choosing", fmt_seconds(r.seconds)))
    chosen = view.chosen
    if chosen is not None and chosen.epoch_seconds is not None:
        rows.append((f"Mean epoch at the chosen {chosen.name}", fmt_seconds(chosen.epoch_seconds)))
    if m.seconds is not None:
        rows.append(("Whole mitigation (with test predictions, baselines and the after-audit)", fmt_seconds(m.seconds)))
    return tuple(rows)


def build_reprogram_view(m: ReprogramRepair | FailedRepair | NotRunRepair) -> ReprogramView:
    """The FairReprogram part of one ``mitigations[]`` entry; every recorded value may be missing or null."""
    r = m.reprogram if isinstance(m, ReprogramRepair) else None
    config = m.config or {}
    setting = _Settings(None if r is None else r.config, config)
    group = m.group or (None if config.get("group") is None else str(config["group"]))
    measure = setting("measure")
    kind = (r.trigger_kind if r is not None else None) or setting("trigger")
    chosen = None if r is None else r.chosen_lambda
    points = _points(r, chosen) if r is not None else ()
    if chosen is None:
        chosen = next((p.lam for p in points if p.chosen), None)
    return ReprogramView(
        trigger_kind=None if kind is None else str(kind), modality=None if r is None else r.modality,
        measure=None if measure is None else str(measure),
        objective=None if setting("objective") is None else str(setting("objective")), group=group,
        gap_label=fairness_name(measure, group), tuning_how=r.tuning.how if r is not None and r.tuning else None,
        rule=None if r is None else r.rule, rule_met=None if r is None else r.rule_met, chosen_lambda=chosen,
        points=points, before=_before(r.before) if r is not None and r.before is not None else None,
        trigger=_trigger(None if r is None else r.trigger, None if kind is None else str(kind)),
        baselines=_baselines(m.baselines) if isinstance(m, ReprogramRepair) else (),
        warnings=tuple(r.warnings) if r is not None else (),
        accuracy_budget=setting("max_accuracy_drop"),
    )


def reprogram_mitigation_view(index: int, m: ReprogramRepair | FailedRepair | NotRunRepair) -> MitigationView:
    """The report section of a ``reprogram`` entry (``ok``, ``failed`` or ``not_run``)."""
    r = m.reprogram if isinstance(m, ReprogramRepair) else None
    view = build_reprogram_view(m)
    setting = _Settings(None if r is None else r.config, m.config or {})
    finished = isinstance(m, ReprogramRepair)
    return MitigationView(
        index=index, anchor=f"mitigation-{index}", name="reprogram", title=repair_title("reprogram"), status=m.status,
        error=m.error if isinstance(m, FailedRepair) else None, group=view.group,
        created=None if isinstance(m, NotRunRepair) else m.created,
        command=None if isinstance(m, NotRunRepair) else command_line(m.command),
        facts=tuple(_facts(m, r, view, setting)), comparison=comparison_rows(m.comparison) if finished else (),
        scores=_scores(m.after_model) if finished else (), changes=(), curve=None, flagged_groups=(), top_flagged=(),
        top_total=0, group_columns=(), feature_columns=(), verification=(), checks=(),
        artifacts=_artifacts(m, r) if finished else (), timings=_timings(m, r, view) if finished else (),
        config=settings(m.config), mode=None, chosen_k=None, chosen_text=view.chosen_text, append_curve=None,
        reprogram=view,
    )
