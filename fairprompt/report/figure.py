"""What every report figure shares: inline SVG drawn with matplotlib, deterministic and readable in black and white.

Every figure is drawn on a bare :class:`matplotlib.figure.Figure` with an Agg canvas (no pyplot, so no global figure
state and nothing left open) inside an ``rc_context`` that fixes ``svg.fonttype='none'`` (text stays text, escaped
by matplotlib) and a per-figure ``svg.hashsalt``, and is saved with ``metadata={'Date': None}``: two renders of the
same results are byte-identical.  Element ids are prefixed per figure so several figures can share one HTML page.
Figures read in black and white: groups differ by marker, line style and hatch, never by colour alone, and carry
their names as labels.  The figures themselves: :mod:`fairprompt.report.plots` (slices and training curves) and
:mod:`fairprompt.report.repair_plots` (repairs and the first screen).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import matplotlib
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from fairprompt.report.format import visible_controls

COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B")
"""Okabe-Ito palette (colour-blind safe; yellow swapped for brown, which reads on white); always paired with markers
and line styles."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
LINESTYLES = ("-", "--", ":", "-.")

RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d0d0d0",
    "grid.linewidth": 0.5,
    "hatch.linewidth": 0.7,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "path.simplify": False,
    "text.usetex": False,
}


@dataclass(frozen=True)
class Figure:
    """One rendered figure: an id fragment, a title, a caption and the SVG markup."""

    key: str
    title: str
    caption: str
    svg: Markup


def plain(text: str) -> str:
    """A label matplotlib draws literally: no mathtext from ``$``, bidirectional controls shown, not obeyed."""
    return visible_controls(str(text)).replace("$", r"\$")


def as_nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


_TAG = re.compile(r"<[^>]*>")
_ID = re.compile(r'(\bid="|url\(#|href="#)([^"()]+)')


def clean_svg(svg: str, prefix: str) -> Markup:
    """Strip the XML prolog and metadata, and prefix every id and id reference with ``prefix``."""
    start = svg.find("<svg")
    svg = svg[start:]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    # Only rewrite inside tags: text nodes (group names) are escaped by matplotlib and left as they are.
    svg = _TAG.sub(lambda m: _ID.sub(lambda i: f"{i.group(1)}{prefix}{i.group(2)}", m.group(0)), svg)
    svg = svg.replace("<svg ", '<svg class="plot" role="img" ', 1)
    if "<script" in svg.lower() or "<foreignobject" in svg.lower():  # defence in depth; matplotlib never writes these
        raise ValueError("refusing to inline an SVG that contains script or foreignObject")
    return Markup(svg.strip() + "\n")  # noqa: S704 - matplotlib output only; text inside is escaped by matplotlib


def _save(fig: MplFigure, prefix: str) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight", pad_inches=0.05)
    fig.clear()
    return clean_svg(buf.getvalue(), prefix)


def new_figure(width: float, height: float) -> MplFigure:
    fig = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def render(prefix: str, draw: Any) -> Markup:
    with matplotlib.rc_context(RC | {"svg.hashsalt": prefix}):
        fig = draw()
        return _save(fig, prefix)


def series_style(i: int) -> dict[str, Any]:
    """The i-th series' colour, marker and line style."""
    return dict(color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)],
                linestyle=LINESTYLES[(i // 2) % len(LINESTYLES)] if i else "-")
