"""What a report shows, built from the typed results record alone: one :class:`Overview` that every renderer
(HTML, Markdown) formats the same way.

:func:`build_view` parses the record once (:func:`fairprompt.results.parse_results`) and composes the sections,
each built by its own module from the record: the slices (:mod:`~fairprompt.report.audit_view`), the model
(:mod:`~fairprompt.report.model_view`), one section per repair (:mod:`~fairprompt.report.fairij_view`,
:mod:`~fairprompt.report.reprogram_view`, :mod:`~fairprompt.report.repair_view`), then the first screen
(:mod:`~fairprompt.report.summary_view`) and the model card (:mod:`~fairprompt.report.model_card`), which read the
sections. Nothing here knows about models, torch or markup; user strings are kept as they are and escaped by the
renderers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fairprompt.metrics.compare import HEADLINE
from fairprompt.metrics.degenerate import MAX_DECISION_SHARE, MIN_GROUP_ROWS, MIN_LABEL_SHARE
from fairprompt.report.audit_view import (
    GROUP_METRICS,
    MORE_METRICS,
    SCORE_COLUMNS,
    SliceView,
    degenerate_reasons,
    disparity_estimate,
    slice_view,
)
from fairprompt.report.fairij_view import fairij_view
from fairprompt.report.format import Estimate, as_text, command_line, dropped_text
from fairprompt.report.model_card import ModelCard, build_model_card
from fairprompt.report.model_view import ModelView, build_model_view
from fairprompt.report.repair_view import MitigationView, unfinished_view, with_shipped
from fairprompt.report.reprogram_view import reprogram_mitigation_view
from fairprompt.report.summary_view import SummaryView, build_summary
from fairprompt.results.audit import AuditConfigRecord, BootstrapRecord, DegenerateThresholds
from fairprompt.results.model import TabularModel, model_in_words
from fairprompt.results.run import DataRecord, Results, parse_results


@dataclass(frozen=True)
class Overview:
    """Everything a renderer needs, derived from one results record."""

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
    """A model without a Model section (the tabular baseline) as key/value pairs (nested values as JSON)."""
    model_view: ModelView | None
    """The Model section of a frozen text or image model."""
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
    headline_metrics: tuple[str, ...]
    """The between-groups disparities of each slice's verdict (:data:`fairprompt.metrics.compare.HEADLINE`)."""
    mitigations: tuple[MitigationView, ...]
    """The before/after sections, one per ``mitigations[]`` entry (empty without mitigations)."""
    summary: SummaryView
    """The first screen (:mod:`fairprompt.report.summary_view`)."""
    model_card: ModelCard
    """The model card (:mod:`fairprompt.report.model_card`)."""
    spec_yaml: str | None
    """The spec as YAML, for the Provenance section."""
    degenerate: tuple[str, ...] = ()
    """Why the model as audited is degenerate (:mod:`fairprompt.metrics.degenerate`); empty when it is not."""
    degenerate_thresholds: DegenerateThresholds | None = None
    """The thresholds of the degenerate-model rule (as recorded, else this version's)."""
    counterfactual: Any = None
    """The counterfactual audit (:class:`fairprompt.results.counterfactual.CounterfactualRecord`), when run."""

    @property
    def ci_suffix(self) -> str:
        """`` [95% CI]`` for a column header, or nothing when the audit has no intervals (``n_boot = 0``)."""
        return f" [{self.ci_percent} CI]" if self.has_ci else ""

    @property
    def verdict(self) -> Literal["pass", "review"]:
        """``review`` when any slice needs review, or the model is degenerate."""
        return "review" if self.degenerate or any(s.verdict.status == "review" for s in self.slices) else "pass"

    @property
    def dropped(self) -> str | None:
        """The rows left out before the audit for a missing label, prediction, score or weight, in words (None:
        such rows were refused, not dropped)."""
        return dropped_text(self.data.get("rows_dropped"), self.data.get("dropped_missing"))


