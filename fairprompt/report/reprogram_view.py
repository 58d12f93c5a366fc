"""What the report shows of a FairReprogram entry (``mitigations[]`` with ``name: reprogram``), from results alone.

:func:`reprogram_mitigation_view` turns one entry into a :class:`~fairprompt.report.view.MitigationView`
whose ``reprogram`` field holds a :class:`ReprogramView`: what ran (trigger, objective, measure, group,
tuning rows, trainable parameters, the lambda grid, the chosen lambda and its rule), one
:class:`LambdaPoint` per lambda plus the untriggered model on the selection rows (the Pareto figure
and table), the trigger itself (:class:`TriggerView`: the words of a hard trigger, the nearest
vocabulary words of a soft one, the picture of a border or patch), the baselines on the test split
and the warnings.  The before/after comparison on the test split, the files, timings and settings use
the same fields as FairIJ's section, so the shared template parts render them unchanged.

Like :mod:`fairprompt.report.view`, nothing here knows about models, torch or markup: user strings are
kept as they are and escaped by the renderers.  The one value inserted into markup as an attribute, a
trigger picture, is kept only when it is a PNG data URI of valid base64 (:func:`png_data_uri`).
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fairprompt.report.view import (
    DASH, MEASURES, MITIGATION_TITLES, SOURCES, Fact, MitigationView, _after_facts, _comparison, _fairness_name, _float,
    _int, _map, _seq, _short_hash, _source, _str, _test_scores, _text, fmt_change, fmt_int, fmt_num, fmt_seconds, fmt_share,
)

TRIGGER_KINDS: dict[str, str] = {
    "soft": "soft prompt: continuous token vectors added to every input",
    "hard": "hard prompt: vocabulary words added to every input",
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


def fmt_lambda(x: Any) -> str:
    """``4``, ``0.5``; a dash when missing."""
    value = _float(x)
    return DASH if value is None else f"{value:g}"


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
    def has_plot(self) -> bool:
        return any(p.plotted for p in self.points)

    @property
    def rule_text(self) -> str:
        return {True: "met", False: "not met"}.get(self.rule_met, DASH)  # type: ignore[arg-type]


def _point(p: Mapping[str, Any], *, lam: float | None, chosen: float | None) -> LambdaPoint:
    history = [h for h in _seq(p.get("history")) if isinstance(h, Mapping)]
    seconds = _float(p.get("epoch_seconds"))
    if seconds is None and history:
        values = [v for v in (_float(h.get("seconds")) for h in history) if v is not None]
        seconds = sum(values) / len(values) if values else None
    flag = p.get("chosen")
    diverged = p.get("diverged")
    return LambdaPoint(
        lam=lam, accuracy=_float(p.get("accuracy")), gap=_float(p.get("gap")),
        demographic_parity=_float(p.get("demographic_parity_difference")),
        equalized_odds=_float(p.get("equalized_odds_difference")),
        epochs=len(history) if history else None, epoch_seconds=seconds, pareto=p.get("pareto") is True,
        chosen=flag is True if isinstance(flag, bool) else lam is not None and lam == chosen,
        diverged=None if diverged in (None, False, "") else str(diverged) if diverged is not True else "diverged",
    )


def _points(r: Mapping[str, Any], chosen: float | None) -> tuple[LambdaPoint, ...]:
    points = [p for p in _seq(r.get("points")) if isinstance(p, Mapping)]
    out = tuple(_point(p, lam=_float(p.get("lambda")), chosen=chosen) for p in points)
    if not any(p.chosen for p in out) or sum(p.chosen for p in out) > 1:
        out = tuple(replace(p, chosen=p.lam is not None and p.lam == chosen) for p in out)
    return out


def _strings(x: Any) -> tuple[str, ...]:
    return tuple("" if w is None else str(w) for w in _seq(x))


def _trigger(t: Mapping[str, Any], kind: str | None) -> TriggerView:
    kind = _str(t.get("kind")) or kind
    size = [_int(v) for v in _seq(t.get("image_size"))]
    image_size = f"{size[1]} × {size[0]} pixels" if len(size) == 2 and None not in size else None
    return TriggerView(
        kind=kind, words=_strings(t.get("words")), text=_str(t.get("text")),
        token_ids=tuple(str(i) for i in _seq(t.get("token_ids"))), nearest_words=_strings(t.get("nearest_words")),
        tokens=_int(t.get("tokens")), dim=_int(t.get("dim")), norms=tuple(_float(n) for n in _seq(t.get("norms"))),
        image_uri=png_data_uri(t.get("image_png")), image_recorded=t.get("image_png") is not None,
        image_size=image_size, settings=tuple((str(k), _text(v)) for k, v in _map(t.get("config")).items()),
    )


def _baselines(rows: Any) -> tuple[BaselineRow, ...]:
    out = []
    for b in _seq(rows):
        if not isinstance(b, Mapping):
            continue
        method = DASH if b.get("method") is None else str(b.get("method"))
        out.append(BaselineRow(
            method=method, description=str(b.get("description") or ""), test_accuracy=_float(b.get("test_accuracy")),
            demographic_parity=_float(b.get("demographic_parity_difference")),
            equalized_odds=_float(b.get("equalized_odds_difference")), accuracy_change=_float(b.get("accuracy_change")),
            is_reprogram=method.lower().startswith(("fairreprogram", "reprogram"))))
    return tuple(out)


def _trigger_fact(kind: str | None, modality: str | None, rc: Mapping[str, Any], t: TriggerView,
                  parameters: Mapping[str, Any]) -> Fact | None:
    if kind is None:
        return None
    shape = ""
    if kind == "soft":
        tokens = t.tokens if t.tokens is not None else _int(rc.get("tokens"))
        shape = f"{tokens:,} tokens" + (f" of dimension {t.dim:,}" if t.dim is not None else "") if tokens is not None else ""
    elif kind == "hard":
        words = _int(parameters.get("deployed_trigger_tokens"))
        words = words if words is not None else len(t.words) if t.words else _int(rc.get("tokens"))
        shape = f"{words:,} words" if words is not None else ""
    elif kind == "border" and _int(rc.get("width")) is not None:
        shape = f"{_int(rc.get('width')):,} pixels wide"
    elif kind == "patch" and _int(rc.get("patch_size")) is not None:
        size = _int(rc.get("patch_size"))
        shape = f"{size} × {size} pixels" + (f", {str(rc['corner']).replace('_', ' ')} corner" if rc.get("corner") else "")
    note = TRIGGER_KINDS.get(kind, "")
    if modality:
        note = f"{note}; {modality} model" if note else f"{modality} model"
    return Fact("Trigger", kind + (f" ({shape})" if shape else ""), note=note, summary=True)


def _facts(m: Mapping[str, Any], r: Mapping[str, Any], view: ReprogramView) -> list[Fact]:
    """What ran: the trigger, objective, measure, group, tuning rows, parameters, the lambdas and the choice."""
    config, rc = _map(m.get("config")), _map(r.get("config"))
    setting = lambda key: rc.get(key) if rc.get(key) is not None else config.get(key)  # noqa: E731
    parameters = _map(r.get("parameters"))
    facts: list[Fact] = []
    trigger = _trigger_fact(view.trigger_kind, view.modality, rc, view.trigger, parameters)
    if trigger is not None:
        facts.append(trigger)
    if view.objective is not None:
        note = OBJECTIVES.get(view.objective, "")
        if setting("projection") is True:
            note += "; with gradient projection (Zhang, Lemoine and Mitchell, 2018)"
        elif setting("projection") is False and view.objective == "adversary":
            note += "; no gradient projection"
        facts.append(Fact("Objective", view.objective, note=note, summary=True))
    if view.measure is not None:
        facts.append(Fact("Fairness measure", MEASURES.get(view.measure, view.measure.replace("_", " ")),
                          note=f"the gap is the between-groups {view.gap_label} on the selection rows", code=(view.measure,),
                          summary=True))
    if view.group is not None:
        facts.append(Fact("Group column", view.group, note="the sensitive column whose gap the trigger reduces"))
    tuning = _map(r.get("tuning"))
    how = view.tuning_how or TUNING_SPLITS.get(str(setting("tuning_split")), None)
    parts = []
    if _int(tuning.get("fit_rows")) is not None:
        parts.append(f"{fmt_int(tuning.get('fit_rows'))} rows to train each trigger")
    if _int(tuning.get("selection_rows")) is not None:
        parts.append(f"{fmt_int(tuning.get('selection_rows'))} rows to choose λ")
    groups = _strings(tuning.get("groups"))
    if groups:
        parts.append("groups " + ", ".join(groups))
    if how or parts:
        facts.append(Fact("Tuning", how or DASH, note="; ".join([*parts, "the test split is never seen"]), summary=True))
    trained, total = _int(parameters.get("trigger_trainable")), _int(parameters.get("model_total"))
    if trained is not None:
        share = _float(parameters.get("trainable_share_of_model"))
        if share is None and total:
            share = trained / total
        value = f"{trained:,}" + (f" of {total:,}" if total is not None else "") + (f" ({fmt_share(share)})" if share is not None else "")
        notes = ["the trigger alone trains"]
        if _int(parameters.get("backbone")) is not None:
            notes.append(f"backbone {fmt_int(parameters.get('backbone'))} parameters, frozen")
        notes.append("task adapter untouched")
        if parameters.get("note"):
            notes.append(str(parameters["note"]))
        facts.append(Fact("Trainable parameters", value, note="; ".join(notes), summary=True))
    lambdas = [fmt_lambda(x) for x in _seq(setting("lambdas"))] or [fmt_lambda(p.lam) for p in view.points]
    if lambdas:
        facts.append(Fact("λ grid", ", ".join(lambdas),
                          note="one fresh trigger per λ, same seed and batch order; λ = 0 is the control (task loss alone)"))
    budget = _float(setting("max_accuracy_drop"))
    if budget is not None:
        facts.append(Fact("Accuracy budget", f"{budget:g}",
                          note="largest accepted drop of selection accuracy below the untriggered model's"))
    if view.chosen_lambda is not None or view.rule is not None:
        facts.append(Fact("Chosen", view.chosen_text, note=view.rule or "", summary=True))
    if view.rule_met is not None:
        facts.append(Fact("Rule met", "yes" if view.rule_met else "no",
                          note="" if view.rule_met else "no λ > 0 stayed within the accuracy budget; the most accurate λ of the grid was taken",
                          summary=True))
    chosen, before = view.chosen, view.before
    if chosen is not None and before is not None and (chosen.plotted or before.plotted):
        facts.append(Fact("On the selection rows",
                          f"accuracy {fmt_num(before.accuracy)} → {fmt_num(chosen.accuracy)}, gap {fmt_num(before.gap)} → "
                          f"{fmt_num(chosen.gap)}", note="untriggered model → chosen trigger", summary=True))
    training = []
    if _int(setting("epochs")) is not None:
        training.append(f"{fmt_int(setting('epochs'))} epochs")
    if _int(setting("batch_size")) is not None:
        training.append(f"batch size {fmt_int(setting('batch_size'))}")
    if _float(setting("lr")) is not None:
        training.append(f"learning rate {_float(setting('lr')):g}")
    if view.objective == "adversary":
        if _float(setting("adversary_lr")) is not None:
            training.append(f"adversary learning rate {_float(setting('adversary_lr')):g}")
        if _int(setting("adversary_hidden")) is not None:
            training.append(f"adversary hidden units {fmt_int(setting('adversary_hidden'))}")
    if _int(setting("max_rows")) is not None:
        training.append(f"at most {fmt_int(setting('max_rows'))} tuning rows")
    if training:
        facts.append(Fact("Training", ", ".join(training)))
    if m.get("before_audit") is not None:
        facts.append(Fact("Before-audit", str(m["before_audit"])))
    task_prompt = _map(m.get("task_prompt"))
    if any(v is not None for v in task_prompt.values()):
        source, key = _source(task_prompt), task_prompt.get("cache_key")
        facts.append(Fact("Task prompt (not changed)", SOURCES.get(str(source), str(source or DASH)),
                          note=f"cache key {_short_hash(key)}" if key else "", title=str(key) if key else None))
    if setting("seed") is not None:
        facts.append(Fact("Seed", str(setting("seed"))))
    return facts


def _scores(after: Mapping[str, Any]) -> tuple[Fact, ...]:
    facts = list(_test_scores(after)) + list(_after_facts(after))
    if isinstance(after.get("adapter_unchanged"), bool):
        facts.append(Fact("Task adapter", "unchanged (checked)" if after["adapter_unchanged"] else "CHANGED",
                          note="FairReprogram trains the trigger alone"))
    return tuple(facts)


def _artifacts(m: Mapping[str, Any], r: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    outputs = _map(m.get("outputs"))
    files: dict[str, str] = {}
    if outputs.get("artifact_dir") is not None:
        files["trigger folder"] = str(outputs["artifact_dir"])
    for name, path in (_map(outputs.get("artifacts")) or _map(r.get("artifacts"))).items():
        if path is not None:
            files.setdefault(ARTIFACT_NAMES.get(str(name), str(name)), str(path))
    return tuple(files.items())


def _timings(m: Mapping[str, Any], r: Mapping[str, Any], view: ReprogramView) -> tuple[tuple[str, str], ...]:
    rows = []
    if _float(r.get("seconds")) is not None:
        rows.append(("Training every λ and choosing", fmt_seconds(r["seconds"])))
    chosen = view.chosen
    if chosen is not None and chosen.epoch_seconds is not None:
        rows.append((f"Mean epoch at the chosen {chosen.name}", fmt_seconds(chosen.epoch_seconds)))
    if _float(m.get("seconds")) is not None:
        rows.append(("Whole mitigation (with test predictions, baselines and the after-audit)", fmt_seconds(m["seconds"])))
    return tuple(rows)


def build_reprogram_view(m: Mapping[str, Any]) -> ReprogramView:
    """The FairReprogram part of one ``mitigations[]`` entry; every key may be missing or null."""
    r, config = _map(m.get("reprogram")), _map(m.get("config"))
    rc = _map(r.get("config"))
    group = _str(m.get("group") or config.get("group"))
    measure = _str(rc.get("measure") or config.get("measure"))
    kind = _str(r.get("trigger_kind") or rc.get("trigger") or config.get("trigger"))
    chosen = _float(r.get("chosen_lambda"))
    points = _points(r, chosen)
    if chosen is None:
        chosen = next((p.lam for p in points if p.chosen), None)
    before = _map(r.get("before"))
    rule_met = r.get("rule_met")
    return ReprogramView(
        trigger_kind=kind, modality=_str(r.get("modality")), measure=measure,
        objective=_str(rc.get("objective") or config.get("objective")), group=group,
        gap_label=_fairness_name(measure, group), tuning_how=_str(_map(r.get("tuning")).get("how")),
        rule=_str(r.get("rule")), rule_met=rule_met if isinstance(rule_met, bool) else None, chosen_lambda=chosen,
        points=points, before=_point(before, lam=None, chosen=None) if before else None,
        trigger=_trigger(_map(r.get("trigger")), kind), baselines=_baselines(m.get("baselines")),
        warnings=tuple(str(w) for w in _seq(r.get("warnings")) if w is not None),
        accuracy_budget=_float(rc.get("max_accuracy_drop") if rc.get("max_accuracy_drop") is not None
                               else config.get("max_accuracy_drop")),
    )


def reprogram_mitigation_view(index: int, m: Mapping[str, Any]) -> MitigationView:
    """The report section of a ``reprogram`` entry (``ok``, ``failed`` or ``not_run``)."""
    r, config = _map(m.get("reprogram")), _map(m.get("config"))
    view = build_reprogram_view(m)
    command = m.get("command")
    return MitigationView(
        index=index, anchor=f"mitigation-{index}", name="reprogram", title=MITIGATION_TITLES["reprogram"],
        status=str(m.get("status") or ("ok" if r else "not_run")), error=_str(m.get("error")), group=view.group,
        created=_str(m.get("created")),
        command=shlex.join(str(c) for c in command) if isinstance(command, Sequence) and not isinstance(command, str) and command else None,
        facts=tuple(_facts(m, r, view)), comparison=_comparison(m.get("comparison")),
        scores=_scores(_map(m.get("after_model"))), changes=(), curve=None, flagged_groups=(), top_flagged=(),
        top_total=0, group_columns=(), feature_columns=(), verification=(), checks=(),
        artifacts=_artifacts(m, r), timings=_timings(m, r, view),
        config=tuple((str(key), _text(value)) for key, value in config.items()),
        mode=None, chosen_k=None, chosen_text=view.chosen_text, append_curve=None, reprogram=view,
    )
