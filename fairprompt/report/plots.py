"""Report figures as inline SVG, drawn with matplotlib from a results slice alone.

Every figure is drawn on a bare :class:`matplotlib.figure.Figure` with an Agg
canvas (no pyplot, so no global figure state and nothing left open) inside an
``rc_context`` that fixes ``svg.fonttype='none'`` (text stays text, escaped by
matplotlib) and a per-figure ``svg.hashsalt``, and is saved with
``metadata={'Date': None}``: two renders of the same results are
byte-identical.  Element ids are prefixed per figure so several figures can
share one HTML page.  Figures read in black and white: groups differ by marker,
line style and hatch, never by colour alone, and carry their names as labels.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from fairprompt.results.audit import CalibrationCurve, Compliance, GroupRow, RocCurve, SliceRecord

MAX_CURVES = 12
"""Calibration and ROC plots show at most this many groups (the largest)."""

COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B")
"""Okabe-Ito palette (colour-blind safe; yellow swapped for brown, which reads on white); always paired with markers and line styles."""
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
    """A label matplotlib draws literally (no mathtext from ``$``)."""
    return str(text).replace("$", r"\$")


def _float(x: Any) -> float:
    return float("nan") if x is None else float(x)


_TAG = re.compile(r"<[^>]*>")
_ID = re.compile(r'(\bid="|url\(#|href="#)([^"()]+)')


def _clean_svg(svg: str, prefix: str) -> Markup:
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
    return _clean_svg(buf.getvalue(), prefix)


def _new(width: float, height: float) -> MplFigure:
    fig = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _render(prefix: str, draw: Any) -> Markup:
    with matplotlib.rc_context(RC | {"svg.hashsalt": prefix}):
        fig = draw()
        return _save(fig, prefix)


def _group_label(g: GroupRow) -> str:
    name = plain(g.group)
    return f"{name} (small, n={g.n})" if g.small_group else name


def _value(g: GroupRow, metric: str) -> float:
    return _float(g.estimate(metric).value)


def _err(g: GroupRow, metric: str) -> tuple[float, float]:
    est = g.estimate(metric)
    value, low, high = _float(est.value), _float(est.ci_low), _float(est.ci_high)
    if value != value or low != low or high != high:  # NaN
        return 0.0, 0.0
    return max(value - low, 0.0), max(high - value, 0.0)


def _height(n_groups: int) -> float:
    return max(2.2, 1.35 + 0.3 * n_groups)


def selection_rate_figure(groups: Sequence[GroupRow], *, compliance: Compliance | None, threshold: float,
                          ci_percent: str, prefix: str) -> Markup:
    """Horizontal bars of the selection rate per group with CI error bars and the four-fifths line."""
    table = {r.group: r for r in (compliance.table if compliance is not None else ())}

    def draw() -> MplFigure:
        fig = _new(6.4, _height(len(groups)))
        ax = fig.add_subplot()
        ys = list(range(len(groups)))[::-1]
        values = [_value(g, "selection_rate") for g in groups]
        errs = [_err(g, "selection_rate") for g in groups]
        below = [g.group in table and table[g.group].passes_four_fifths is False for g in groups]
        for y, v, (lo, hi), flag in zip(ys, values, errs, below):
            if v != v:
                ax.text(0.005, y, "undefined", va="center", fontsize=8, style="italic")
                continue
            ax.barh(y, v, height=0.62, color="#f2c8a8" if flag else "#b8cfe6", edgecolor="#333333", linewidth=0.7,
                    hatch="///" if flag else None)
            ax.errorbar(v, y, xerr=[[lo], [hi]], fmt="none", ecolor="#111111", elinewidth=1.0, capsize=3)
            ax.annotate(f"{v:.3f}", (v + hi, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7.5)
        finite = [v for v in values if v == v]
        handles = [Patch(facecolor="#b8cfe6", edgecolor="#333333", label="impact ratio at or above threshold"),
                   Patch(facecolor="#f2c8a8", edgecolor="#333333", hatch="///", label="impact ratio below threshold")]
        labels = ["impact ratio ≥ threshold", "impact ratio < threshold"]
        if finite and max(finite) > 0:
            line = threshold * max(finite)
            ax.axvline(line, color="#111111", linestyle="--", linewidth=1.0)
            handles.append(Line2D([], [], color="#111111", linestyle="--"))
            labels.append(f"{threshold:g} × highest rate = {line:.3f}")
        handles.append(Line2D([], [], color="#111111", marker="|", linestyle="none", markersize=8))
        labels.append(f"{ci_percent} CI")
        ax.set_yticks(ys, [_group_label(g) for g in groups])
        ax.set_xlim(0, min(1.0, max([v + e[1] for v, e in zip(values, errs) if v == v] + [0.1])) * 1.15)
        ax.set_xlabel("selection rate (share predicted positive)")
        ax.grid(axis="y", visible=False)
        fig.legend(handles, labels, loc="outside lower center", ncol=2, handlelength=2.2)
        return fig

    return _render(prefix, draw)


def error_rates_figure(groups: Sequence[GroupRow], *, ci_percent: str, prefix: str) -> Markup:
    """TPR (filled circles) and FPR (open squares) per group with CI error bars."""

    def draw() -> MplFigure:
        fig = _new(6.4, _height(len(groups)))
        ax = fig.add_subplot()
        ys = list(range(len(groups)))[::-1]
        for metric, offset, marker, face, text in (("tpr", 0.16, "o", "#111111", "TPR (true positive rate)"),
                                                   ("fpr", -0.16, "s", "white", "FPR (false positive rate)")):
            for y, g in zip(ys, groups):
                v = _value(g, metric)
                if v != v:
                    ax.text(0.01, y + offset, f"{metric.upper()} undefined", va="center", fontsize=7, style="italic", color="#444444")
                    continue
                lo, hi = _err(g, metric)
                ax.errorbar(v, y + offset, xerr=[[lo], [hi]], fmt=marker, color="#111111", markerfacecolor=face,
                            markeredgecolor="#111111", markersize=5.5, elinewidth=0.9, capsize=2.5)
        ax.set_yticks(ys, [_group_label(g) for g in groups])
        ax.set_ylim(-0.6, len(groups) - 0.4)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(f"rate ({ci_percent} CI)")
        ax.grid(axis="y", visible=False)
        handles = [Line2D([], [], marker="o", color="#111111", markerfacecolor="#111111", linestyle="none"),
                   Line2D([], [], marker="s", color="#111111", markerfacecolor="white", linestyle="none")]
        fig.legend(handles, ["TPR (true positive rate)", "FPR (false positive rate)"], loc="outside lower center", ncol=2)
        return fig

    return _render(prefix, draw)


def _style(i: int) -> dict[str, Any]:
    return dict(color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)],
                linestyle=LINESTYLES[(i // 2) % len(LINESTYLES)] if i else "-")


def largest_groups(groups: Sequence[GroupRow], limit: int = MAX_CURVES) -> list[GroupRow]:
    """The ``limit`` largest groups (by weight, else rows), in their original order."""
    if len(groups) <= limit:
        return list(groups)
    size = [_float(g.weight if g.weight is not None else g.n) for g in groups]
    keep = sorted(range(len(groups)), key=lambda i: (-size[i], i))[:limit]
    return [groups[i] for i in sorted(keep)]


def calibration_figure(groups: Sequence[GroupRow], curves: Mapping[str, CalibrationCurve], *, prefix: str) -> Markup:
    """Observed positive share against mean score per score bin, one line per group."""

    def draw() -> MplFigure:
        fig = _new(6.4, 4.0)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#777777", linestyle=(0, (1, 2)), linewidth=1.0)
        handles = [Line2D([], [], color="#777777", linestyle=(0, (1, 2)))]
        labels = ["perfectly calibrated"]
        for i, g in enumerate(groups):
            c = curves.get(g.group)
            pairs = [] if c is None else [(x, y) for x, y, w in zip(c.mean_score, c.positive_share, c.weight)
                                          if x is not None and y is not None and (w or 0) > 0]
            style = _style(i)
            if pairs:
                xs, ys = zip(*pairs)
                ax.plot(xs, ys, markersize=4.5, linewidth=1.2, markerfacecolor="white" if i % 2 else style["color"], **style)
            handles.append(Line2D([], [], markerfacecolor="white" if i % 2 else style["color"], **style))
            labels.append(_group_label(g) if pairs else f"{_group_label(g)} (no scores in [0, 1])")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("mean score in bin")
        ax.set_ylabel("share with positive true label")
        fig.legend(handles, labels, loc="outside right center")
        return fig

    return _render(prefix, draw)


def roc_figure(groups: Sequence[GroupRow], curves: Mapping[str, RocCurve | None], *, prefix: str) -> Markup:
    """ROC curve per group, labelled with the group's AUC."""

    def draw() -> MplFigure:
        fig = _new(6.4, 4.0)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#777777", linestyle=(0, (1, 2)), linewidth=1.0)
        handles = [Line2D([], [], color="#777777", linestyle=(0, (1, 2)))]
        labels = ["chance"]
        for i, g in enumerate(groups):
            c = curves.get(g.group)
            style = _style(i)
            auc = _value(g, "auc")
            text = _group_label(g) + (f" (AUC {auc:.3f})" if auc == auc else " (AUC undefined)")
            if c:
                fpr, tpr = list(c.fpr), list(c.tpr)
                every = max(1, len(fpr) // 8)
                ax.plot(fpr, tpr, markersize=4.0, linewidth=1.2, markevery=(i % every, every),
                        markerfacecolor="white" if i % 2 else style["color"], **style)
            handles.append(Line2D([], [], markerfacecolor="white" if i % 2 else style["color"], **style))
            labels.append(text)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        fig.legend(handles, labels, loc="outside right center")
        return fig

    return _render(prefix, draw)


def slice_figures(s: SliceRecord, *, index: int, has_scores: bool, threshold: float, ci_percent: str) -> list[Figure]:
    """All figures of one audited slice (``audit.slices[index]``)."""
    groups = list(s.groups)
    if not groups:
        return []
    figures = [
        Figure("selection", "Selection rate by group",
               f"Share of each group predicted positive, with {ci_percent} confidence intervals. Hatched bars: impact ratio "
               f"below {threshold:g}; the dashed line marks {threshold:g} × the highest selection rate.",
               selection_rate_figure(groups, compliance=s.compliance, threshold=threshold,
                                     ci_percent=ci_percent, prefix=f"fp{index}sel-")),
        Figure("errors", "True and false positive rates by group",
               f"Filled circles: TPR; open squares: FPR; bars: {ci_percent} confidence intervals. "
               "Equalized odds asks both to match across groups.",
               error_rates_figure(groups, ci_percent=ci_percent, prefix=f"fp{index}err-")),
    ]
    curves = s.curves
    if has_scores and curves is not None and (curves.calibration or curves.roc):
        shown = largest_groups(groups)
        more = "" if len(shown) == len(groups) else f" Showing the {len(shown)} largest of {len(groups)} groups."
        if curves.calibration:
            figures.append(Figure("calibration", "Calibration by group",
                                  "Share of rows with a positive true label against the mean score, per equal-width score bin "
                                  "(empty bins omitted). Points on the dotted diagonal are perfectly calibrated." + more,
                                  calibration_figure(shown, curves.calibration, prefix=f"fp{index}cal-")))
        if curves.roc:
            figures.append(Figure("roc", "ROC curve by group",
                                  "True positive rate against false positive rate as the score threshold varies." + more,
                                  roc_figure(shown, curves.roc, prefix=f"fp{index}roc-")))
    return figures


def _points(epochs: Sequence[int], values: Sequence[float | None]) -> tuple[list[int], list[float]]:
    pairs = [(e, v) for e, v in zip(epochs, values) if v is not None]
    return [e for e, _ in pairs], [v for _, v in pairs]


def training_curve_figure(*, epochs: Sequence[int], train_loss: Sequence[float | None], val_loss: Sequence[float | None],
                          train_accuracy: Sequence[float | None] = (), val_accuracy: Sequence[float | None] = (),
                          best_epoch: int | None = None, prefix: str) -> Markup:
    """Loss by epoch (training: solid line, filled circles; validation: dashed line, open squares), the best epoch
    marked by a dotted vertical line; validation (and training) accuracy in a second panel when recorded."""
    epochs = [int(e) for e in epochs]
    series = {"train_loss": _points(epochs, train_loss), "val_loss": _points(epochs, val_loss),
              "train_accuracy": _points(epochs, train_accuracy), "val_accuracy": _points(epochs, val_accuracy)}
    has_loss = bool(series["train_loss"][0] or series["val_loss"][0])
    has_accuracy = bool(series["train_accuracy"][0] or series["val_accuracy"][0])
    train_style = dict(color="#111111", linestyle="-", marker="o", markerfacecolor="#111111")
    val_style = dict(color=COLORS[1], linestyle="--", marker="s", markerfacecolor="white")
    best_style = dict(color="#555555", linestyle=(0, (1, 2)), linewidth=1.0)

    def panel(ax: Any, train: str, val: str, ylabel: str) -> None:
        for key, style in ((train, train_style), (val, val_style)):
            xs, ys = series[key]
            if xs:
                ax.plot(xs, ys, linewidth=1.3, markersize=5, markeredgecolor=style["color"], **style)
        if best_epoch is not None and epochs and min(epochs) <= best_epoch <= max(epochs):
            ax.axvline(best_epoch, **best_style)
        lo, hi = min(epochs), max(epochs)
        ax.set_xlim(lo - 0.4, hi + 0.4)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)

    def draw() -> MplFigure:
        panels = [p for p, present in (("loss", has_loss), ("accuracy", has_accuracy)) if present]
        fig = _new(2.5 * len(panels) + 0.3, 2.7)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, name in zip(axes, panels):
            if name == "loss":
                panel(ax, "train_loss", "val_loss", "loss")
                ax.set_title("Loss")
            else:
                panel(ax, "train_accuracy", "val_accuracy", "accuracy")
                ax.set_title("Accuracy")
        handles = [Line2D([], [], markeredgecolor=train_style["color"], **train_style),
                   Line2D([], [], markeredgecolor=val_style["color"], **val_style)]
        labels = ["training", "validation"]
        if best_epoch is not None:
            handles.append(Line2D([], [], **best_style))
            labels.append(f"best epoch ({best_epoch})")
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), handlelength=2.4, columnspacing=1.2)
        return fig

    return _render(prefix, draw)


