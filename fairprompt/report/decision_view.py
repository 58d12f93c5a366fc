"""The report of a language model's decision audit (discrim-eval): rendered from its results.json record alone.

One self-contained page (no scripts, no external resources; autoescaping on): what was scored and how, every
demographic value's discrimination score against the reference person with its scenario-bootstrap CI, which CIs
resolve an effect and which do not (said in words, since a small model's effects are mostly within noise), each
value's mean P(yes) and yes-rate, the age slope, the sensitivity to the alternative wording, and a plot; with
``model.repairs``, every repair on one plane and in a table.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D

from fairprompt.report.figure import new_figure, plain, render
from fairprompt.report.render import html_environment


def _label(effect: dict[str, Any]) -> str:
    value = effect["value"]
    return f"age {value}" if effect["factor"] == "age" else f"{effect['factor']} {value}"


def effects_figure(record: dict[str, Any], *, prefix: str = "fpdecision-") -> Markup:
    """Each value's discrimination score with its CI (filled circles), and under the alternative wording (open
    squares), against zero (the reference person)."""
    main = record["discrimination"]["effects"]
    alternative = (record.get("alternative") or {}).get("effects") or []

    def draw() -> MplFigure:
        fig = new_figure(6.4, 0.32 * len(main) + 1.2)
        ax = fig.add_subplot()
        ys = list(range(len(main)))[::-1]
        for y, e in zip(ys, main, strict=True):
            low, high = e["ci_low"], e["ci_high"]
            if low is not None and high is not None:
                ax.plot([low, high], [y + 0.12, y + 0.12], color="#0072B2", linewidth=1.4)
            ax.plot(e["estimate"], y + 0.12, marker="o", color="#0072B2", markersize=5, linestyle="none")
        for y, e in zip(ys, alternative, strict=False):
            low, high = e["ci_low"], e["ci_high"]
            if low is not None and high is not None:
                ax.plot([low, high], [y - 0.12, y - 0.12], color="#D55E00", linewidth=1.0, linestyle="--")
            ax.plot(e["estimate"], y - 0.12, marker="s", markerfacecolor="white", color="#D55E00", markersize=5,
                    linestyle="none")
        ax.axvline(0.0, color="#111111", linewidth=0.8)
        ax.set_yticks(ys, [plain(_label(e)) for e in main])
        ax.set_xlabel("discrimination score (log-odds of yes, against the reference person)")
        ax.grid(axis="y", visible=False)
        handles = [Line2D([], [], color="#0072B2", marker="o", linewidth=1.4, label="main wording, CI")]
        if alternative:
            handles.append(Line2D([], [], color="#D55E00", marker="s", markerfacecolor="white", linestyle="--",
                                  label="alternative wording, CI"))
        fig.legend(handles=handles, loc="outside lower center", ncol=2)
        return fig

    return render(prefix, draw)


KIND_COLOURS = {"none": "#111111", "intervention": "#D55E00", "trigger": "#0072B2"}


def repairs_figure(record: dict[str, Any], *, prefix: str = "fpdecision-repairs-") -> Markup:
    """Every repair on one plane: the mean absolute discrimination score over the target values (with its CI)
    against the Spearman correlation of the scenarios' mean scores with the un-repaired model's (a collapsed
    repair, whose scenario means no longer differ, sits at 0)."""
    block = record["repairs"]

    def draw() -> MplFigure:
        fig = new_figure(6.4, 3.6)
        ax = fig.add_subplot()
        for name, r in block["repairs"].items():
            kind = block["kinds"].get(name, "none")
            colour = KIND_COLOURS.get(kind, "#555555")
            y = r["spearman"] if r["spearman"] is not None else 0.0
            low, high = r["mean_abs_ci"]
            ax.plot([low, high], [y, y], color=colour, linewidth=1.2)
            ax.plot(r["mean_abs"], y, marker="o" if kind != "trigger" else "D", color=colour, markersize=6,
                    linestyle="none")
            ax.annotate(plain(name), (r["mean_abs"], y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.axhline(0.9, color="#999999", linewidth=0.8, linestyle=":")
        ax.set_xlabel("mean |discrimination score| over the target values (lower is fairer)")
        ax.set_ylabel("Spearman of scenario means")
        handles = [Line2D([], [], color=c, marker="D" if k == "trigger" else "o", linestyle="none",
                          label={"none": "un-repaired"}.get(k, k)) for k, c in KIND_COLOURS.items()]
        fig.legend(handles=handles, loc="outside lower center", ncol=3)
        return fig

    return render(prefix, draw)


def render_decision_report(record: dict[str, Any]) -> str:
    """The HTML page of a decision audit's results.json record."""
    template = html_environment().get_template("decision.html.j2")
    scores = record["discrimination"]
    resolved = [e for e in scores["effects"] if e["resolved"]]
    unresolved = [e for e in scores["effects"] if not e["resolved"]]
    return template.render(r=record, s=scores, resolved=resolved, unresolved=unresolved, label=_label,
                           figure=effects_figure(record),
                           repairs_plane=repairs_figure(record) if record.get("repairs") else None)


__all__ = ["effects_figure", "render_decision_report", "repairs_figure"]
