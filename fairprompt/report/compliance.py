"""The compliance document: impact-ratio tables before and after each repair, in plain words, printable.

>>> html = render_compliance(load_results("reports/adult"))      # one self-contained page
>>> write_compliance(results, "reports/adult")                    # reports/adult/compliance.html

Built from a results dictionary alone, like the report: the tables are the
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
from fairprompt.report.view import (
    CONFIG_DEFAULTS, MITIGATION_TITLES, Compliance, Verdict, _compliance, _float, _map, _seq, _verdict, fmt_int,
    fmt_num,
)

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

    @property
    def before(self) -> AuditTables:
        return self.audits[0]

    @property
    def afters(self) -> tuple[AuditTables, ...]:
        return self.audits[1:]


def _model_text(model: Any) -> str:
    if model is None:
        return "predictions supplied by the user (fairprompt did not produce them)"
    if not isinstance(model, Mapping):
        return str(model)
    kind = str(model.get("kind") or "model")
    parts = [kind]
    for key in ("backbone", "name", "library"):
        if model.get(key):
            parts.append(f"{key} {model[key]}")
    architecture = _map(model.get("architecture"))
    if architecture.get("name"):
        parts.append(f"architecture {architecture['name']}")
    if model.get("prompt_tokens"):
        parts.append(f"{model['prompt_tokens']}-token task prompt")
    if model.get("threshold") is not None:
        parts.append(f"decision threshold {model['threshold']}")
    return ", ".join(str(p) for p in parts)


def _data_facts(results: Mapping[str, Any], audit: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    data = _map(results.get("data"))
    facts: list[tuple[str, str]] = []
    if data.get("source") is not None:
        facts.append(("Data", str(data["source"])))
    if data.get("split"):
        facts.append(("Rows audited from", str(data["split"])))
    rows = data.get("rows_audited", audit.get("n_rows"))
    if _float(rows) is not None:
        facts.append(("Rows audited", fmt_int(rows) + (" (weighted)" if audit.get("weighted") else "")))
    if data.get("label") is not None:
        facts.append(("Outcome", f"{data['label']} (favourable: {data.get('positive_label')})"))
    sensitive = [str(c) for c in _seq(data.get("sensitive"))]
    if sensitive:
        facts.append(("Categories", ", ".join(sensitive)))
    for item in _seq(results.get("inputs")):
        if isinstance(item, Mapping):
            facts.append((f"Input ({item.get('role') or 'file'})",
                          f"{item.get('path')}, sha256 {item.get('sha256')}" + (f", {fmt_int(item['rows'])} rows" if _float(item.get("rows")) is not None else "")))
    return tuple(facts)


def _ci(bootstrap: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[bool, str]:
    n_boot = _float(bootstrap.get("n_boot", config.get("n_boot"))) or 0
    level = _float(bootstrap.get("ci_level", config.get("ci_level"))) or 0.95
    return n_boot > 0, f"{100 * level:g}%"


def _audit_tables(audit: Mapping[str, Any], *, key: str, heading: str, what: str, threshold: float, share: float,
                  before: Mapping[str, Mapping[str, float | None]] | None = None) -> AuditTables:
    config = _map(audit.get("config"))
    has_ci, ci_percent = _ci(_map(audit.get("bootstrap")), config)
    slices = []
    for i, s in enumerate(_seq(audit.get("slices"))):
        if not isinstance(s, Mapping):
            continue
        comp = _compliance(s, threshold, share)
        columns = tuple(str(c) for c in _seq(s.get("columns")))
        name = str(s.get("name"))
        slices.append(ComplianceSlice(index=i, name=name, columns=columns, is_intersection=len(columns) > 1,
                                      compliance=comp, verdict=_verdict(comp),
                                      before=dict((before or {}).get(name, {}))))
    return AuditTables(key=key, heading=heading, what=what, slices=tuple(slices),
                       rows=None if _float(audit.get("n_rows")) is None else int(audit["n_rows"]),
                       weighted=bool(audit.get("weighted")), has_scores=bool(audit.get("has_scores")),
                       median_score=_float(audit.get("median_score")), ci_percent=ci_percent, has_ci=has_ci)


def _mitigation_heading(m: Mapping[str, Any]) -> tuple[str, str]:
    """(title, what was chosen) of a mitigation entry."""
    name = str(m.get("name") or "mitigation")
    title = MITIGATION_TITLES.get(name, name.replace("_", " ").capitalize())
    group = m.get("group") or _map(m.get("config")).get("group")
    if group:
        title += f" of {group}"
    chosen = ""
    if name == "reprogram":
        info = _map(m.get("reprogram"))
        if info.get("chosen_lambda") is not None:
            chosen = f"{info.get('trigger_kind') or ''} trigger, lambda {info['chosen_lambda']}".strip()
    elif name == "fairij":
        info = _map(m.get("fairij"))
        if info.get("chosen_k") is not None:
            chosen = f"{fmt_int(info['chosen_k'])} training rows down-weighted"
    return title, chosen


def _after_what(m: Mapping[str, Any], chosen: str) -> str:
    after = _map(m.get("after_model"))
    parts = ["the repaired model" + (f" ({chosen})" if chosen else ""), "on the same test rows as the before-audit"]
    if _float(after.get("before_test_accuracy")) is not None and _float(after.get("test_accuracy")) is not None:
        parts.append(f"test accuracy {fmt_num(after['before_test_accuracy'])} before, {fmt_num(after['test_accuracy'])} after")
    if after.get("changed"):
        parts.append(f"changed: {after['changed']}")
    return "; ".join(parts) + "."


def _worst(v: Verdict) -> str:
    if not v.worst:
        return "no defined impact ratio" if v.undefined else "no groups"
    group, est = v.worst
    text = f"lowest {est.value_text} ({group})"
    if v.undefined:
        text += f"; undefined for {len(v.undefined)} group{'s' if len(v.undefined) != 1 else ''}"
    return text


def build_compliance_view(results: Mapping[str, Any], *, results_sha256: str | None = None) -> ComplianceView:
    """What the compliance document shows, from a results dictionary (``results_sha256``: of the file it came from;
    without it, the SHA-256 of the results as fairprompt writes them)."""
    from fairprompt.report.render import _check
    from fairprompt.report.results import dumps

    results = _check(results)
    audit = _map(results.get("audit"))
    config = CONFIG_DEFAULTS | {k: v for k, v in _map(audit.get("config")).items() if v is not None}
    threshold = _float(config.get("impact_threshold")) or 0.8
    share = _float(config.get("small_category_share")) or 0.02
    before = _audit_tables(audit, key="before", heading="Before any repair",
                           what="the audited model as it was, on the audited rows.", threshold=threshold, share=share)
    before_ratios = {s.name: {r.group: r.impact_ratio.value for r in s.compliance.rows} for s in before.slices}
    audits = [before]
    not_shown = []
    for i, m in enumerate(_seq(results.get("mitigations"))):
        if not isinstance(m, Mapping):
            continue
        title, chosen = _mitigation_heading(m)
        status = str(m.get("status") or "not_run")
        if status != "ok":
            why = f"failed: {m.get('error') or 'no message'}" if status == "failed" else status.replace("_", " ")
            not_shown.append((title, why))
        elif not isinstance(m.get("after"), Mapping) or not _seq(m["after"].get("slices")):
            not_shown.append((title, "no after-audit in results.json"))
        else:
            audits.append(_audit_tables(m["after"], key=f"after-{i}", heading=f"After {title}", what=_after_what(m, chosen),
                                        threshold=threshold, share=share, before=before_ratios))
    verdicts = []
    for s in before.slices:
        cells = [VerdictCell(s.verdict.status, _worst(s.verdict))]
        for a in audits[1:]:
            match = next((x for x in a.slices if x.name == s.name), None)
            cells.append(VerdictCell("absent", "not in this audit") if match is None
                         else VerdictCell(match.verdict.status, _worst(match.verdict)))
        verdicts.append(VerdictRow(slice=s.name, cells=tuple(cells)))
    data = _map(results.get("data"))
    return ComplianceView(
        title=str(results.get("title") or results.get("name") or "fairprompt audit"),
        name=str(results.get("name") or ""),
        created=None if results.get("created") is None else str(results["created"]),
        fairprompt_version=None if results.get("fairprompt_version") is None else str(results["fairprompt_version"]),
        results_sha256=results_sha256 or hashlib.sha256(dumps(results).encode("utf-8")).hexdigest(),
        sha256_of_file=results_sha256 is not None,
        model=_model_text(results.get("model")),
        data=_data_facts(results, audit),
        decision=None if data.get("prediction") is None else str(data["prediction"]),
        threshold=threshold, small_category_share=share,
        audits=tuple(audits), verdicts=tuple(verdicts), not_shown=tuple(not_shown), rendered_by=__version__,
    )


def render_compliance(results: Mapping[str, Any], *, results_sha256: str | None = None) -> str:
    """The compliance document of ``results`` as one self-contained, printable HTML page."""
    from fairprompt.report.render import html_environment

    view = build_compliance_view(results, results_sha256=results_sha256)
    return html_environment().get_template("compliance.html.j2").render(c=view)


def write_compliance(results: Mapping[str, Any], out_dir: str | Path, *, results_sha256: str | None = None) -> Path:
    """Write ``OUT_DIR/compliance.html`` atomically; return its path."""
    return write_text(Path(out_dir) / COMPLIANCE_FILE, render_compliance(results, results_sha256=results_sha256))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (``results.json`` in the header)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
