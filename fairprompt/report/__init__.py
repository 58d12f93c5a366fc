"""Reports: what is rendered from results.json (the typed record of :mod:`fairprompt.results`) alone.

- :class:`Report`: one report object with ``.html()``, ``.markdown()`` and ``.json()``.
- :func:`render_html`, :func:`render_markdown`, :func:`write_report`: shortcuts.
- :func:`render_compliance`, :func:`write_compliance`: the printable impact-ratio document
  (:mod:`fairprompt.report.compliance`); :func:`write_pdf`: an HTML page to PDF with headless
  Chromium (:mod:`fairprompt.report.pdf`).  Both are imported on first use.
- One module per report section over :mod:`fairprompt.report.format`: ``audit_view`` (slices), ``model_view``,
  ``repair_view`` (shared by the repair sections), ``fairij_view``, ``reprogram_view``, ``summary_view`` (the
  first screen), ``model_card``, composed by ``view``; ``plots`` draws the figures.

Nothing here knows about models or torch; matplotlib is imported only when figures are drawn.
"""

from fairprompt.report.render import REPORT_FILE, Report, render_html, render_markdown, write_report

__all__ = ["REPORT_FILE", "Report", "render_html", "render_markdown", "write_report", "render_compliance",
           "write_compliance", "write_pdf"]

_LAZY = {"render_compliance": "fairprompt.report.compliance", "write_compliance": "fairprompt.report.compliance",
         "write_pdf": "fairprompt.report.pdf"}


def __getattr__(name: str) -> object:
    """Import the compliance document and the PDF printer only when they are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
