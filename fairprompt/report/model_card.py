"""A model card (Mitchell et al., 2019, "Model Cards for Model Reporting") derived from results.json alone.

:func:`build_model_card` fills the card's headings (model details, intended use, factors, metrics and thresholds,
evaluation, training and tuning data, quantitative analyses, ethical considerations, caveats and
recommendations) from what the run recorded.  What fairprompt cannot know (what the model is for, who owns
it) is said to be unknown, with the audit's assumptions and a plainly labelled placeholder for the owner to
replace; nothing is invented.  User strings stay as they are and are escaped by the renderers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fairprompt.metrics.compare import HEADLINE
from fairprompt.report.audit_view import SliceView
from fairprompt.report.format import DASH, Fact, as_text, dropped_text, fmt_int, fmt_num, fmt_pct, label
from fairprompt.report.model_view import ModelView
from fairprompt.report.repair_view import MitigationView
from fairprompt.results.model import ImageModel, TabularModel, TextModel
from fairprompt.results.repairs import FairIJRepair, ReprogramRepair
from fairprompt.results.run import Results

CARD_METRICS: tuple[str, ...] = ("selection_rate", "tpr", "fpr", "accuracy")
"""The per-group rates of the card's quantitative analyses (the slice sections have every rate)."""

PLACEHOLDER = "[To be completed by the model owner]"


@dataclass(frozen=True)
class ModelCard:
    """The model card's sections; each a list of facts or sentences (text, escaped by the renderer)."""

    details: tuple[Fact, ...]
    intended_use: tuple[Fact, ...]
    intended_placeholder: str
    factors: tuple[Fact, ...]
    metrics: tuple[Fact, ...]
    data: tuple[Fact, ...]
    quantitative: tuple[SliceView, ...]
    quant_metrics: tuple[str, ...]
    ethical_placeholder: str
    caveats: tuple[str, ...]
    recommendations: tuple[str, ...]


@dataclass(frozen=True)
class _Card:
    """What the card is built from: the typed record and the report's sections built from it."""

    results: Results
    model_view: ModelView | None
    slices: Sequence[SliceView]
    repairs: Sequence[MitigationView]
    metrics: Sequence[str]
    has_ci: bool
    ci_percent: str
    rows: int | None

    @property
    def entries(self) -> list[object]:
        return self.results.repairs


