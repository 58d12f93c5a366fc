"""The compliance document: impact-ratio tables before and after each repair, in plain words, printable.

>>> html = render_compliance(load_results("reports/adult"))      # one self-contained page
>>> write_compliance(results, "reports/adult")                    # reports/adult/compliance.html

Built from the typed results record alone, like the report: the tables are the
``slices[].compliance`` blocks of the before-audit (``audit``) and of each
mitigation's after-audit (``mitigations[i].after``, same layout) as results.json
carries them; nothing is recomputed.  Every string from the data is escaped by
the template (autoescaping on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairprompt import __version__
from fairprompt.atomic import write_text
from fairprompt.report.audit_view import Compliance, Verdict, compliance_view, degenerate_reasons, verdict
from fairprompt.report.format import dropped_text, fmt_int, fmt_num
from fairprompt.report.repair_view import repair_title
from fairprompt.results.audit import AuditRecord
from fairprompt.results.base import dumps
from fairprompt.results.model import ImageModel, TextModel, model_in_words
from fairprompt.results.repairs import FairIJRepair, ReprogramRepair
from fairprompt.results.run import Results, parse_results

COMPLIANCE_FILE = "compliance.html"


@dataclass(frozen=True)
class ComplianceSlice:
    """One slice's tables in one audit (before, or after a repair)."""

    index: int
    name: str
    columns: tuple[str, ...]
    is_intersection: bool
    compliance: Compliance
    verdict: Verdict
    before: Mapping[str, float | None]
    """Before-audit impact ratio per group (filled in the after-audits only, for the 'before' column)."""


@dataclass(frozen=True)
class AuditTables:
    """The tables of one audit: the before-audit, or the after-audit of one repair."""

    key: str
    """``before`` or ``after-I`` (I = index in ``mitigations``): HTML ids."""
    heading: str
    what: str
    """One sentence: which model these tables describe."""
    slices: tuple[ComplianceSlice, ...]
    rows: int | None
    weighted: bool
    has_scores: bool
    median_score: float | None
    ci_percent: str
    has_ci: bool
    degenerate: tuple[str, ...] = ()
    """Why this audit's model is degenerate (every verdict is then REVIEW); empty when it is not."""

    @property
    def is_after(self) -> bool:
        return self.key != "before"


@dataclass(frozen=True)
class VerdictCell:
    status: str
    """``pass``, ``review``, or ``absent`` (the slice is not in that audit)."""
    worst: str
    """The lowest impact ratio and its group, in words."""


@dataclass(frozen=True)
class VerdictRow:
    slice: str
    cells: tuple[VerdictCell, ...]
    """Before first, then one per shown repair."""


@dataclass(frozen=True)
class ComplianceView:
    """What the compliance document shows."""

    title: str
    name: str
    created: str | None
    fairprompt_version: str | None
    results_sha256: str
    sha256_of_file: bool
    model: str
    data: tuple[tuple[str, str], ...]
    decision: str | None
    threshold: float
    small_category_share: float
    audits: tuple[AuditTables, ...]
    verdicts: tuple[VerdictRow, ...]
    not_shown: tuple[tuple[str, str], ...]
    """Mitigations without after-tables: (title, why)."""
    rendered_by: str
    """The fairprompt version that rendered the document (``fairprompt_version`` is the one that ran the audit)."""
    dropped: str | None = None
    """The rows left out before the audit for a missing label, prediction, score or weight, in words."""

    @property
    def before(self) -> AuditTables:
        return self.audits[0]

    @property
    def afters(self) -> tuple[AuditTables, ...]:
        return self.audits[1:]


def _model_text(results: Results) -> str:
    model = results.model
    if model is None:
        return "predictions supplied by the user (fairprompt did not produce them)"
    parts = [model_in_words(model)]
    if isinstance(model, (TextModel, ImageModel)) and model.backbone_sha256:
        parts.append(f"weights sha256 {model.backbone_sha256[:12]}…")
    if model.threshold is not None:
        parts.append(f"decision threshold {model.threshold:g}")
    return ", ".join(parts)


def _data_facts(results: Results) -> tuple[tuple[str, str], ...]:
    data, audit = results.data, results.audit
    facts: list[tuple[str, str]] = []
    if data is not None and data.source is not None:
        facts.append(("Data", data.source))
    if data is not None and data.split:
        facts.append(("Rows audited from", data.split))
    rows = data.rows_audited if data is not None and data.rows_audited is not None else audit.n_rows
    facts.append(("Rows audited", fmt_int(rows) + (" (weighted)" if audit.weighted else "")))
    dropped = None if data is None else dropped_text(data.rows_dropped, data.dropped_missing)
    if dropped is not None:
        facts.append(("Rows dropped", dropped))
    if data is not None and data.label is not None:
        facts.append(("Outcome", f"{data.label} (favourable: {data.positive_label})"))
    if data is not None and data.sensitive:
        facts.append(("Categories", ", ".join(data.sensitive)))
    for item in results.inputs:
        facts.append((f"Input ({item.role or 'file'})",
                      f"{item.path}, sha256 {item.sha256}" + (f", {fmt_int(item.rows)} rows" if item.rows is not None else "")))
    return tuple(facts)