def model_figures(curve: Any, *, prefix: str = "fpmodel-") -> list[Figure]:
    """The Model section's figures: the training curve of a :class:`fairprompt.report.view.TrainingCurve`, if any."""
    if curve is None or not (curve.has_loss or curve.has_accuracy):
        return []
    best = "" if curve.best_epoch is None else f" The dotted line marks the best epoch ({curve.best_epoch}), whose parameters are kept."
    what = ("Loss (left) and accuracy (right)" if curve.has_loss and curve.has_accuracy
            else "Loss" if curve.has_loss else "Accuracy")
    return [Figure(
        "training", "Training curve",
        f"{what} by epoch on the training rows (solid line, filled circles) and the validation rows "
        f"(dashed line, open squares), where recorded.{best}",
        training_curve_figure(epochs=curve.epochs, train_loss=curve.train_loss, val_loss=curve.val_loss,
                              train_accuracy=curve.train_accuracy, val_accuracy=curve.val_accuracy,
                              best_epoch=curve.best_epoch, prefix=prefix),
    )]


def _nan(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def fairij_curve_figure(*, k: Sequence[int], actual_F: Sequence[float | None], predicted_F: Sequence[float | None],
                        actual_U: Sequence[float | None] = (), predicted_U: Sequence[float | None] = (),
                        chosen_k: int | None = None, n_train: int | None = None, utility_limit: float | None = None,
                        fairness_label: str = "fairness gap", prefix: str) -> Markup:
    """FairIJ's trade-off on the validation split as k grows: the fairness gap F (left) and the validation loss U
    (right), each actual after the one-step update (solid line, filled circles) and predicted to first order
    (dashed line, open squares); the chosen k marked by a dotted vertical line and a star, the utility budget by a
    dash-dot line.  A top axis gives k as a share of the ``n_train`` training rows."""
    ks = [int(x) for x in k]
    series = {"actual_F": _nan(actual_F), "predicted_F": _nan(predicted_F),
              "actual_U": _nan(actual_U) if actual_U else [], "predicted_U": _nan(predicted_U) if predicted_U else []}
    has_U = any(v == v for v in series["actual_U"] + series["predicted_U"])
    actual_style = dict(color="#111111", linestyle="-", marker="o", markerfacecolor="#111111")
    predicted_style = dict(color=COLORS[1], linestyle="--", marker="s", markerfacecolor="white")
    chosen_style = dict(color="#555555", linestyle=(0, (1, 2)), linewidth=1.0)
    star = dict(marker="*", markersize=13, markerfacecolor="white", markeredgecolor="#111111", markeredgewidth=1.1,
                linestyle="none", zorder=5)
    budget_style = dict(color="#444444", linestyle="-.", linewidth=1.0)

    def panel(ax: Any, which: str, ylabel: str, title: str) -> None:
        for key, style in ((f"actual_{which}", actual_style), (f"predicted_{which}", predicted_style)):
            ys = series[key]
            if any(v == v for v in ys):
                ax.plot(ks, ys, linewidth=1.3, markersize=4.5, markeredgecolor=style["color"], **style)
        if chosen_k is not None and chosen_k in ks:
            ax.axvline(chosen_k, **chosen_style)
            y = series[f"actual_{which}"][ks.index(chosen_k)]
            if y == y:
                ax.plot([chosen_k], [y], **star)
        if which == "U" and utility_limit is not None:
            ax.axhline(utility_limit, **budget_style)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_xlabel("training rows down-weighted (k)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if n_train:
            top = ax.secondary_xaxis("top", functions=(lambda x: 100.0 * x / n_train, lambda p: p * n_train / 100.0))
            top.set_xlabel(f"% of the {n_train:,} training rows", fontsize=8)
            top.tick_params(labelsize=7.5)

    def draw() -> MplFigure:
        fig = _new(6.6 if has_U else 3.6, 3.2)
        axes = fig.subplots(1, 2 if has_U else 1, squeeze=False)[0]
        title = "\n".join(textwrap.wrap("F: " + plain(fairness_label), 34)) or "F"
        panel(axes[0], "F", "validation F (lower is fairer)", title)
        if has_U:
            panel(axes[1], "U", "validation U (lower is better)", "U: validation loss")
        handles = [Line2D([], [], markeredgecolor=actual_style["color"], **actual_style),
                   Line2D([], [], markeredgecolor=predicted_style["color"], **predicted_style)]
        labels = ["actual (one-step IJ update)", "predicted (first order)"]
        if chosen_k is not None and chosen_k in ks:
            handles.append(Line2D([], [], **(chosen_style | {"marker": "*", "markersize": 10, "markerfacecolor": "white",
                                                              "markeredgecolor": "#111111"})))
            labels.append(f"chosen k = {chosen_k:,}")
        if has_U and utility_limit is not None:
            handles.append(Line2D([], [], **budget_style))
            labels.append("U before + utility budget")
        fig.legend(handles, labels, loc="outside lower center", ncol=2, handlelength=2.4, columnspacing=1.2)
        return fig

    return _render(prefix, draw)


def reprogram_pareto_figure(*, lambdas: Sequence[float | None], accuracy: Sequence[float | None],
                            gap: Sequence[float | None], pareto: Sequence[bool], diverged: Sequence[bool] = (),
                            chosen_lambda: float | None = None, before_accuracy: float | None = None,
                            before_gap: float | None = None, accuracy_floor: float | None = None,
                            gap_label: str = "fairness gap", prefix: str) -> Markup:
    """FairReprogram's trade-off over lambda on the selection rows: the gap (x, lower is fairer) against accuracy
    (y). Every lambda is an open circle labelled with its value; the Pareto front is filled circles joined by a
    solid line; the chosen lambda a large open star; the untriggered model a grey diamond; a diverged lambda an
    open triangle; the accuracy floor of the choice rule a dash-dot line.  Points without both values are skipped."""
    rows = [(lam, a, g, bool(p), bool(d)) for lam, a, g, p, d in
            zip(lambdas, accuracy, gap, pareto, list(diverged) + [False] * (len(lambdas) - len(diverged)))
            if a is not None and g is not None]
    point_style = dict(marker="o", markersize=6, markerfacecolor="white", markeredgecolor="#111111", color="#111111",
                       linestyle="none", zorder=3)
    front_style = dict(marker="o", markersize=6, markerfacecolor="#111111", markeredgecolor="#111111", color="#111111",
                       linestyle="-", linewidth=1.3, zorder=4)
    diverged_style = dict(marker="^", markersize=7, markerfacecolor="white", markeredgecolor=COLORS[1], color=COLORS[1],
                          linestyle="none", zorder=4)
    star = dict(marker="*", markersize=16, markerfacecolor="none", markeredgecolor="#111111", markeredgewidth=1.2,
                linestyle="none", zorder=6)
    before_style = dict(marker="D", markersize=7, markerfacecolor="#bbbbbb", markeredgecolor="#111111", color="#111111",
                        linestyle="none", zorder=5)
    floor_style = dict(color="#444444", linestyle="-.", linewidth=1.0)
    has_before = before_accuracy is not None and before_gap is not None
    chosen = [r for r in rows if chosen_lambda is not None and r[0] == chosen_lambda]

    def draw() -> MplFigure:
        fig = _new(5.6, 4.0)
        ax = fig.add_subplot()
        for lam, a, g, _, bad in rows:
            ax.plot([g], [a], **(diverged_style if bad else point_style))
        front = sorted((g, a) for _, a, g, on, _ in rows if on)
        if front:
            ax.plot([g for g, _ in front], [a for _, a in front], **front_style)
        for _, a, g, _, _ in chosen:
            ax.plot([g], [a], **star)
        if has_before:
            ax.plot([before_gap], [before_accuracy], **before_style)
            ax.annotate("untriggered", (before_gap, before_accuracy), xytext=(6, -10), textcoords="offset points",
                        fontsize=7.5, style="italic")
        if accuracy_floor is not None:
            ax.axhline(accuracy_floor, **floor_style)
        for i, (lam, a, g, _, _) in enumerate(rows):
            text = "λ=?" if lam is None else f"λ={lam:g}"
            ax.annotate(plain(text), (g, a), xytext=(6, 5 if i % 2 == 0 else -11), textcoords="offset points", fontsize=7.5)
        ax.margins(x=0.15, y=0.12)
        ax.set_xlabel("\n".join(textwrap.wrap(plain(gap_label) + " (selection rows; lower is fairer)", 80)))
        ax.set_ylabel("accuracy (selection rows)")
        handles = [Line2D([], [], **point_style), Line2D([], [], **front_style)]
        labels = ["one trigger per λ", "Pareto front"]
        if chosen:
            handles.append(Line2D([], [], **(star | {"markersize": 12})))
            labels.append(f"chosen λ = {chosen_lambda:g}")
        if has_before:
            handles.append(Line2D([], [], **before_style))
            labels.append("untriggered model")
        if any(r[4] for r in rows):
            handles.append(Line2D([], [], **diverged_style))
            labels.append("diverged (last good trigger)")
        if accuracy_floor is not None:
            handles.append(Line2D([], [], **floor_style))
            labels.append("accuracy floor of the rule")
        fig.legend(handles, labels, loc="outside lower center", ncol=2, handlelength=2.4, columnspacing=1.2)
        return fig

    return _render(prefix, draw)



def reprogram_figures(r: Any, *, prefix: str) -> list[Figure]:
    """The figures of a :class:`fairprompt.report.reprogram_view.ReprogramView`: the Pareto plot over lambda."""
    if not r.has_plot:
        return []
    missing = [p.name for p in r.points if not p.plotted]
    chosen = "" if r.chosen_lambda is None else f" The star marks the chosen λ = {r.chosen_lambda:g}: " + (
        "no λ > 0 stayed within the accuracy budget, so the most accurate λ of the grid was taken." if r.rule_met is False
        else "the λ > 0 with the smallest gap among those within the accuracy budget.")
    floor = (" The dash-dot line is the untriggered model's accuracy minus the accuracy budget; points below it are "
             "outside the budget." if r.accuracy_floor is not None else "")
    where = f" ({r.tuning_how})" if r.tuning_how else ""
    return [Figure(
        "pareto", "Accuracy–fairness trade-off over λ (selection rows)",
        f"On the selection rows{where}; the test split was not used to choose λ. Each point is one trigger, trained "
        f"with the λ it is labelled with: accuracy against the {r.gap_label}. Filled circles joined by a solid line "
        "are the Pareto front (no other trigger is both more accurate and fairer); the grey diamond is the model "
        "without a trigger. Up and to the left is better." + chosen + floor
        + (f" Not plotted (no accuracy or gap recorded): {', '.join(missing)}." if missing else ""),
        reprogram_pareto_figure(
            lambdas=[p.lam for p in r.points], accuracy=[p.accuracy for p in r.points], gap=[p.gap for p in r.points],
            pareto=[p.pareto for p in r.points], diverged=[p.diverged is not None for p in r.points],
            chosen_lambda=r.chosen_lambda, before_accuracy=None if r.before is None else r.before.accuracy,
            before_gap=None if r.before is None else r.before.gap, accuracy_floor=r.accuracy_floor,
            gap_label=r.gap_label, prefix=f"{prefix}pareto-"),
    )]


def mitigation_figures(m: Any, *, prefix: str) -> list[Figure]:
    """The figures of a :class:`fairprompt.report.view.MitigationView`: the FairIJ curve, and in mode ``append`` the
    appended tokens' training curve; for a FairReprogram entry, its Pareto plot over lambda."""
    figures: list[Figure] = []
    if getattr(m, "reprogram", None) is not None:
        return reprogram_figures(m.reprogram, prefix=prefix)
    c = m.curve
    if c is not None and (c.has_fairness or c.has_utility) and len(c.k) > 0:
        rule = ("actual validation F after the one-step update" if c.selection != "predicted"
                else "predicted (first-order) change of F")
        chosen = "" if c.chosen_k is None else (
            f" The dotted vertical line and the star mark the chosen k = {c.chosen_k:,}, the lowest {rule} among the "
            "points within the utility budget.")
        budget = (" The dash-dot line is the validation loss before the repair plus the utility budget; points above "
                  "it are outside the budget." if c.has_utility and c.utility_limit is not None else "")
        figures.append(Figure(
            "curve", "Accuracy–fairness trade-off as k grows (validation split)",
            "On the validation rows only (the test rows were not used to choose k): the fairness gap F"
            + (" (left) and the validation loss U (right)" if c.has_utility else "")
            + " as the k training rows with the most negative influence on F are down-weighted. Solid line, filled "
            "circles: the actual value after the one-step IJ update; dashed line, open squares: the first-order "
            "prediction." + chosen + budget,
            fairij_curve_figure(k=c.k, actual_F=c.actual_F, predicted_F=c.predicted_F, actual_U=c.actual_U,
                                predicted_U=c.predicted_U, chosen_k=c.chosen_k, n_train=c.n_train,
                                utility_limit=c.utility_limit, fairness_label=c.fairness_label, prefix=f"{prefix}curve-"),
        ))
    if m.append_curve is not None:
        for f in model_figures(m.append_curve, prefix=f"{prefix}append-"):
            figures.append(Figure("append", "Appended tokens: training curve",
                                  "Training of the appended tokens alone on the down-weighted training rows (task "
                                  "prompt, head and backbone frozen). " + f.caption, f.svg))
    return figures


def accuracy_fairness_figure(*, points: Sequence[Any], x_label: str, y_label: str, ideal: float | None,
                             prefix: str) -> Markup:
    """One point per method: the headline disparity (x) against accuracy (y) on the test split.

    ``points`` are :class:`fairprompt.report.summary_view.TradeoffPoint`: the model as audited is a grey
    diamond, each repaired model a large filled marker (circle, square, triangle) reached by a dashed arrow from
    the diamond, each baseline an open marker; intervals are error bars.  Every point carries its method's name,
    so the plot reads in black and white; a dotted vertical line marks the ideal (parity)."""
    before_style = dict(marker="D", markersize=8, markerfacecolor="#bbbbbb", markeredgecolor="#111111", color="#111111",
                        linestyle="none", zorder=5)
    after_markers = ("o", "s", "^", "P", "X", "h")
    baseline_markers = ("v", "<", ">", "p", "d", "8")
    err_style = dict(color="#444444", ecolor="#444444", elinewidth=0.9, capsize=2.5, linestyle="none", zorder=2)

    def err(value: float, low: float | None, high: float | None) -> list[list[float]] | None:
        if low is None or high is None:
            return None
        return [[max(value - low, 0.0)], [max(high - value, 0.0)]]

    def draw() -> MplFigure:
        fig = _new(5.6, 3.9)
        ax = fig.add_subplot()
        before = next((p for p in points if p.kind == "before"), None)
        n_after = n_base = 0
        handles: list[Any] = []
        labels: list[str] = []
        for p in points:
            if p.kind == "before":
                style = before_style
            elif p.kind == "after":
                style = dict(marker=after_markers[n_after % len(after_markers)], markersize=9, markerfacecolor="#111111",
                             markeredgecolor="#111111", color="#111111", linestyle="none", zorder=6)
                n_after += 1
            else:
                style = dict(marker=baseline_markers[n_base % len(baseline_markers)], markersize=8,
                             markerfacecolor="white", markeredgecolor="#111111", markeredgewidth=1.2, color="#111111",
                             linestyle="none", zorder=4)
                n_base += 1
            xerr, yerr = err(p.disparity, p.disparity_low, p.disparity_high), err(p.accuracy, p.accuracy_low, p.accuracy_high)
            if xerr is not None or yerr is not None:
                ax.errorbar([p.disparity], [p.accuracy], xerr=xerr, yerr=yerr, **err_style)
            ax.plot([p.disparity], [p.accuracy], **style)
            if p.kind == "after" and before is not None:
                ax.annotate("", xy=(p.disparity, p.accuracy), xytext=(before.disparity, before.accuracy),
                            arrowprops=dict(arrowstyle="-|>", linestyle="--", color="#222222", linewidth=1.1,
                                            mutation_scale=11, shrinkA=4, shrinkB=5), zorder=3)
            text = "\n".join(textwrap.wrap(plain(p.label), 32)) or "?"
            left = before is not None and p.kind != "before" and p.disparity < before.disparity and p.kind == "after"
            above = p.kind == "before" or (before is not None and p.accuracy >= before.accuracy)
            ax.annotate(text, (p.disparity, p.accuracy), xytext=(-8 if left else 8, 5 if above else -5),
                        textcoords="offset points", fontsize=7.5, ha="right" if left else "left",
                        va="bottom" if above else "top")
            kind = {"before": "model as audited", "after": "after repair", "baseline": "baseline"}[p.kind]
            if kind not in labels:
                handles.append(Line2D([], [], **(style | {"markersize": 7})))
                labels.append(kind)
        if ideal is not None:
            ax.axvline(ideal, color="#444444", linestyle=":", linewidth=1.0, zorder=1)
            handles.append(Line2D([], [], color="#444444", linestyle=":", linewidth=1.0))
            labels.append(f"ideal ({ideal:g})")
        if any(p.disparity_low is not None or p.accuracy_low is not None for p in points):
            handles.append(Line2D([], [], color="#444444", marker="|", markersize=8, linewidth=0.9))
            labels.append("interval")
        ax.margins(x=0.25, y=0.25)
        ax.set_xlabel("\n".join(textwrap.wrap(plain(x_label), 80)))
        ax.set_ylabel(plain(y_label))
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), handlelength=1.8,
                   columnspacing=1.0)
        return fig

    return _render(prefix, draw)


