"""FairIJ's part of results.json: the result's facts, and the training rows it flagged as the report shows them
(the most harmful rows with their features, counts by group and label, and the per-row table of influence.csv)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairprompt.results import to_jsonable

if TYPE_CHECKING:
    from fairprompt.mitigation.fairij_method.result import FairIJResult, FairIJVerification
    from fairprompt.tasks import TextTask

TOP_FLAGGED = 20
"""Flagged training rows listed in results.json (most harmful first)."""
TEXT_SHOWN = 1000
"""Characters of a text feature kept in results.json."""
INFLUENCE_COLUMNS = ("row_id", "I_F", "I_U", "flagged", "weight", "label")


def verification_record(v: FairIJVerification) -> dict[str, Any]:
    """The verify run's facts, JSON-ready."""
    return to_jsonable({
        "epochs": v.epochs, "steps": v.steps, "config": v.config, "baseline": v.baseline,
        "control": v.control, "control_drift": v.control_drift, "checks": v.checks,
        "pearson_fairness": v.pearson_fairness, "method": v.method, "seconds": v.seconds,
    })


def result_record(result: FairIJResult, *, top: int = 50) -> dict[str, Any]:
    """What FairIJ decided, JSON-ready (no tensors); per-row scores go to ``influence_frame``, the ``top`` flagged
    rows here."""
    flagged = np.flatnonzero(result.flagged)
    flagged = flagged[np.argsort(result.influence_fairness[flagged], kind="stable")]
    chosen = result.chosen
    return to_jsonable({
        "method": "fairij", "mode": result.mode, "measure": result.measure, "selection": result.selection,
        "rule": result.rule, "weighting": result.weighting, "graded": result.graded,
        "utility_budget": result.utility_budget, "max_accuracy_drop": result.max_accuracy_drop,
        "max_fraction": result.max_fraction, "seed": result.seed,
        "n_train": int(result.row_ids.size), "chosen_k": result.chosen_k,
        "chosen_fraction": result.chosen_k / max(1, result.row_ids.size),
        "flagged_rows": int(flagged.size), "removed_weight": float(result.alphas.sum()),
        "predicted_change": {"fairness": chosen["predicted_dF"], "utility": chosen["predicted_dU"]},
        "one_step_change": {"fairness": chosen["actual_dF"], "utility": chosen["actual_dU"]},
        "before": result.before, "after": result.after, "curve": result.curve, "influence": result.influence,
        "top_flagged": [{"row_id": result.row_ids[i], "I_F": float(result.influence_fairness[i]),
                         "I_U": float(result.influence_utility[i]), "weight": float(1.0 - result.alphas[i])}
                        for i in flagged[:top]],
        "append": result.append, "artifacts": result.artifacts, "timings": result.timings,
        "verification": verification_record(result.verification) if result.verification is not None else None,
        "split_used_for_selection": "validation", "warnings": result.warnings,
    })


def text_values(series: pd.Series) -> list[str | None]:
    """The values as text, missing ones as None."""
    return [None if pd.isna(v) else str(v) for v in series.tolist()]


def _group_columns(task: TextTask) -> dict[str, str]:
    """Sensitive column -> its name in influence.csv (``group_`` prefixed when it would clash)."""
    return {s: f"group_{s}" if s in INFLUENCE_COLUMNS else s for s in task.sensitive}


def influence_frame(result: FairIJResult, task: TextTask) -> pd.DataFrame:
    """row_id (position in the data set), I_F, I_U, flagged, weight, the sensitive columns, label (1 = favourable)."""
    frame = result.influence_frame()
    rows = frame["row_id"].to_numpy()
    for column, shown in _group_columns(task).items():
        frame[shown] = text_values(task.dataset.frame[column].iloc[rows])
    frame["label"] = task.y[rows].astype(int)
    return frame.sort_values("row_id", kind="stable").reset_index(drop=True)


def features(task: TextTask, row: int) -> dict[str, str | None]:
    """What the model read of data-set row ``row``: its text column (cut at :data:`TEXT_SHOWN` characters), or
    the columns written as text."""
    info = task.text_info
    frame = task.dataset.frame
    if "text_column" in info:
        text = str(frame[info["text_column"]].iloc[row])
        return {info["text_column"]: text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + "…"}
    return {c: None if pd.isna(v) else str(v) for c, v in frame[info["text_columns"]].iloc[row].items()}


def top_flagged(result: FairIJResult, task: TextTask, group: str) -> list[dict[str, Any]]:
    """The most harmful flagged training rows (most negative I_F first), with what the report shows of them."""
    ds = task.dataset
    flagged = np.flatnonzero(result.flagged)
    flagged = flagged[np.argsort(result.influence_fairness[flagged], kind="stable")][:TOP_FLAGGED]
    out = []
    for rank, i in enumerate(flagged, start=1):
        row = int(result.row_ids[i])
        label = ds.frame[ds.label].iloc[row]
        out.append({
            "rank": rank, "row_id": row, "I_F": float(result.influence_fairness[i]),
            "I_U": float(result.influence_utility[i]), "weight": float(result.weights[i]),
            "group": None if pd.isna(ds.frame[group].iloc[row]) else str(ds.frame[group].iloc[row]),
            "groups": {c: None if pd.isna(v) else str(v) for c, v in ds.frame[task.sensitive].iloc[row].items()},
            "label": None if pd.isna(label) else str(label), "favourable": bool(task.y[row] == 1),
            "features": features(task, row),
        })
    return out


def flagged_by_group(result: FairIJResult, task: TextTask) -> list[dict[str, Any]]:
    """Per sensitive column, group and label (1 = favourable): training rows, flagged rows, weight removed."""
    rows = result.row_ids.astype(np.int64)
    out = []
    for column in task.sensitive:
        table = pd.DataFrame({"group": text_values(task.dataset.frame[column].iloc[rows]),
                              "label": task.y[rows].astype(int), "flagged": result.flagged, "removed": result.alphas})
        summary = table.groupby(["group", "label"], dropna=False, sort=True).agg(
            train_rows=("flagged", "size"), flagged_rows=("flagged", "sum"), removed_weight=("removed", "sum"))
        for (g, label), r in summary.iterrows():
            out.append({"column": column, "group": None if pd.isna(g) else g, "label": int(label),
                        "train_rows": int(r["train_rows"]), "flagged_rows": int(r["flagged_rows"]),
                        "removed_weight": float(r["removed_weight"])})
    return out


__all__ = ["TEXT_SHOWN", "TOP_FLAGGED", "features", "flagged_by_group", "influence_frame", "result_record",
           "text_values", "top_flagged", "verification_record"]
