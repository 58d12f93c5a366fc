"""The figures of an audit's slices (selection rates, error rates, calibration, ROC) and of a training curve,
drawn from the typed record alone (see :mod:`fairprompt.report.figure` for how every figure is drawn)."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from fairprompt.report.figure import COLORS, Figure, as_nan, new_figure, plain, render, series_style
from fairprompt.results.audit import CalibrationCurve, Compliance, GroupRow, RocCurve, SliceRecord

MAX_CURVES = 12
"""Calibration and ROC plots show at most this many groups (the largest)."""


def _group_label(g: GroupRow) -> str:
    name = plain(g.group)
    return f"{name} (small, n={g.n})" if g.small_group else name


def _value(g: GroupRow, metric: str) -> float:
    return as_nan(g.estimate(metric).value)


def _err(g: GroupRow, metric: str) -> tuple[float, float]:
    est = g.estimate(metric)
    value, low, high = as_nan(est.value), as_nan(est.ci_low), as_nan(est.ci_high)
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
        fig = new_figure(6.4, _height(len(groups)))
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
        if ci_percent:
            handles.append(Line2D([], [], color="#111111", marker="|", linestyle="none", markersize=8))
            labels.append(f"{ci_percent} CI")
        ax.set_yticks(ys, [_group_label(g) for g in groups])
        ax.set_xlim(0, min(1.0, max([v + e[1] for v, e in zip(values, errs) if v == v] + [0.1])) * 1.15)
        ax.set_xlabel("selection rate (share predicted positive)")
        ax.grid(axis="y", visible=False)
        fig.legend(handles, labels, loc="outside lower center", ncol=2, handlelength=2.2)
        return fig

    return render(prefix, draw)


def error_rates_figure(groups: Sequence[GroupRow], *, ci_percent: str, prefix: str) -> Markup:
    """TPR (filled circles) and FPR (open squares) per group with CI error bars."""

    def draw() -> MplFigure:
        fig = new_figure(6.4, _height(len(groups)))
        ax = fig.add_subplot()
        ys = list(range(len(groups)))[::-1]
        for metric, offset, marker, face, _text in (("tpr", 0.16, "o", "#111111", "TPR (true positive rate)"),
                                                   ("fpr", -0.16, "s", "white", "FPR (false positive rate)")):
            for y, g in zip(ys, groups):
                v = _value(g, metric)
                if v != v:
                    ax.text(0.01, y + offset, f"{metric.upper()} undefined", va="center", fontsize=7, style="italic",
                            color="#444444")
                    continue
                lo, hi = _err(g, metric)
                ax.errorbar(v, y + offset, xerr=[[lo], [hi]], fmt=marker, color="#111111", markerfacecolor=face,
                            markeredgecolor="#111111", markersize=5.5, elinewidth=0.9, capsize=2.5)
        ax.set_yticks(ys, [_group_label(g) for g in groups])
        ax.set_ylim(-0.6, len(groups) - 0.4)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(f"rate ({ci_percent} CI)" if ci_percent else "rate")
        ax.grid(axis="y", visible=False)
        handles = [Line2D([], [], marker="o", color="#111111", markerfacecolor="#111111", linestyle="none"),
                   Line2D([], [], marker="s", color="#111111", markerfacecolor="white", linestyle="none")]
        fig.legend(handles, ["TPR (true positive rate)", "FPR (false positive rate)"], loc="outside lower center", ncol=2)
        return fig

    return render(prefix, draw)


def largest_groups(groups: Sequence[GroupRow], limit: int = MAX_CURVES) -> list[GroupRow]:
    """The ``limit`` largest groups (by weight, else rows), in their original order."""
    if len(groups) <= limit:
        return list(groups)
    size = [as_nan(g.weight if g.weight is not None else g.n) for g in groups]
    keep = sorted(range(len(groups)), key=lambda i: (-size[i], i))[:limit]
    return [groups[i] for i in sorted(keep)]


def calibration_figure(groups: Sequence[GroupRow], curves: Mapping[str, CalibrationCurve], *, prefix: str) -> Markup:
    """Observed positive share against mean score per score bin, one line per group."""

    def draw() -> MplFigure:
        fig = new_figure(6.4, 4.0)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#777777", linestyle=(0, (1, 2)), linewidth=1.0)
        handles = [Line2D([], [], color="#777777", linestyle=(0, (1, 2)))]
        labels = ["perfectly calibrated"]
        for i, g in enumerate(groups):
            c = curves.get(g.group)
            pairs = [] if c is None else [(x, y) for x, y, w in zip(c.mean_score, c.positive_share, c.weight)
                                          if x is not None and y is not None and (w or 0) > 0]
            style = series_style(i)
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

    return render(prefix, draw)


def roc_figure(groups: Sequence[GroupRow], curves: Mapping[str, RocCurve | None], *, prefix: str) -> Markup:
    """ROC curve per group, labelled with the group's AUC."""

    def draw() -> MplFigure:
        fig = new_figure(6.4, 4.0)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#777777", linestyle=(0, (1, 2)), linewidth=1.0)
        handles = [Line2D([], [], color="#777777", linestyle=(0, (1, 2)))]
        labels = ["chance"]
        for i, g in enumerate(groups):
            c = curves.get(g.group)
            style = series_style(i)
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

    return render(prefix, draw)