def summary_figures(summary: Any, *, prefix: str = "fpsum-") -> list[Figure]:
    """The figure of the first screen (:class:`fairprompt.report.summary_view.SummaryView`): the accuracy-fairness
    plot of every method, empty without mitigations or without two methods to compare."""
    if summary is None or not summary.has_plot or summary.headline is None:
        return []
    h = summary.headline
    direction = "lower is fairer" if h.lower_is_fairer else f"closer to {h.ideal:g} is fairer"
    baselines = [p for p in summary.points if p.kind == "baseline"]
    caption = (f"Each point is one method on the same test rows: the {h.label.lower()} by {h.slice} ({direction}) "
               f"against {summary.accuracy_label}. Grey diamond: the model as audited; filled markers: each repaired "
               "model, reached by a dashed arrow; "
               + ("open markers: the baselines recorded with the repair (" + "; ".join(
                   f"{p.label}: {p.note}" if p.note else p.label for p in baselines) + "). " if baselines else "")
               + (f"Bars: {summary.ci_percent} bootstrap intervals of each audit (not paired). " if any(
                   p.disparity_low is not None for p in summary.points) else "")
               + ("Up and to the left of the diamond is better on both counts." if h.lower_is_fairer else ""))
    return [Figure("tradeoff", "Accuracy–fairness: every method on the same test rows", caption,
                   accuracy_fairness_figure(points=summary.points, x_label=f"{h.label} by {h.slice} ({direction})",
                                            y_label=summary.accuracy_label, ideal=h.ideal, prefix=f"{prefix}tradeoff-"))]
