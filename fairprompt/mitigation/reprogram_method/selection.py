"""FairReprogram's rows and choice: the tuning and selection rows (a seeded, stratified half or subsample),
each trigger's accuracy and gaps on the selection rows, the Pareto front and the operating-point rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.metrics.point import group_gap
from fairprompt.mitigation.guard import one_class_reason
from fairprompt.mitigation.reprogram_method.triggers import Target
from fairprompt.models.training import predict_logits

RULE = ("the lambda > 0 with the smallest selection-split gap among those whose selection accuracy is at most "
        "max_accuracy_drop below the untriggered model's and whose decisions do not predict one class (ties: the "
        "smaller lambda); if none qualifies, the most accurate lambda of the grid that does not predict one class, "
        "usually the lambda = 0 control; if every lambda predicts one class, the choice without that condition "
        "(rule_met: false in both cases)")
RULE_SWAP_FLIPS = RULE.replace(
    "the smallest selection-split gap",
    "the smallest share of selection rows naming an identity whose decision flips when their identity phrases are "
    "swapped (selection: swap_flips)")
"""The rule with ``selection: swap_flips``: the same budget and guard, another quantity minimised."""


def probabilities(target: Target, rows: Any, batch_size: int) -> np.ndarray:
    """Class probabilities of the (triggered) model for ``rows``, in row order."""
    logits = predict_logits(model=target.model, forward=target.forward, data=rows, batch_size=batch_size)
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def evaluate(target: Target, rows: Any, *, groups: np.ndarray, threshold: float, measure: str,
              batch_size: int, column: str = "group") -> dict[str, Any]:
    """Accuracy and the between-groups gaps (:func:`fairprompt.metrics.group_gap`; NaN where undefined) on ``rows``,
    and ``one_class``: why the decisions predict one class (:func:`~fairprompt.mitigation.guard.one_class_reason`,
    groups of ``column``), else None."""
    p = probabilities(target, rows, batch_size)[:, 1]
    y = np.asarray(rows.labels)
    pred = (p >= threshold).astype(np.int8)
    return {"accuracy": float((pred == y).mean()), "gap": group_gap(y_true=y, y_pred=pred, groups=groups, measure=measure),
            "demographic_parity_difference": group_gap(y_true=y, y_pred=pred, groups=groups, measure="demographic_parity"),
            "equalized_odds_difference": group_gap(y_true=y, y_pred=pred, groups=groups, measure="equalized_odds"),
            "one_class": one_class_reason(y_true=y, y_pred=pred, groups=groups, column=column)}


def changed_rows(rows: Any, swapped: Any) -> np.ndarray:
    """Positions of the rows whose identity-swapped copy differs (text rows: other token ids)."""
    return np.flatnonzero([list(a) != list(b) for a, b in zip(rows.input_ids, swapped.input_ids, strict=True)])


def swap_flip_rate(target: Target, rows: Any, swapped: Any, *, threshold: float, batch_size: int) -> float:
    """The share of ``rows`` naming an identity (their swapped copy differs) whose decision flips when their identity
    phrases are swapped: ``swapped`` holds the same rows with the phrases swapped (:class:`fairprompt.swaps.SwapTerms`),
    row for row.  NaN when no row names one."""
    positions = changed_rows(rows, swapped)
    if positions.size == 0:
        return float("nan")
    before = probabilities(target, take(rows, positions), batch_size)[:, 1] >= threshold
    after = probabilities(target, take(swapped, positions), batch_size)[:, 1] >= threshold
    return float((before != after).mean())


def pareto_flags(points: Sequence[dict[str, Any]]) -> list[bool]:
    """True for points no other point beats on both selection accuracy (higher) and gap (lower)."""
    flags = []
    for p in points:
        dominated = any(q is not p and q["accuracy"] >= p["accuracy"] and q["gap"] <= p["gap"]
                        and (q["accuracy"] > p["accuracy"] or q["gap"] < p["gap"]) for q in points)
        flags.append(not dominated)
    return flags


def choose(points: Sequence[dict[str, Any]], *, base_accuracy: float, max_accuracy_drop: float,
           key: str = "gap") -> tuple[int, bool]:
    """Index of the operating point by :data:`RULE`, and whether the rule was met; ``key`` is the point's value the
    rule minimises (``gap``, or ``swap_flip_rate`` for :data:`RULE_SWAP_FLIPS`).

    A point whose ``one_class`` is set is never chosen while another is left.  When every point of the grid is
    one-class, none is usable: the rule picks among them as if there were no guard, and is not met (the caller
    says so)."""
    usable = [i for i, p in enumerate(points) if not p.get("one_class")]
    if not usable:
        return _rule(points, list(range(len(points))), base_accuracy=base_accuracy,
                     max_accuracy_drop=max_accuracy_drop, key=key)[0], False
    return _rule(points, usable, base_accuracy=base_accuracy, max_accuracy_drop=max_accuracy_drop, key=key)


def _rule(points: Sequence[dict[str, Any]], usable: list[int], *, base_accuracy: float,
          max_accuracy_drop: float, key: str) -> tuple[int, bool]:
    """:data:`RULE` among the points at ``usable``: the fairest lambda > 0 within the accuracy budget (a grid of the
    control alone: the control), else the most accurate."""
    fairness = any(p["lambda"] > 0 for p in points)
    candidates = [i for i in usable if points[i]["lambda"] > 0 or not fairness]
    eligible = [i for i in candidates if points[i]["accuracy"] >= base_accuracy - max_accuracy_drop - 1e-12]
    if eligible:
        return min(eligible, key=lambda i: (_sortable(points[i][key]), points[i]["lambda"])), True
    return max(usable, key=lambda i: (points[i]["accuracy"], -points[i]["lambda"])), False


def _sortable(value: float) -> float:
    """A value the rule can order: NaN (undefined) last."""
    return math.inf if value is None or math.isnan(value) else float(value)


def one_class_warnings(points: Sequence[dict[str, Any]], *, index: int, base_accuracy: float,
                       max_accuracy_drop: float, key: str = "gap") -> list[str]:
    """What the one-class guard changed, in words: every point of the grid is one-class (``index`` was kept all
    the same), or the point the rule would choose without the guard is one-class (and ``index`` was chosen)."""
    marked = [p for p in points if p.get("one_class")]
    if not marked:
        return []
    chosen = points[index]
    if len(marked) == len(points):
        grid = ", ".join(f"{p['lambda']:g}" for p in points)
        return [f"every trigger of the grid (lambda {grid}) predicts one class on the selection rows, so none is a "
                f"usable repair and the rule is not met; lambda {chosen['lambda']:g}, the rule's choice without the "
                f"guard, was kept all the same ({chosen['one_class']})"]
    unguarded, _ = choose([{**p, "one_class": None} for p in points], base_accuracy=base_accuracy,
                          max_accuracy_drop=max_accuracy_drop, key=key)
    if unguarded == index:
        return []
    skipped = points[unguarded]
    return [f"lambda {skipped['lambda']:g}, which the rule would otherwise choose, predicts one class on the selection "
            f"rows ({skipped['one_class']}), so it was not chosen; lambda {chosen['lambda']:g} was"]


def stratified_half(groups: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions into two seeded halves, stratified by (group, label)."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    keys = np.char.add(groups.astype(str), np.char.add("\x1f", labels.astype(str)))
    for key in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == key))
        cut = (members.size + 1) // 2
        first.append(members[:cut])
        second.append(members[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def subsample(groups: np.ndarray, labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` row positions, a seeded draw stratified by (group, label)."""
    if groups.size <= limit:
        return np.arange(groups.size)
    rng = np.random.default_rng(seed)
    keys = np.char.add(groups.astype(str), np.char.add("\x1f", labels.astype(str)))
    chosen, spare = [], []
    for key in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == key))
        take = min(max(1, round(limit * members.size / groups.size)), members.size)
        chosen.append(members[:1])          # every (group, label) keeps at least one row
        spare.append(members[1:take])
    first = np.concatenate(chosen)
    rest = rng.permutation(np.concatenate(spare))[: max(limit - first.size, 0)]
    return np.sort(np.concatenate([first, rest]))


def text_group_array(values: Sequence[Any], *, where: str) -> np.ndarray:
    """The groups as text; a missing one is refused (naming ``where``)."""
    array = np.asarray([None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values],
                       dtype=object)
    if any(v is None for v in array):
        raise FairpromptError(f"the group of some rows in {where} is missing; reprogram needs a group for every row: "
                              "fill them, or choose another group column")
    return array.astype(str)


def take(rows: Any, positions: np.ndarray) -> Any:
    """The rows at ``positions`` (TextRows or ImageRows), as the same type."""
    positions = np.asarray(positions, dtype=np.int64)
    if hasattr(rows, "input_ids"):
        from fairprompt.models.text import TextRows

        return TextRows([rows.input_ids[i] for i in positions], np.asarray(rows.labels)[positions],
                        np.asarray(rows.weights)[positions], rows.pad_id)
    return type(rows)(rows.images[positions], np.asarray(rows.labels)[positions])


__all__ = ["RULE", "RULE_SWAP_FLIPS", "changed_rows", "choose", "evaluate", "one_class_warnings", "pareto_flags",
           "probabilities", "stratified_half", "subsample", "swap_flip_rate", "take", "text_group_array"]