def _names(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _details(c: _Card) -> list[Fact]:
    model = c.results.model
    facts: list[Fact] = []
    if c.model_view is not None:
        facts.append(Fact("Model", c.model_view.title, note="details in the Model section"))
        facts.extend(f for f in c.model_view.facts if f.summary and f.label != "Splits")
    elif isinstance(model, TabularModel):
        facts.append(Fact("Model", model.kind,
                          note="; ".join(f"{k}: {as_text(val)}" for k, val in model.to_json().items() if k != "kind")))
    else:
        facts.append(Fact("Model", "not recorded",
                          note="the predictions were supplied to fairprompt, which knows nothing of how they were made"))
    if model is not None and model.threshold is not None:
        facts.append(Fact("Decision threshold", f"{model.threshold:g}",
                          note="predicted favourable when the score is at least this"))
    if isinstance(model, (TextModel, ImageModel)) and (model.test_accuracy is not None or model.test_auc is not None):
        ref = model.reference if isinstance(model, TextModel) else None
        note = (f"reference ({ref.kind or 'logistic regression'}): accuracy {fmt_num(ref.test_accuracy)}, "
                f"AUC {fmt_num(ref.test_auc)}" if ref is not None else "")
        facts.append(Fact("Held-out performance", f"accuracy {fmt_num(model.test_accuracy)}, AUC {fmt_num(model.test_auc)}",
                          note=note))
    for m, mv in zip(c.entries, c.repairs):
        if not mv.ok or not isinstance(m, (FairIJRepair, ReprogramRepair)):
            continue
        after = m.after_model
        parts = []
        if after is not None and after.test_accuracy is not None:
            parts.append(f"test accuracy {fmt_num(after.before_test_accuracy)} → {fmt_num(after.test_accuracy)}")
        if after is not None and after.backbone_unchanged is not None:
            parts.append("backbone unchanged (checked)" if after.backbone_unchanged else "backbone CHANGED")
        facts.append(Fact(f"Repaired variant: {mv.title}", (after.changed if after else None) or "recorded in its section",
                          note="; ".join(parts)))
    facts.append(Fact("Card", f"derived by fairprompt {c.results.fairprompt_version or DASH} from results.json",
                      note=f"run {c.results.created}" if c.results.created else ""))
    facts.append(Fact("Owner, version, licence, contact", "not recorded",
                      note="results.json does not carry them; add them where the card is published"))
    return facts


def _intended(c: _Card) -> tuple[list[Fact], str]:
    data, model, spec = c.results.data, c.results.model, c.results.spec or {}
    facts = [Fact("Intended use", "not recorded",
                  note="fairprompt cannot know what the model is for, who uses it, or which uses are out of scope")]
    if data is not None and data.label is not None:
        facts.append(Fact("Assumed: favourable outcome",
                          f"{data.label} = {data.positive_label if data.positive_label is not None else DASH}",
                          note="a positive prediction is read as the favourable decision (being selected)"))
    if data is not None and data.prediction is not None:
        threshold = None if model is None else model.threshold
        facts.append(Fact("Assumed: the decision", data.prediction,
                          note=f"decision threshold {threshold:g}" if threshold is not None else ""))
    rows = f"{c.rows:,} audited rows" if c.rows is not None else "the audited rows"
    facts.append(Fact("Assumed: the population", rows,
                      note="stand for the people the model will decide about (see the evaluation data below)"))
    facts.append(Fact("Assumed: the labels", "correct", note="bias in the true labels themselves is not measured"))
    source = spec.get("description") or spec.get("title")
    where = "the spec's description" if spec.get("description") else "the spec's title" if spec.get("title") else None
    text = f"{PLACEHOLDER} Intended use"
    text += f" of “{source}” (from {where})" if where else " (no spec with a title or description was recorded)"
    text += ": the decisions it supports, its users, and the uses that are out of scope."
    return facts, text


def _factors(c: _Card) -> list[Fact]:
    facts = []
    min_size = c.results.audit.config.min_group_size
    for s in c.slices:
        names = [g.group for g in s.groups]
        small = [g.group for g in s.groups if g.small]
        if s.is_intersection:
            facts.append(Fact(f"Intersection {s.name}", f"{len(names):,} groups",
                              note=(f"{len(small)} with fewer than {min_size} rows" if small else "")))
        else:
            counts = ", ".join(f"{g.group} ({fmt_int(g.n)})" for g in s.groups[:12])
            facts.append(Fact(f"Sensitive column {s.name}", _names(names),
                              note=f"rows per group: {counts}; reference group {s.reference} ({s.reference_rule})"))
        if s.excluded_rows:
            facts.append(Fact(f"Missing {s.name}", f"{s.excluded_rows:,} rows", note="excluded from this slice, counted"))
    if not c.slices:
        facts.append(Fact("Sensitive columns", "none recorded"))
    facts.append(Fact("Other factors", "not recorded",
                      note="instruments, environments and groups not in the data are unknown to fairprompt"))
    return facts


def _metrics(c: _Card) -> list[Fact]:
    config, b = c.results.audit.config, c.results.audit.bootstrap
    facts = [
        Fact("Per-group rates", _names([label(m) for m in c.metrics], 20), note="each with its bootstrap interval"),
        Fact("Headline disparities", ", ".join(label(m) for m in HEADLINE),
             note="between groups; the slice sections list every disparity, between groups and to a reference group"),
        Fact("Four-fifths rule", f"impact ratio ≥ {config.impact_threshold}",
             note="each group's selection rate ÷ the highest; below it: review"),
        Fact("Small categories (LL144)", f"under {fmt_pct(config.small_category_share, 0)} of rows",
             note="marked, and never the LL144 reference"),
        Fact("Minimum group size", f"{config.min_group_size} rows", note="smaller groups are flagged, not dropped"),
    ]
    if c.has_ci and b is not None:
        strat = " × ".join(b.stratified_by)
        facts.append(Fact("Confidence intervals", f"{c.ci_percent} {b.interval or 'percentile'} bootstrap",
                          note=f"{fmt_int(b.n_boot)} resamples, method {b.method or DASH}, seed {b.seed}"
                          + (f", stratified by {strat}" if strat else "")))
    else:
        facts.append(Fact("Confidence intervals", "none", note="the bootstrap was disabled (n_boot = 0)"))
    for m, mv in zip(c.entries, c.repairs):
        settings = getattr(m, "config", None) or {}
        parts = [f"{k} {settings[k]}" for k in ("measure", "max_accuracy_drop", "utility_budget", "max_fraction")
                 if settings.get(k) is not None]
        facts.append(Fact(f"Repair: {mv.title}", ", ".join(parts) or DASH,
                          note=(f"of {mv.group}" if mv.group else "group not recorded")
                          + ("" if mv.ok else f" ({mv.status.replace('_', ' ')})")))
    return facts


def _data(c: _Card) -> list[Fact]:
    data, model = c.results.data, c.results.model
    split = data.split if data is not None else None
    facts = [Fact("Evaluation data", (data.source if data is not None else None) or DASH,
                  note=(f"{c.rows:,} rows audited" if c.rows is not None else "rows not recorded")
                  + (f"; {split}" if split else ""))]
    if data is not None and data.label is not None:
        facts.append(Fact("Label", data.label, note=f"favourable value {data.positive_label}"))
    splits = model.splits if isinstance(model, (TextModel, ImageModel)) else None
    if splits is not None:
        parts = [f"{fmt_int(n)} {k}" for k, n in (("train", splits.train), ("validation", splits.validation),
                                                   ("test", splits.test)) if n is not None]
        facts.append(Fact("Training data", " · ".join(parts) or DASH, note=splits.rule or ""))
    elif model is not None:
        rows = model.train_rows if isinstance(model, TabularModel) else None
        facts.append(Fact("Training data", f"{rows:,} rows" if rows is not None else "not recorded"))
    else:
        facts.append(Fact("Training data", "not recorded", note="the predictions were supplied"))
    for m, mv in zip(c.entries, c.repairs):
        if not mv.ok or not isinstance(m, (FairIJRepair, ReprogramRepair)):
            facts.append(Fact(f"Tuning data: {mv.title}", "none", note=f"{mv.status.replace('_', ' ')}"))
            continue
        tuning = m.reprogram.tuning if isinstance(m, ReprogramRepair) and m.reprogram else None
        f = m.fairij if isinstance(m, FairIJRepair) else None
        if tuning is not None:
            value = tuning.how or DASH
            note = "; ".join(x for x in (
                f"{fmt_int(tuning.fit_rows)} rows to fit" if tuning.fit_rows is not None else "",
                f"{fmt_int(tuning.selection_rows)} rows to choose λ" if tuning.selection_rows is not None else "",
            ) if x)
        elif f is not None:
            value = f"{f.split_used_for_selection or 'validation'} split to choose k"
            note = f"{fmt_int(f.n_train)} training rows scored" if f.n_train is not None else ""
        else:
            value, note = "not recorded", ""
        test_rows = m.after_model.test_rows if m.after_model else None
        note += ("; " if note else "") + (f"after-audit on the same {test_rows:,} test rows" if test_rows
                                          else "after-audit on the test split")
        facts.append(Fact(f"Tuning data: {mv.title}", value, note=note))
    return facts


def _caveats(c: _Card) -> tuple[list[str], list[str]]:
    caveats: list[str] = []
    recs: list[str] = []
    min_n = c.results.audit.config.min_group_size
    small_any = False
    for s in c.slices:
        if s.small_groups:
            small_any = True
            caveats.append(f"{s.name}: {len(s.small_groups)} group{'s' if len(s.small_groups) != 1 else ''} with fewer than "
                           f"{min_n} rows ({', '.join(f'{g.group}, n={fmt_int(g.n)}' for g in s.small_groups)}); "
                           "their estimates are unstable.")
        for note in s.notes:
            cells = "; ".join(f"{metric} of {group}" for group, metric in note.cells[:8])
            more = f" and {len(note.cells) - 8} more" if len(note.cells) > 8 else ""
            caveats.append(f"{s.name}: undefined ({note.reason}): {cells}{more}.")
        if s.excluded_rows:
            caveats.append(f"{s.name}: {s.excluded_rows:,} rows with a missing value are not in this slice.")
        if s.verdict.uncertain:
            caveats.append(f"{s.name}: near the four-fifths threshold: the impact ratio's interval reaches below "
                           f"{s.verdict.threshold} for " + ", ".join(g for g, _ in s.verdict.uncertain) + ".")
    data = c.results.data
    if data is not None and data.rows_dropped:
        caveats.append(f"Not audited: {dropped_text(data.rows_dropped, data.dropped_missing)}.")
    degenerate = next((s.verdict.degenerate for s in c.slices if s.verdict.degenerate), ())
    if degenerate:
        caveats.append(f"The model is degenerate ({'; '.join(degenerate)}): its fairness metrics describe (nearly) one "
                       "decision for everyone, and every verdict is REVIEW.")
        recs.append("Retrain the model (class balance, more rows, learning rate, epochs) before reading its fairness "
                    "findings or repairing it.")
    review = [s.name for s in c.slices if s.verdict.status == "review"]
    if review:
        caveats.append(f"The four-fifths rule asks for review in {', '.join(review)}: evidence to review, not a legal verdict.")
    if not c.has_ci:
        caveats.append("No confidence intervals: the bootstrap was disabled (n_boot = 0).")
    if c.results.model is None:
        caveats.append("The model is not recorded: the audit covers these predictions only.")
    for m, mv in zip(c.entries, c.repairs):
        name = f"{mv.title}{f' of {mv.group}' if mv.group else ''}"
        if mv.status == "failed":
            caveats.append(f"{name} failed: {mv.error or 'no error message was recorded'}.")
            recs.append(f"Fix the cause of the failed {name} and run it again (fairprompt mitigate).")
            continue
        if not mv.ok or not isinstance(m, (FairIJRepair, ReprogramRepair)):
            caveats.append(f"{name} was not run.")
            continue
        r = mv.reprogram
        if r is not None and r.rule_met is False:
            caveats.append(f"{name}: the operating-point rule was not met (no λ > 0 kept the accuracy within the budget); "
                           f"the most accurate λ of the grid ({r.chosen_text}) was taken.")
            recs.append(f"For {name}, widen the λ grid or the accuracy budget, or try another trigger or objective.")
        if r is not None:
            caveats.extend(f"{name}: {w}" for w in r.warnings)
        if m.after_model is not None and m.after_model.backbone_unchanged is False:
            caveats.append(f"{name}: the backbone's weights changed.")
        worse = [row for row in mv.comparison if row.direction == "further from ideal" and row.slice != "overall"]
        if worse:
            caveats.append(f"After {name}, some disparities moved away from their ideal: "
                           + "; ".join(f"{row.slice} {row.label.lower()} {row.before.value_text} → {row.after.value_text}"
                                       for row in worse[:6]) + ("; …" if len(worse) > 6 else "") + ".")
        if mv.comparison:
            caveats.append(f"{name}: the before and after intervals come from separate bootstraps (not paired).")
    if small_any:
        recs.append("Collect more rows for the small groups (or merge them) before acting on their estimates.")
    if review:
        recs.append("Review the flagged disparities with the model owner (and counsel where decisions are regulated); "
                    "check whether the true labels themselves are biased.")
    if review and not c.entries:
        recs.append("Consider a prompt-only repair (a fairij or reprogram entry under mitigations in the spec) "
                    "and audit it here.")
    recs.append("Audit again after any change to the model, its decision threshold or the population it serves.")
    return caveats, recs


def build_model_card(results: Results, *, model_view: ModelView | None, slices: Sequence[SliceView],
                     repairs: Sequence[MitigationView], metrics: Sequence[str], has_ci: bool, ci_percent: str,
                     rows: int | None) -> ModelCard:
    """The model card of a run: the typed record, and the report's model, slice and repair sections built from it."""
    c = _Card(results=results, model_view=model_view, slices=slices, repairs=repairs, metrics=metrics, has_ci=has_ci,
              ci_percent=ci_percent, rows=rows)
    intended, placeholder = _intended(c)
    caveats, recs = _caveats(c)
    quant = CARD_METRICS + (("auc",) if results.audit.has_scores else ())
    return ModelCard(
        details=tuple(_details(c)), intended_use=tuple(intended), intended_placeholder=placeholder,
        factors=tuple(_factors(c)), metrics=tuple(_metrics(c)), data=tuple(_data(c)),
        quantitative=tuple(slices), quant_metrics=quant,
        ethical_placeholder=f"{PLACEHOLDER} Ethical considerations: sensitive data used, risks and harms, mitigations "
                            "beyond this audit. fairprompt measures group disparities; it does not assess these.",
        caveats=tuple(caveats), recommendations=tuple(recs),
    )
