"""Every model of a repair's grid on the validation and test rows: its frontier and its exported decisions.

A repair chooses one grid point (:class:`~fairprompt.mitigation.registry.GridPoint`) on the validation split; a
reader judging it wants the whole grid on the same rows, so each point is predicted once per split here (the chosen
point's test scores are the after-audit's, a point that decides as the audited model reuses the audited scores).
Each point on each split gives a :class:`~fairprompt.results.repairs.FrontierPoint` (accuracy, demographic parity
and equalized odds differences between the groups of the repair's column) and, when the run exports decisions, its
rows of ``predictions.parquet`` (:mod:`fairprompt.decisions`).  The final split is read only for the chosen point
and only when the run asks for it (``--final``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fairprompt.decisions import decision_rows
from fairprompt.metrics.point import group_gap
from fairprompt.mitigation.registry import Progress, RepairContext, RepairRun
from fairprompt.results.repairs import FrontierPoint


@dataclass
class GridOutcome:
    """A repair's grid on the plane (``frontier``) and its decision rows (``decisions``, empty without row output)."""

    frontier: list[FrontierPoint] = field(default_factory=list)
    decisions: list[pd.DataFrame] = field(default_factory=list)


def plane_point(*, setting: float | None, split: str, y_true: np.ndarray, decisions: np.ndarray, groups: np.ndarray,
                chosen: bool, same_as_input: bool = False) -> FrontierPoint:
    """Accuracy and the gaps between ``groups`` (missing groups left out) of 0/1 ``decisions``."""
    known = np.asarray([g is not None and not (isinstance(g, float) and np.isnan(g)) for g in groups])
    y, d, g = y_true[known], decisions[known], np.asarray(groups, dtype=object)[known].astype(str)

    def gap(measure: str) -> float | None:
        value = group_gap(y_true=y, y_pred=d, groups=g, measure=measure)  # type: ignore[arg-type]
        return None if not np.isfinite(value) else value

    return FrontierPoint(setting=setting, split=split, rows=int(y_true.size),
                         accuracy=float((decisions == y_true).mean()) if y_true.size else None,
                         demographic_parity_difference=gap("demographic_parity"),
                         equalized_odds_difference=gap("equalized_odds"), chosen=chosen, same_as_input=same_as_input)


def evaluate_grid(run: RepairRun, *, context: RepairContext, name: str, group: str, chosen_test_score: np.ndarray,
                  progress: Progress | None = None) -> GridOutcome:
    """Predict every grid point of ``run`` on the validation and test rows (and, with ``context.final``, the chosen
    point on the final rows); the repair is called ``name`` in the export."""
    task = context.task
    frame = task.dataset.frame
    splits = {"validation": task.splits.validation, "test": task.splits.test}
    if context.final and task.splits.final.size:
        splits["final"] = task.splits.final
    outcome = GridOutcome()
    for point in run.grid():
        predictor: Any = None
        for split, positions in splits.items():
            if split == "final" and not point.chosen:
                continue
            if point.same_as_input:
                score = context.audited_scores(split, progress=progress)
            elif point.chosen and split == "test":
                score = chosen_test_score
            else:
                predictor = predictor if predictor is not None else point.predictor()
                score = task.predict(predictor, task.split_rows(predictor, positions), progress=progress)
            y = task.y[positions]
            decisions = (score >= task.threshold).astype(np.int8)
            groups = frame[group].iloc[positions].to_numpy(dtype=object)
            outcome.frontier.append(plane_point(setting=point.setting, split=split, y_true=y, decisions=decisions,
                                                groups=groups, chosen=point.chosen, same_as_input=point.same_as_input))
            if context.row_output:
                outcome.decisions.append(decision_rows(
                    method=name, setting=point.setting, chosen=point.chosen, split=split, row_ids=positions, labels=y,
                    sensitive=frame[task.sensitive].iloc[positions], scores=score, threshold=task.threshold))
        predictor = None  # one grid model at a time
    return outcome


def audited_decisions(context: RepairContext, *, progress: Progress | None = None) -> list[pd.DataFrame]:
    """The audited model's decision rows: validation and test (and final with ``context.final``)."""
    task = context.task
    frame = task.dataset.frame
    splits = {"validation": task.splits.validation, "test": task.splits.test}
    if context.final and task.splits.final.size:
        splits["final"] = task.splits.final
    return [decision_rows(method="audited", setting=None, chosen=True, split=split, row_ids=positions,
                          labels=task.y[positions], sensitive=frame[task.sensitive].iloc[positions],
                          scores=context.audited_scores(split, progress=progress), threshold=task.threshold)
            for split, positions in splits.items()]


__all__ = ["GridOutcome", "audited_decisions", "evaluate_grid", "plane_point"]
