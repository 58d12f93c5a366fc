"""Reports: results.json (the one record of a run) and what is rendered from it alone.

- :mod:`fairprompt.report.results`: build, write and read results.json.
- :class:`Report`: one report object with ``.html()``, ``.markdown()`` and ``.json()``.
- :func:`render_html`, :func:`render_markdown`, :func:`write_report`: shortcuts.

Nothing here knows about models or torch; matplotlib is imported only when
figures are drawn.
"""

from fairprompt.report.render import REPORT_FILE, Report, render_html, render_markdown, write_report
from fairprompt.report.results import build_results, dumps, load_results, write_results

__all__ = [
    "REPORT_FILE", "Report", "build_results", "dumps", "load_results", "render_html", "render_markdown",
    "write_report", "write_results",
]
