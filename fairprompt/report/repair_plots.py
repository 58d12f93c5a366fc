"""The figures of the repair sections (FairIJ's validation curve over k, FairReprogram's Pareto plot over lambda)
and of the first screen (the accuracy-fairness plot), drawn from the report's views alone (see
:mod:`fairprompt.report.figure`)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from fairprompt.report.figure import COLORS, Figure, new_figure, plain, render
from fairprompt.report.plots import model_figures


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
        fig = new_figure(6.6 if has_U else 3.6, 3.2)
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

    return render(prefix, draw)


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
        fig = new_figure(5.6, 4.0)
        ax = fig.add_subplot()
        for _lam, a, g, _, bad in rows:
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

    return render(prefix, draw)



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
        rule = {"predicted": "predicted (first-order) change of F",
                "accuracy": "measured validation gap after the one-step update"}.get(
            c.selection, "actual validation F after the one-step update")
        within = "the accuracy budget" if c.selection == "accuracy" else "the utility budget"
        chosen = "" if c.chosen_k is None else (
            f" The dotted vertical line and the star mark the chosen k = {c.chosen_k:,}, the lowest {rule} among the "
            f"points within {within}.")
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


COINCIDE = 0.01
"""Points closer than this share of the plot's span on both axes are labelled once, with all their names."""


def coinciding(points: Sequence[Any]) -> list[tuple[Any, Any]]:
    """Each point with the first earlier point it coincides with (itself when none): their labels are printed
    together, one name per line, so coinciding points (two repairs that changed nothing, say) never overprint."""
    if not points:
        return []
    xs, ys = [p.disparity for p in points], [p.accuracy for p in points]
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    tol_x = COINCIDE * span_x if span_x > 0 else 1e-9
    tol_y = COINCIDE * span_y if span_y > 0 else 1e-9
    firsts: list[Any] = []
    out = []
    for p in points:
        first = next((q for q in firsts if abs(q.disparity - p.disparity) <= tol_x and abs(q.accuracy - p.accuracy) <= tol_y),
                     None)
        if first is None:
            firsts.append(p)
            first = p
        out.append((p, first))
    return out


def accuracy_fairness_figure(*, points: Sequence[Any], x_label: str, y_label: str, ideal: float | None,
                             prefix: str, frontiers: Sequence[Any] = ()) -> Markup:
    """One point per method: the headline disparity (x) against accuracy (y) on the test split.

    ``points`` are :class:`fairprompt.report.summary_view.TradeoffPoint`: the model as audited is a grey
    diamond, each repaired model a large filled marker (circle, square, triangle) reached by a dashed arrow from
    the diamond, each baseline an open marker; intervals are error bars.  Every point carries its method's name,
    so the plot reads in black and white; a dotted vertical line marks the ideal (parity).  ``frontiers``
    (:class:`fairprompt.report.summary_view.Frontier`) are drawn as thin lines through small open markers, one per
    grid point, each marked with its setting (k, λ)."""
    frontier_styles = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"))
    before_style = dict(marker="D", markersize=8, markerfacecolor="#bbbbbb", markeredgecolor="#111111", color="#111111",
                        linestyle="none", zorder=5)
    after_markers = ("o", "s", "^", "P", "X", "h")
    baseline_markers = ("v", "<", ">", "p", "d", "8")
    err_style = dict(color="#444444", ecolor="#444444", elinewidth=0.9, capsize=2.5, linestyle="none", zorder=2)

    def err(value: float, low: float | None, high: float | None) -> list[list[float]] | None:
        if low is None or high is None:
            return None
        return [[max(value - low, 0.0)], [max(high - value, 0.0)]]

    labelled = {id(p): first for p, first in coinciding(points)}

    def draw() -> MplFigure:
        fig = new_figure(5.6, 3.9)
        ax = fig.add_subplot()
        before = next((p for p in points if p.kind == "before"), None)
        n_after = n_base = 0
        handles: list[Any] = []
        labels: list[str] = []
        for index, frontier in enumerate(frontiers):
            line, marker = frontier_styles[index % len(frontier_styles)]
            style = dict(color="#777777", linestyle=line, linewidth=0.9, marker=marker, markersize=3.5,
                         markerfacecolor="white", markeredgecolor="#555555", zorder=2)
            ax.plot([q[1] for q in frontier.points], [q[2] for q in frontier.points], **style)
            for setting, x, y in frontier.points:
                ax.annotate(f"{setting:g}", (x, y), xytext=(0, -7), textcoords="offset points", fontsize=5.5,
                            ha="center", va="top", color="#555555")
            handles.append(Line2D([], [], **style))
            labels.append(f"{plain(frontier.label)}: every {'λ' if frontier.setting_name == 'lambda' else frontier.setting_name}")
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
            if p is not labelled.get(id(p), p):
                pass  # coincides with an earlier point, whose label names both
            else:
                names = [q.label for q in points if labelled.get(id(q)) is p]
                text = "\n".join(line for name in names for line in textwrap.wrap(plain(name), 32)) or "?"
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

    return render(prefix, draw)


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
               + ("Up and to the left of the diamond is better on both counts. " if h.lower_is_fairer else "")
               + ("Thin grey lines: each repair's whole grid on the same test rows, every point marked with its setting "
                  "(k: training rows down-weighted; λ: the fairness weight); the filled marker is the point the repair "
                  "chose on the validation split. " if summary.frontiers else "")
               + (f"Every decision behind this plot is in {summary.decisions_file}." if summary.decisions_file else ""))
    return [Figure("tradeoff", "Accuracy–fairness: every method on the same test rows", caption,
                   accuracy_fairness_figure(points=summary.points, x_label=f"{h.label} by {h.slice} ({direction})",
                                            y_label=summary.accuracy_label, ideal=h.ideal, prefix=f"{prefix}tradeoff-",
                                            frontiers=summary.frontiers))]