def _audit_tables(audit: AuditRecord, *, key: str, heading: str, what: str, threshold: float, share: float,
                  before: Mapping[str, Mapping[str, float | None]] | None = None) -> AuditTables:
    b = audit.bootstrap
    n_boot = b.n_boot if b is not None else audit.config.n_boot
    level = b.ci_level if b is not None else audit.config.ci_level
    slices = []
    degenerate = degenerate_reasons(audit)
    for i, s in enumerate(audit.slices):
        comp = compliance_view(s, threshold=threshold, share=share)
        slices.append(ComplianceSlice(index=i, name=s.name, columns=tuple(s.columns), is_intersection=s.is_intersection,
                                      compliance=comp, verdict=verdict(comp, degenerate=degenerate),
                                      before=dict((before or {}).get(s.name, {}))))
    return AuditTables(key=key, heading=heading, what=what, slices=tuple(slices), rows=audit.n_rows,
                       weighted=audit.weighted, has_scores=audit.has_scores, median_score=audit.median_score,
                       ci_percent=f"{100 * (level or 0.95):g}%", has_ci=bool(n_boot), degenerate=degenerate)


def _repair_heading(m: Any) -> tuple[str, str]:
    """(title, what was chosen) of a repair entry."""
    title = repair_title(m.name)
    group = m.group or (m.config or {}).get("group")
    if group:
        title += f" of {group}"
    chosen = ""
    if isinstance(m, ReprogramRepair) and m.reprogram is not None and m.reprogram.chosen_lambda is not None:
        chosen = f"{m.reprogram.trigger_kind or ''} trigger, lambda {m.reprogram.chosen_lambda}".strip()
    elif isinstance(m, FairIJRepair) and m.fairij is not None and m.fairij.chosen_k is not None:
        chosen = f"{fmt_int(m.fairij.chosen_k)} training rows down-weighted"
    return title, chosen


def _after_what(m: FairIJRepair | ReprogramRepair, chosen: str) -> str:
    after = m.after_model
    parts = ["the repaired model" + (f" ({chosen})" if chosen else ""), "on the same test rows as the before-audit"]
    if after is not None and after.before_test_accuracy is not None and after.test_accuracy is not None:
        parts.append(f"test accuracy {fmt_num(after.before_test_accuracy)} before, {fmt_num(after.test_accuracy)} after")
    if after is not None and after.changed:
        parts.append(f"changed: {after.changed}")
    return "; ".join(parts) + "."


def _worst(v: Verdict) -> str:
    if v.degenerate:
        return "degenerate model (see above)" + ("" if not v.worst else f"; lowest {v.worst[1].value_text} ({v.worst[0]})")
    if not v.worst:
        return "no defined impact ratio" if v.undefined else "no groups"
    group, est = v.worst
    text = f"lowest {est.value_text} ({group})"
    if v.undefined:
        text += f"; undefined for {len(v.undefined)} group{'s' if len(v.undefined) != 1 else ''}"
    return text


def build_compliance_view(results: Results | Mapping[str, Any], *, results_sha256: str | None = None) -> ComplianceView:
    """What the compliance document shows, from the results record (``results_sha256``: of the file it came from;
    without it, the SHA-256 of the results as fairprompt writes them)."""
    results = parse_results(results)
    config = results.audit.config
    threshold, share = float(config.impact_threshold), float(config.small_category_share)
    before = _audit_tables(results.audit, key="before", heading="Before any repair",
                           what="the audited model as it was, on the audited rows.", threshold=threshold, share=share)
    before_ratios = {s.name: {r.group: r.impact_ratio.value for r in s.compliance.rows} for s in before.slices}
    audits = [before]
    not_shown = []
    for i, m in enumerate(results.repairs):
        title, chosen = _repair_heading(m)
        if m.status == "failed":
            not_shown.append((title, f"failed: {m.error or 'no message'}"))
        elif not isinstance(m, (FairIJRepair, ReprogramRepair)):
            not_shown.append((title, m.status.replace("_", " ")))
        elif m.after is None or not m.after.slices:
            not_shown.append((title, "no after-audit in results.json"))
        else:
            audits.append(_audit_tables(m.after, key=f"after-{i}", heading=f"After {title}", what=_after_what(m, chosen),
                                        threshold=threshold, share=share, before=before_ratios))
    verdicts = []
    for s in before.slices:
        cells = [VerdictCell(s.verdict.status, _worst(s.verdict))]
        for a in audits[1:]:
            match = next((x for x in a.slices if x.name == s.name), None)
            cells.append(VerdictCell("absent", "not in this audit") if match is None
                         else VerdictCell(match.verdict.status, _worst(match.verdict)))
        verdicts.append(VerdictRow(slice=s.name, cells=tuple(cells)))
    data = results.data
    return ComplianceView(
        title=results.title or results.name or "fairprompt audit", name=results.name or "",
        created=results.created, fairprompt_version=results.fairprompt_version,
        results_sha256=results_sha256 or hashlib.sha256(dumps(results.to_json()).encode("utf-8")).hexdigest(),
        sha256_of_file=results_sha256 is not None, model=_model_text(results), data=_data_facts(results),
        decision=None if data is None else data.prediction, threshold=threshold, small_category_share=share,
        audits=tuple(audits), verdicts=tuple(verdicts), not_shown=tuple(not_shown), rendered_by=__version__,
        dropped=None if data is None or not data.rows_dropped else dropped_text(data.rows_dropped, data.dropped_missing),
    )


def render_compliance(results: Results | Mapping[str, Any], *, results_sha256: str | None = None) -> str:
    """The compliance document of ``results`` as one self-contained, printable HTML page."""
    from fairprompt.report.render import html_environment

    view = build_compliance_view(results, results_sha256=results_sha256)
    return html_environment().get_template("compliance.html.j2").render(c=view)


def write_compliance(results: Results | Mapping[str, Any], out_dir: str | Path, *,
                     results_sha256: str | None = None) -> Path:
    """Write ``OUT_DIR/compliance.html`` atomically; return its path."""
    return write_text(Path(out_dir) / COMPLIANCE_FILE, render_compliance(results, results_sha256=results_sha256))