def _spec_yaml(spec: Any) -> str | None:
    if spec is None:
        return None
    import yaml

    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def repair_views(results: Results) -> tuple[MitigationView, ...]:
    """The report section of each ``mitigations[]`` entry, in order (FairIJ, FairReprogram; a repair of another
    name that failed or did not run gets the plain section)."""
    views = []
    for index, m in enumerate(results.repairs):
        if m.name == "reprogram":
            views.append(reprogram_mitigation_view(index, m))
        elif m.name == "fairij":
            views.append(fairij_view(index, m))
        else:
            views.append(unfinished_view(index, m))
        views[-1] = with_shipped(views[-1], getattr(m, "shipped", None))
    return tuple(views)


def build_view(results: Results | Mapping[str, Any]) -> Overview:
    """Derive what every renderer shows from a results record (or mapping, checked first)."""
    results = parse_results(results)
    audit = results.audit
    config = audit.config or AuditConfigRecord()
    bootstrap = audit.bootstrap
    score_metrics = SCORE_COLUMNS if audit.has_scores else ()
    metrics = GROUP_METRICS + score_metrics + MORE_METRICS
    threshold = float(config.impact_threshold) or 0.8
    share = float(config.small_category_share) or 0.02
    n_boot = bootstrap.n_boot if bootstrap is not None else (config.n_boot or 0)
    level = (bootstrap.ci_level if bootstrap is not None else config.ci_level) or 0.95
    data = results.data or DataRecord()
    rows = data.rows_audited if data.rows_audited is not None else audit.n_rows
    model = results.model
    degenerate = degenerate_reasons(audit)
    slices = tuple(slice_view(i, s, metrics=metrics, threshold=threshold, share=share, degenerate=degenerate)
                   for i, s in enumerate(audit.slices))
    repairs = repair_views(results)
    model_view = build_model_view(model)
    ci_percent = f"{100 * level:g}%"
    summary = build_summary(results, slices=slices, repairs=repairs,
                            model=model_view.title if model_view else model_in_words(model).replace("_", " "),
                            model_anchor="model" if model_view else None, rows=rows, ci_percent=ci_percent,
                            threshold=threshold, share=share, model_notes=model_view.notes if model_view else ())
    card = build_model_card(results, model_view=model_view, slices=slices, repairs=repairs,
                            metrics=metrics, has_ci=n_boot > 0, ci_percent=ci_percent, rows=rows)
    return Overview(
        title=results.title or results.name or "fairprompt audit", name=results.name or "", created=results.created,
        fairprompt_version=results.fairprompt_version, schema_version=results.schema_version,
        command=command_line(results.command), data=data.model_dump(), sensitive=tuple(data.sensitive), rows=rows,
        model=tuple((k, as_text(v)) for k, v in model.to_json().items()) if isinstance(model, TabularModel) else None,
        model_view=model_view, weighted=audit.weighted, has_scores=audit.has_scores, median_score=audit.median_score,
        config=config.model_dump(), bootstrap=(bootstrap or BootstrapRecord(n_boot=0, ci_level=level)).model_dump(),
        has_ci=n_boot > 0, ci_percent=ci_percent,
        overall=tuple((o.metric, o.description or "", disparity_estimate(o)) for o in audit.overall),
        slices=slices,
        inputs=tuple(i.model_dump() for i in results.inputs),
        packages=tuple(results.packages.items()), seeds=tuple(results.seeds.items()),
        spec_json=None if results.spec is None else json.dumps(results.spec, indent=2, ensure_ascii=False),
        group_metrics=GROUP_METRICS, score_metrics=score_metrics, more_metrics=MORE_METRICS,
        descriptions=dict(audit.metric_descriptions), headline_metrics=HEADLINE, mitigations=repairs, summary=summary,
        model_card=card, spec_yaml=_spec_yaml(results.spec), degenerate=degenerate,
        degenerate_thresholds=(audit.degenerate.thresholds if audit.degenerate is not None and audit.degenerate.thresholds
                               else DegenerateThresholds(min_group_rows=MIN_GROUP_ROWS, min_label_share=MIN_LABEL_SHARE,
                                                         max_decision_share=MAX_DECISION_SHARE)),
        counterfactual=results.counterfactual,
    )
