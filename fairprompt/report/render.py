"""The report: one object, built from the results record alone, with several renderers.

>>> report = Report(load_results("reports/adult"))
>>> report.html()       # one self-contained page: no scripts, no external resources
>>> report.markdown()   # a short summary for a pull request or a ticket
>>> report.json()       # the results.json text itself
>>> report.write("reports/adult")   # reports/adult/report.html, written atomically

Templates live in ``fairprompt/report/templates``; HTML is rendered with
autoescaping on, so every string that came from a user's data (titles, column
names, group values, paths) is escaped, and one that could reorder the page
(right-to-left text, a U+202E override) is isolated (:func:`isolate_bidi`).  The only markup inserted as is are the
figures' SVG, which matplotlib writes with the text escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from fairprompt.atomic import write_text
from fairprompt.report.format import (
    Estimate,
    fmt_change,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_seconds,
    fmt_share,
    fmt_weight,
    isolate_bidi,
    label,
)
from fairprompt.report.view import Overview, build_view
from fairprompt.results import Results, dumps, load_results, parse_results

REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.md"

_HELPERS = {"label": label, "fmt_num": fmt_num, "fmt_int": fmt_int, "fmt_pct": fmt_pct, "fmt_weight": fmt_weight,
            "fmt_change": fmt_change, "fmt_share": fmt_share, "fmt_seconds": fmt_seconds}


class _MarkdownSafe(str):
    """Text the Markdown renderer writes as it is (none is produced from user data)."""


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")


def markdown_escape(value: Any) -> str:
    """Backslash-escape Markdown punctuation and flatten newlines, so user text stays text in any cell."""
    if value is None:
        return "—"
    if isinstance(value, _MarkdownSafe):
        return str(value)
    text = re.sub(r"\s*[\r\n]+\s*", " ", str(value))
    return _MD_SPECIAL.sub(r"\\\1", text)


def markdown_number(value: Any) -> str:
    """An :class:`Estimate` or a number, written without escaping (its text holds only digits and brackets)."""
    if isinstance(value, Estimate):
        return _MarkdownSafe(value.text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _MarkdownSafe(f"{value:,}" if isinstance(value, int) else f"{value:g}")
    raise TypeError(f"the num filter takes an Estimate or a number, got {type(value).__name__}")


def _loader() -> jinja2.BaseLoader:
    return jinja2.PackageLoader("fairprompt.report", "templates")


@cache
def html_environment() -> jinja2.Environment:
    """The Jinja2 environment of the HTML report (autoescaping on for everything)."""
    env = jinja2.Environment(loader=_loader(), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=isolate_bidi)
    env.globals.update(_HELPERS)
    return env


@cache
def markdown_environment() -> jinja2.Environment:
    """The Jinja2 environment of the Markdown summary: every expression is Markdown-escaped."""
    env = jinja2.Environment(loader=_loader(), autoescape=False, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=markdown_escape)
    env.globals.update(_HELPERS)
    env.filters["num"] = markdown_number
    return env


class Report:
    """A report of one audit, rendered from its results record (``results.json``) alone.

    Args:
        results: the typed record (:func:`fairprompt.results.load_results`), or a results mapping (as from
            :func:`fairprompt.results.build_results`), which is checked as a whole first.
    """

    def __init__(self, results: Results | Mapping[str, Any]) -> None:
        self.results: Results = parse_results(results)
        self.view: Overview = build_view(self.results)

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read ``results.json`` (or ``DIR/results.json``) and build its report."""
        return cls(load_results(path))

    def figures(self) -> list[list[Any]]:
        """The figures of every slice, in slice order (see :mod:`fairprompt.report.plots`)."""
        from fairprompt.report.plots import slice_figures

        threshold = float(self.view.config.get("impact_threshold") or 0.8)
        return [slice_figures(s.record, index=s.index, has_scores=self.view.has_scores, threshold=threshold,
                              ci_percent=self.view.ci_percent if self.view.has_ci else "")
                   for s in self.view.slices]

    def model_figures(self) -> list[Any]:
        """The figures of the Model section (the training curve), empty without one."""
        if self.view.model_view is None or self.view.model_view.curve is None:
            return []
        from fairprompt.report.plots import model_figures

        return model_figures(self.view.model_view.curve)

    def mitigation_figures(self) -> list[list[Any]]:
        """The figures of each mitigation section (the FairIJ curve), in order; empty without mitigations."""
        if not self.view.mitigations:
            return []
        from fairprompt.report.repair_plots import mitigation_figures

        return [mitigation_figures(m, prefix=f"fpmit{m.index}-") if m.ok else [] for m in self.view.mitigations]

    def summary_figures(self) -> list[Any]:
        """The first screen's accuracy-fairness plot; empty without mitigations."""
        if self.view.summary is None or not self.view.summary.has_plot:
            return []
        from fairprompt.report.repair_plots import summary_figures

        return summary_figures(self.view.summary)

    def html(self) -> str:
        """The full report as one self-contained HTML page (no scripts, no external resources)."""
        template = html_environment().get_template("report.html.j2")
        return template.render(v=self.view, figures_by_slice=self.figures(), model_figures=self.model_figures(),
                               mitigation_figures=self.mitigation_figures(), summary_figures=self.summary_figures())

    def markdown(self) -> str:
        """A short Markdown summary: what was audited, each slice's verdict and headline disparities."""
        return markdown_environment().get_template("summary.md.j2").render(v=self.view)

    def json(self) -> str:
        """The results as strict JSON text (the content of results.json)."""
        return dumps(self.results.to_json())

    def write(self, out_dir: str | Path, *, markdown: bool = False) -> Path:
        """Write ``OUT_DIR/report.html`` atomically (and ``summary.md`` if asked); return the HTML path."""
        out = Path(out_dir)
        path = write_text(out / REPORT_FILE, self.html())
        if markdown:
            write_text(out / SUMMARY_FILE, self.markdown())
        return path


def render_html(results: Results | Mapping[str, Any]) -> str:
    """The HTML report of ``results`` (one self-contained page)."""
    return Report(results).html()


def render_markdown(results: Results | Mapping[str, Any]) -> str:
    """A short Markdown summary of ``results``."""
    return Report(results).markdown()


def write_report(results: Results | Mapping[str, Any], out_dir: str | Path, *, markdown: bool = False) -> Path:
    """Write ``OUT_DIR/report.html`` atomically from ``results``; return its path."""
    return Report(results).write(out_dir, markdown=markdown)
