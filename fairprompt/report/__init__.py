"""Reports: results.json (the one record of a run) and what is rendered from it alone.

- :mod:`fairprompt.report.results`: build, write and read results.json.
- :class:`Report`: one report object with ``.html()``, ``.markdown()`` and ``.json()``.
- :func:`render_html`, :func:`render_markdown`, :func:`write_report`: shortcuts.
- :func:`render_compliance`, :func:`write_compliance`: the printable impact-ratio document
  (:mod:`fairprompt.report.compliance`); :func:`write_pdf`: an HTML page to PDF with headless
  Chromium (:mod:`fairprompt.report.pdf`).  Both are imported on first use.

Nothing here knows about models or torch; matplotlib is imported only when
figures are drawn.
"""

from fairprompt.report.render import REPORT_FILE, Report, render_html, render_markdown, write_report
from fairprompt.report.results import build_results, dumps, load_results, write_results

__all__ = [
    "REPORT_FILE", "Report", "build_results", "dumps", "load_results", "render_html", "render_markdown",
    "write_report", "write_results", "render_compliance", "write_compliance", "write_pdf",
]

_LAZY = {"render_compliance": "fairprompt.report.compliance", "write_compliance": "fairprompt.report.compliance",
         "write_pdf": "fairprompt.report.pdf"}


def __getattr__(name: str) -> object:
    """Import the compliance document and the PDF printer only when they are used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
