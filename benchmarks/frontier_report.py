"""bench_frontier's outputs besides the JSON: the Markdown page (docs/benchmarks/frontier.md) and the plot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

GAPS = {"demographic_parity": "dp", "equalized_odds": "eo"}
NAMES = {"dp": "DP", "eo": "EO"}


def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _ci(c: list[float], digits: int = 3) -> str:
    return f"[{c[0]:.{digits}f}, {c[1]:.{digits}f}]"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.0%}"


def _setting(p: dict[str, Any]) -> str:
    return "—" if p["setting"] is None else f"{p['setting_name']} = {p['setting']}"


def chosen_lines(out: dict[str, Any], split: str, gap: str) -> list[str]:
    table = out["chosen"][split][gap]
    chosen = {p["method"]: p for p in out["points"] if p["chosen"] and GAPS[p["measure"]] == gap}
    lines = [f"| method | chosen setting | {split} accuracy [CI] | accuracy change [CI] | {split} DP [CI] | DP change [CI] | "
             f"{split} EO [CI] | EO change [CI] |", "|---|---|---|---|---|---|---|---|"]
    for m, r in table.items():
        a = r["accuracy_change_ci"]
        cells = [f"{_f(r[k])} {_ci(r[f'{k}_ci'])} | {_pct(r[f'{k}_relative_change'])} "
                 f"[{_pct(r[f'{k}_relative_change_ci'][0])}, {_pct(r[f'{k}_relative_change_ci'][1])}]" for k in ("dp", "eo")]
        lines.append(f"| {out['methods'][m]['title']} | {_setting(chosen[m])} | {_f(r['accuracy'], 4)} "
                     f"{_ci(r['accuracy_ci'], 4)} | {100 * r['accuracy_change']:+.2f} pt [{100 * a[0]:+.2f}, "
                     f"{100 * a[1]:+.2f}] | {' | '.join(cells)} |")
    return lines


def matched_lines(out: dict[str, Any], gap: str) -> list[str]:
    matched = out["matched"]["test"][gap]
    peers = sorted({peer for row in matched.values() for peer in row["peers"]})
    if not peers:
        return ["(no group-blind peer in this run)"]
    lines = [f"| prompt method (chosen point) | test accuracy | test {NAMES[gap]} | "
             + " | ".join(out["methods"][p]["title"] for p in peers) + " |", "|---" * (3 + len(peers)) + "|"]
    for m, row in matched.items():
        lines.append(f"| {out['methods'][m]['title']} ({row['setting'] if row['setting'] is not None else '—'}) | "
                     f"{_f(row['accuracy'], 4)} | {_f(row['gap'])} | "
                     + " | ".join(_f(row["peers"].get(p)) for p in peers) + " |")
    return lines


def point_lines(out: dict[str, Any], measure: str) -> list[str]:
    lines = ["| method | setting | trained for | validation accuracy | validation DP | validation EO | test accuracy | "
             "test DP | test EO | chosen | fit s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in out["points"]:
        if p["measure"] != measure:
            continue
        v, t = p["validation"], p["test"]
        flag = "yes" if p["chosen"] else ""
        flag += " (one class)" if v["one_class"] else ""
        lines.append(f"| {p['method']} | {_setting(p)} | {p['trained_for'] or 'any'} | {_f(v['accuracy'], 4)} | "
                     f"{_f(v['dp'])} | {_f(v['eo'])} | {_f(t['accuracy'], 4)} | {_f(t['dp'])} | {_f(t['eo'])} | {flag} | "
                     f"{p['fit_seconds']:.0f} |")
    return lines


def write_page(out: dict[str, Any], path: Path, *, plot: Path | None, json_path: Path | None) -> None:
    """The page: how the run was made, the chosen points with paired CIs, the matched-accuracy reads, every point."""
    h = out["host"]
    rows = out["rows"]
    lines = [
        "# Accuracy-fairness frontiers on Adult",
        "",
        "Written by `benchmarks/bench_frontier.py` (issue [3/7]); every number below is in "
        + (f"[`{json_path.name}`]({json_path.name})" if json_path else "its JSON") + ". "
        + ("**This is a `--quick` smoke run: tiny rows and grids, the numbers mean nothing.** " if out["quick"] else ""),
        "",
        f"Rows: audits/adult_income.yaml's splits ({rows['train']:,} train, {rows['validation']:,} validation, "
        f"{rows['test']:,} test); the model: {out['model'] or 'the spec task prompt'} (the un-repaired model). Gaps by sex: "
        "demographic parity difference (DP) and equalized odds difference (EO), both measured for every point; a method "
        "that takes a measure is trained once per measure, and the controls that do not depend on it (lambda = 0, "
        "k = 0, t = 0, the unconstrained peers) are fitted once. Every grid point is fitted on the training rows "
        "(validation only where the method selects on it itself: early stopping, FairIJ's and FairReprogram's rules) "
        "and evaluated on validation and test. The grids were set in `benchmarks/frontier_methods.py` before any "
        "test number was seen, and were not changed after.",
        "",
        f"Operating points, chosen on validation: the repairs by their own rules; the peers by one rule: {out['peer_rule']}. "
        "The test columns never choose. Final rows: "
        + (f"read {len(out['final_uses'])} time(s), see `final_uses` in the JSON." if out["final_uses"]
           else "not read (only `--final` reads them)."),
        "",
        f"Host: {h['cpu_count']} CPU cores, {h['torch_threads']} torch threads; shared with: {h['shared']}. "
        f"Command: `{out['command']}` at commit `{out['git_commit'][:12]}`; {out['seconds'] / 60:.0f} min in this "
        "process (cached points cost nothing here: see each method's recorded fit and predict seconds).",
        "",
    ]
    if plot is not None:
        rel = os.path.relpath(plot, path.parent)
        lines += [f"![test accuracy against test gap, each method's points and step hull]({rel})", ""]
    lines += ["## Methods", "", "| method | what is trained | score and decision | rule | wall time this run | "
              "recorded fit + predict |", "|---|---|---|---|---|---|"]
    for m in out["methods"].values():
        lines.append(f"| {m['title']} | {m['trains']} | {m['score']} | {m['rule']} | {m['wall_seconds_this_run'] / 60:.1f} "
                     f"min | {m['fit_and_predict_seconds_recorded'] / 60:.1f} min |")
    lines += ["", "Grids (`setting`: values):", ""]
    for name, g in out["grids"].items():
        lines.append(f"- {name}: {g['setting']} in {g['grid']}")
    for measure in out["measures"]:
        gap = GAPS[measure]
        lines += ["", f"## {NAMES[gap]} by sex", "",
                  "Chosen points on the test split, 95% paired bootstrap CIs (1,000 resamples of the test rows, every "
                  "method on the same resamples; changes against the un-repaired model):", "",
                  *chosen_lines(out, "test", gap), "",
                  f"Each prompt method's chosen point against the group-blind peers' step hulls (on test) read at its "
                  f"test accuracy (the smallest test {NAMES[gap]} a peer's grid reaches at that accuracy or above; — "
                  "above the peer's most accurate point):", "", *matched_lines(out, gap), "",
                  "Every grid point:", "", *point_lines(out, measure)]
        if "final" in out["chosen"]:
            lines += ["", "On the final rows (chosen points only):", "", *chosen_lines(out, "final", gap)]
    lines.append("")
    from fairprompt.atomic import write_text

    write_text(path, "\n".join(lines))


def write_plot(out: dict[str, Any], path: Path) -> None:
    """Test accuracy (x) against test DP / EO (y): each method's points for that measure, its step hull, and its
    chosen point ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fairprompt.atomic import atomic_open

    matplotlib.rcParams["svg.fonttype"] = "none"
    measures = out["measures"]
    fig, axes = plt.subplots(1, len(measures), figsize=(6.5 * len(measures), 5.2), squeeze=False)
    colors = plt.get_cmap("tab20").colors
    for ax, measure in zip(axes[0], measures, strict=True):
        gap = GAPS[measure]
        hulls = out["hulls"]["test"][gap]
        for i, (name, m) in enumerate(out["methods"].items()):
            ps = [p for p in out["points"] if p["method"] == name and p["measure"] == measure]
            if not ps:
                continue
            color = colors[i % len(colors)]
            marker = {"reference": "*", "prompt": "o", "peer": "s", "group-aware": "^"}[m["role"]]
            ax.scatter([p["test"]["accuracy"] for p in ps], [p["test"][gap] for p in ps], color=color, marker=marker,
                       s=28, label=m["title"], zorder=3)
            chosen = [p for p in ps if p["chosen"]]
            ax.scatter([p["test"]["accuracy"] for p in chosen], [p["test"][gap] for p in chosen], facecolors="none",
                       edgecolors="black", s=110, linewidths=1.2, zorder=4)
            hull = hulls.get(name)
            if hull and len(hull["accuracies"]) > 1:
                ax.plot(hull["accuracies"], hull["gaps"], drawstyle="steps-pre", color=color, linewidth=1, alpha=0.8)
        ax.set_xlabel("test accuracy")
        ax.set_ylabel(f"test {NAMES[gap]} difference by sex")
        ax.set_title(f"{NAMES[gap]}: points, step hulls; chosen ringed")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fmt = path.suffix.lstrip(".") or "svg"
    with atomic_open(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format=fmt, metadata={"Date": None} if fmt == "svg" else None, bbox_inches="tight")
    plt.close(fig)


__all__ = ["write_page", "write_plot"]
