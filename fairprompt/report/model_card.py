"""A model card (Mitchell et al., 2019, "Model Cards for Model Reporting") derived from results.json alone.

:func:`build_model_card` fills the card's headings (model details, intended use, factors, metrics and thresholds,
evaluation, training and tuning data, quantitative analyses, ethical considerations, caveats and
recommendations) from what the run recorded.  What fairprompt cannot know (what the model is for, who owns
it) is said to be unknown, with the audit's assumptions and a plainly labelled placeholder for the owner to
replace; nothing is invented.  User strings stay as they are and are escaped by the renderers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fairprompt.report.view import (
    DASH, HEADLINE, Fact, SliceView, _float, _int, _map, _seq, fmt_int, fmt_num, fmt_pct, label,
)

if TYPE_CHECKING:
    from fairprompt.report.view import Overview

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


def _names(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _details(results: Mapping[str, Any], v: Overview) -> list[Fact]:
    model = _map(results.get("model"))
    facts: list[Fact] = []
    if v.model_view is not None:
        facts.append(Fact("Model", v.model_view.title, note="details in the Model section"))
        facts.extend(f for f in v.model_view.facts if f.summary and f.label != "Splits")
    elif v.model:
        facts.append(Fact("Model", str(dict(v.model).get("kind") or "recorded"),
                          note="; ".join(f"{k}: {val}" for k, val in v.model if k != "kind")))
    else:
        facts.append(Fact("Model", "not recorded",
                          note="the predictions were supplied to fairprompt, which knows nothing of how they were made"))
    if _float(model.get("threshold")) is not None:
        facts.append(Fact("Decision threshold", f"{_float(model['threshold']):g}",
                          note="predicted favourable when the score is at least this"))
    if _float(model.get("test_accuracy")) is not None or _float(model.get("test_auc")) is not None:
        ref = _map(model.get("reference"))
        note = (f"reference ({ref.get('kind') or 'logistic regression'}): accuracy {fmt_num(ref.get('test_accuracy'))}, "
                f"AUC {fmt_num(ref.get('test_auc'))}" if ref else "")
        facts.append(Fact("Held-out performance", f"accuracy {fmt_num(model.get('test_accuracy'))}, "
                          f"AUC {fmt_num(model.get('test_auc'))}", note=note))
    for m, mv in zip(_entries(results), v.mitigations):
        if not mv.ok:
            continue
        after = _map(m.get("after_model"))
        parts = []
        if _float(after.get("test_accuracy")) is not None:
            parts.append(f"test accuracy {fmt_num(after.get('before_test_accuracy'))} → {fmt_num(after.get('test_accuracy'))}")
        if after.get("backbone_unchanged") is not None:
            parts.append("backbone unchanged (checked)" if after["backbone_unchanged"] else "backbone CHANGED")
        facts.append(Fact(f"Repaired variant: {mv.title}", str(after.get("changed") or "recorded in its section"),
                          note="; ".join(parts)))
    facts.append(Fact("Card", f"derived by fairprompt {v.fairprompt_version or DASH} from results.json",
                      note=f"run {v.created}" if v.created else ""))
    facts.append(Fact("Owner, version, licence, contact", "not recorded",
                      note="results.json does not carry them; add them where the card is published"))
    return facts


def _entries(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in _seq(results.get("mitigations")) if isinstance(m, Mapping)]


def _intended(results: Mapping[str, Any], v: Overview) -> tuple[list[Fact], str]:
    data, model, spec = v.data, _map(results.get("model")), _map(results.get("spec"))
    facts = [Fact("Intended use", "not recorded",
                  note="fairprompt cannot know what the model is for, who uses it, or which uses are out of scope")]
    if data.get("label") is not None:
        facts.append(Fact("Assumed: favourable outcome",
                          f"{data.get('label')} = {data.get('positive_label') if data.get('positive_label') is not None else DASH}",
                          note="a positive prediction is read as the favourable decision (being selected)"))
    if data.get("prediction") is not None:
        facts.append(Fact("Assumed: the decision", str(data["prediction"]),
                          note=f"decision threshold {_float(model['threshold']):g}" if _float(model.get("threshold")) is not None else ""))
    rows = f"{v.rows:,} audited rows" if v.rows is not None else "the audited rows"
    facts.append(Fact("Assumed: the population", rows,
                      note="stand for the people the model will decide about (see the evaluation data below)"))
    facts.append(Fact("Assumed: the labels", "correct", note="bias in the true labels themselves is not measured"))
    source = spec.get("description") or spec.get("title")
    where = "the spec's description" if spec.get("description") else "the spec's title" if spec.get("title") else None
    text = f"{PLACEHOLDER} Intended use"
    text += f" of “{source}” (from {where})" if where else " (no spec with a title or description was recorded)"
    text += ": the decisions it supports, its users, and the uses that are out of scope."
    return facts, text


def _factors(v: Overview) -> list[Fact]:
    facts = []
    for s in v.slices:
        names = [g.group for g in s.groups]
        small = [g.group for g in s.groups if g.small]
        if s.is_intersection:
            facts.append(Fact(f"Intersection {s.name}", f"{len(names):,} groups",
                              note=(f"{len(small)} with fewer than {v.config.get('min_group_size')} rows" if small else "")))
        else:
            counts = ", ".join(f"{g.group} ({fmt_int(g.n)})" for g in s.groups[:12])
            facts.append(Fact(f"Sensitive column {s.name}", _names(names),
                              note=f"rows per group: {counts}; reference group {s.reference} ({s.reference_rule})"))
        if s.excluded_rows:
            facts.append(Fact(f"Missing {s.name}", f"{s.excluded_rows:,} rows", note="excluded from this slice, counted"))
    if not v.slices:
        facts.append(Fact("Sensitive columns", "none recorded"))
    facts.append(Fact("Other factors", "not recorded",
                      note="instruments, environments and groups not in the data are unknown to fairprompt"))
    return facts


def _metrics(results: Mapping[str, Any], v: Overview) -> list[Fact]:
    c, b = v.config, v.bootstrap
    rates = [label(m) for m in v.group_metrics + v.score_metrics + v.more_metrics]
    facts = [
        Fact("Per-group rates", _names(rates, 20), note="each with its bootstrap interval"),
        Fact("Headline disparities", ", ".join(label(m) for m in HEADLINE),
             note="between groups; the slice sections list every disparity, between groups and to a reference group"),
        Fact("Four-fifths rule", f"impact ratio ≥ {c.get('impact_threshold')}",
             note="each group's selection rate ÷ the highest; below it: review"),
        Fact("Small categories (LL144)", f"under {fmt_pct(c.get('small_category_share'), 0)} of rows",
             note="marked, and never the LL144 reference"),
        Fact("Minimum group size", f"{c.get('min_group_size')} rows", note="smaller groups are flagged, not dropped"),
    ]
    if v.has_ci:
        strat = " × ".join(str(x) for x in _seq(b.get("stratified_by")))
        facts.append(Fact("Confidence intervals", f"{v.ci_percent} {b.get('interval') or 'percentile'} bootstrap",
                          note=f"{fmt_int(b.get('n_boot'))} resamples, method {b.get('method') or DASH}, seed {b.get('seed')}"
                          + (f", stratified by {strat}" if strat else "")))
    else:
        facts.append(Fact("Confidence intervals", "none", note="the bootstrap was disabled (n_boot = 0)"))
    for m, mv in zip(_entries(results), v.mitigations):
        config = _map(m.get("config"))
        parts = [f"{k} {config[k]}" for k in ("measure", "max_accuracy_drop", "utility_budget", "max_fraction")
                 if config.get(k) is not None]
        facts.append(Fact(f"Repair: {mv.title}", ", ".join(parts) or DASH,
                          note=(f"of {mv.group}" if mv.group else "group not recorded")
                          + ("" if mv.ok else f" ({mv.status.replace('_', ' ')})")))
    return facts


def _data(results: Mapping[str, Any], v: Overview) -> list[Fact]:
    data, model = v.data, _map(results.get("model"))
    facts = [Fact("Evaluation data", str(data.get("source") or DASH),
                  note=(f"{v.rows:,} rows audited" if v.rows is not None else "rows not recorded")
                  + (f"; {data['split']}" if data.get("split") else ""))]
    if data.get("label") is not None:
        facts.append(Fact("Label", str(data["label"]), note=f"favourable value {data.get('positive_label')}"))
    splits = _map(model.get("splits"))
    if splits:
        parts = [f"{fmt_int(splits[k])} {k}" for k in ("train", "validation", "test") if _float(splits.get(k)) is not None]
        facts.append(Fact("Training data", " · ".join(parts) or DASH, note=str(splits.get("rule") or "")))
    elif model:
        rows = _int(model.get("train_rows"))
        facts.append(Fact("Training data", f"{rows:,} rows" if rows is not None else "not recorded"))
    else:
        facts.append(Fact("Training data", "not recorded", note="the predictions were supplied"))
    for m, mv in zip(_entries(results), v.mitigations):
        if not mv.ok:
            facts.append(Fact(f"Tuning data: {mv.title}", "none", note=f"{mv.status.replace('_', ' ')}"))
            continue
        tuning = _map(_map(m.get("reprogram")).get("tuning"))
        f = _map(m.get("fairij"))
        if tuning:
            value = str(tuning.get("how") or DASH)
            note = "; ".join(x for x in (
                f"{fmt_int(tuning.get('fit_rows'))} rows to fit" if tuning.get("fit_rows") is not None else "",
                f"{fmt_int(tuning.get('selection_rows'))} rows to choose λ" if tuning.get("selection_rows") is not None else "",
            ) if x)
        elif f:
            value = f"{f.get('split_used_for_selection') or 'validation'} split to choose k"
            note = f"{fmt_int(f.get('n_train'))} training rows scored" if f.get("n_train") is not None else ""
        else:
            value, note = "not recorded", ""
        test_rows = _int(_map(m.get("after_model")).get("test_rows"))
        note += ("; " if note else "") + (f"after-audit on the same {test_rows:,} test rows" if test_rows else "after-audit on the test split")
        facts.append(Fact(f"Tuning data: {mv.title}", value, note=note))
    return facts


def _caveats(results: Mapping[str, Any], v: Overview) -> tuple[list[str], list[str]]:
    caveats: list[str] = []
    recs: list[str] = []
    min_n = v.config.get("min_group_size")
    small_any = False
    for s in v.slices:
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
    review = [s.name for s in v.slices if s.verdict.status == "review"]
    if review:
        caveats.append(f"The four-fifths rule asks for review in {', '.join(review)}: evidence to review, not a legal verdict.")
    if not v.has_ci:
        caveats.append("No confidence intervals: the bootstrap was disabled (n_boot = 0).")
    if v.model_view is None and not v.model:
        caveats.append("The model is not recorded: the audit covers these predictions only.")
    entries = _entries(results)
    for m, mv in zip(entries, v.mitigations):
        name = f"{mv.title}{f' of {mv.group}' if mv.group else ''}"
        if mv.status == "failed":
            caveats.append(f"{name} failed: {mv.error or 'no error message was recorded'}.")
            recs.append(f"Fix the cause of the failed {name} and run it again (fairprompt mitigate).")
            continue
        if not mv.ok:
            caveats.append(f"{name} was not run.")
            continue
        r = mv.reprogram
        if r is not None and r.rule_met is False:
            caveats.append(f"{name}: the operating-point rule was not met (no λ > 0 kept the accuracy within the budget); "
                           f"the most accurate λ of the grid ({r.chosen_text}) was taken.")
            recs.append(f"For {name}, widen the λ grid or the accuracy budget, or try another trigger or objective.")
        if r is not None:
            caveats.extend(f"{name}: {w}" for w in r.warnings)
        after = _map(m.get("after_model"))
        if after.get("backbone_unchanged") is False:
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
    if review and not entries:
        recs.append("Consider a prompt-only repair (a fairij or reprogram entry under mitigations in the spec) and audit it here.")
    recs.append("Audit again after any change to the model, its decision threshold or the population it serves.")
    return caveats, recs


def build_model_card(results: Mapping[str, Any], v: Overview) -> ModelCard:
    """The model card of a results dictionary and its :class:`~fairprompt.report.view.Overview`."""
    intended, placeholder = _intended(results, v)
    caveats, recs = _caveats(results, v)
    quant = CARD_METRICS + (("auc",) if v.has_scores else ())
    return ModelCard(
        details=tuple(_details(results, v)), intended_use=tuple(intended), intended_placeholder=placeholder,
        factors=tuple(_factors(v)), metrics=tuple(_metrics(results, v)), data=tuple(_data(results, v)),
        quantitative=v.slices, quant_metrics=quant,
        ethical_placeholder=f"{PLACEHOLDER} Ethical considerations: sensitive data used, risks and harms, mitigations "
                            "beyond this audit. fairprompt measures group disparities; it does not assess these.",
        caveats=tuple(caveats), recommendations=tuple(recs),
    )