_DRAWN: OrderedDict[str, tuple[Figure, ...]] = OrderedDict()
DRAWN_SLICES = 32
"""Slices whose figures are kept: a run renders its report after the audit and again after each repair, and the
before-audit's figures (nine tenths of the rendering time) do not change in between."""


def slice_figures(s: SliceRecord, *, index: int, has_scores: bool, threshold: float, ci_percent: str) -> list[Figure]:
    """The figures of one slice (``ci_percent``: ``"95%"``, or empty when the audit has no intervals)."""
    """All figures of one audited slice (``audit.slices[index]``); a slice drawn before with the same settings is
    not drawn again (the figures are a function of the slice's record and these settings)."""
    key = hashlib.sha256(json.dumps([s.to_json(), index, has_scores, threshold, ci_percent]).encode()).hexdigest()
    if key in _DRAWN:
        _DRAWN.move_to_end(key)
        return list(_DRAWN[key])
    figures = _draw_slice(s, index=index, has_scores=has_scores, threshold=threshold, ci_percent=ci_percent)
    _DRAWN[key] = tuple(figures)
    if len(_DRAWN) > DRAWN_SLICES:
        _DRAWN.popitem(last=False)
    return figures


def _draw_slice(s: SliceRecord, *, index: int, has_scores: bool, threshold: float, ci_percent: str) -> list[Figure]:
    groups = list(s.groups)
    if not groups:
        return []
    figures = [
        Figure("selection", "Selection rate by group",
               f"Share of each group predicted positive{f', with {ci_percent} confidence intervals' if ci_percent else ''}. "
               "Hatched bars: impact ratio "
               f"below {threshold:g}; the dashed line marks {threshold:g} × the highest selection rate.",
               selection_rate_figure(groups, compliance=s.compliance, threshold=threshold,
                                     ci_percent=ci_percent, prefix=f"fp{index}sel-")),
        Figure("errors", "True and false positive rates by group",
               f"Filled circles: TPR; open squares: FPR{f'; bars: {ci_percent} confidence intervals' if ci_percent else ''}. "
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
        fig = new_figure(2.5 * len(panels) + 0.3, 2.7)
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

    return render(prefix, draw)


def model_figures(curve: Any, *, prefix: str = "fpmodel-") -> list[Figure]:
    """The Model section's figures: the training curve of a :class:`fairprompt.report.view.TrainingCurve`, if any."""
    if curve is None or not (curve.has_loss or curve.has_accuracy):
        return []
    best = ("" if curve.best_epoch is None
            else f" The dotted line marks the best epoch ({curve.best_epoch}), whose parameters are kept.")
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
