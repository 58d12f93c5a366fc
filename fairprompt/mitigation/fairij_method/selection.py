"""FairIJ's selection, on the validation split only: the grid of set sizes, the weights at each point, the
predicted and actual (one-step) validation curves, and the choice of k by the stated rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.metrics.point import group_gap
from fairprompt.mitigation.fairij_method.influence import InfluenceScores, MarginJacobian, ij_update
from fairprompt.mitigation.fairij_method.objective import fairness_surrogate, validation_loss
from fairprompt.mitigation.guard import one_class_reason
from fairprompt.models.training import Progress

if TYPE_CHECKING:
    from fairprompt.mitigation.fairij_method.config import FairIJConfig
    from fairprompt.models.text import FrozenTextClassifier, TextRows

GRID_FRACTIONS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
RULES = {
    "actual": "lowest actual validation F after the one-step IJ update among grid points whose actual validation "
              "U rose by at most utility_budget and whose validation decisions do not predict one class (k = 0 "
              "always qualifies; ties go to the smaller k)",
    "predicted": "lowest predicted (first-order) change of F among grid points whose predicted change of U is at "
                 "most utility_budget and whose one-step validation decisions do not predict one class (k = 0 "
                 "always qualifies; ties go to the smaller k)",
    "accuracy": "lowest measured validation gap (the measure on the thresholded decisions) after the one-step IJ "
                "update among grid points whose validation accuracy is at most max_accuracy_drop below k = 0's and "
                "whose validation decisions do not predict one class (k = 0 always qualifies; ties go to the smaller k)",
}
GRADED_RULE = ("alpha_i = t_k * I_F(i) / I_F(top row) on the top-k rows with I_F < 0, with t_k = min(1, utility_budget / "
               "sum_i (I_F(i) / I_F(top)) I_U(i)) when that sum is positive, else 1")
BINARY_RULE = "alpha_i = 1 (row removed) on the top-k rows with I_F < 0, 0 elsewhere"


def margins(model: FrozenTextClassifier, rows: TextRows, batch_size: int) -> torch.Tensor:
    """Margins ``logit_1 - logit_0`` of every row (float64, row order), without gradients."""
    out = torch.empty(len(rows), dtype=torch.float64)
    device = next(iter(model.task_parameters())).device
    was_training = model.training
    model.eval()
    try:
        order = np.argsort(-rows.lengths(), kind="stable")
        with torch.inference_mode():
            for begin in range(0, len(rows), batch_size):
                batch = rows.collate(order[begin:begin + batch_size].tolist())
                logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
                out[batch["index"]] = (logits[:, 1] - logits[:, 0]).to("cpu", torch.float64)
    finally:
        model.train(was_training)
    return out


def evaluate(model: FrozenTextClassifier, rows: TextRows, groups: Any, measure: str, temperature: float | None,
              batch_size: int) -> dict[str, float]:
    """Validation F and U of ``model`` (the same surrogates the scores differentiate)."""
    return surrogates(margins(model, rows, batch_size), rows, groups, measure, temperature)


def surrogates(z: torch.Tensor, rows: TextRows, groups: Any, measure: str, temperature: float | None) -> dict[str, float]:
    """Validation F and U of the margins ``z`` of ``rows``."""
    values = MarginJacobian(z=z, J=torch.zeros(len(z), 1, dtype=torch.float64), theta=torch.zeros(1, dtype=torch.float64),
                            shapes=((1,),), names=("unused",))
    F = fairness_surrogate(validation=values, labels=rows.labels, groups=groups, measure=measure, temperature=temperature)
    U = validation_loss(validation=values, labels=rows.labels)
    return {"fairness": F.value, "utility": U.value}


def decisions(z: torch.Tensor, threshold: float) -> np.ndarray:
    """0/1 decisions of the margins ``z``: P(favourable) = sigmoid(z) at least ``threshold`` (as the task predicts)."""
    return (torch.sigmoid(z.to(torch.float64)).numpy() >= threshold).astype(np.int8)


def set_task_parameters(model: FrozenTextClassifier, tensors: Sequence[torch.Tensor]) -> None:
    """Copy ``tensors`` into the model's task prompt and head (in ``task_parameters()`` order)."""
    with torch.no_grad():
        for parameter, tensor in zip(model.task_parameters(), tensors, strict=True):
            parameter.copy_(tensor.to(device=parameter.device, dtype=parameter.dtype))


def grid(n: int, candidates: int, max_fraction: float, fractions: Sequence[float] | None = None) -> list[int]:
    """The set sizes k tried: 0, and round(f n) for f in ``fractions`` (default: :data:`GRID_FRACTIONS` below
    ``max_fraction`` and ``max_fraction`` itself), each at least 1 and at most ``candidates``."""
    sizes = {0}
    shares = fractions if fractions is not None else (*[f for f in GRID_FRACTIONS if f < max_fraction], max_fraction)
    for fraction in shares:
        k = min(max(1, int(round(fraction * n))), candidates)
        if k >= 1:
            sizes.add(k)
    return sorted(sizes)


def alphas_for(k: int, order: np.ndarray, I_F: np.ndarray, I_U: np.ndarray, *, n: int, graded: bool,
                budget: float) -> np.ndarray:
    """The share of weight removed from each training row at grid point ``k`` (binary or graded, see
    :mod:`~fairprompt.mitigation.fairij_method.repair`)."""
    alphas = np.zeros(n)
    if k == 0:
        return alphas
    top = order[:k]
    if not graded:
        alphas[top] = 1.0
        return alphas
    ratio = I_F[top] / I_F[order[0]]                       # in (0, 1]: every candidate has I_F < 0
    utility = float(ratio @ I_U[top])
    scale = min(1.0, budget / utility) if utility > 0 else 1.0
    alphas[top] = scale * ratio
    return alphas


@dataclass
class Selection:
    """The validation curve over the grid, the chosen point and its weights, and the model the curve was taken on."""

    curve: list[dict[str, Any]]
    best: dict[str, Any]
    chosen_k: int
    alphas: np.ndarray
    base: dict[str, float]             # validation F and U of the input model (k = 0)
    scratch: FrozenTextClassifier      # an adapter copy at theta_hat
    parameters: dict[int, list[torch.Tensor]]  # the one-step task prompt and head at each k > 0 that did not diverge
    warnings: list[str]                # what the one-class guard changed, in words


def choose(curve: Sequence[dict[str, Any]], *, selection: str) -> tuple[dict[str, Any], list[str]]:
    """The chosen grid point of ``curve`` by :data:`RULES` ``[selection]``, and what the one-class guard changed,
    in words.  A point k > 0 whose ``one_class`` is set is never chosen; when every point k > 0 is, k = 0 (the
    input model) is kept."""
    def pick(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if selection == "actual":
            feasible = [p for p in points if (p["k"] == 0 or p["feasible_actual"]) and math.isfinite(p["actual_F"])]
            return min(feasible, key=lambda p: (p["actual_F"], p["k"]))
        if selection == "accuracy":
            feasible = [p for p in points if (p["k"] == 0 or p["feasible_accuracy"]) and math.isfinite(p["gap"])]
            return min(feasible, key=lambda p: (p["gap"], p["k"]))
        feasible = [p for p in points if p["k"] == 0 or p["feasible_predicted"]]
        return min(feasible, key=lambda p: (p["predicted_dF"], p["k"]))

    best = pick([p for p in curve if p["k"] == 0 or not p.get("one_class")])
    repairs = [p for p in curve if p["k"] > 0]
    if repairs and all(p.get("one_class") for p in repairs):
        sizes = ", ".join(f"{p['k']:,}" for p in repairs)
        return best, [f"every grid point k > 0 (k = {sizes}) predicts one class on the validation split after the "
                      f"one-step update ({repairs[0]['one_class']}, at k = {repairs[0]['k']:,}), so the model is kept as "
                      "it was (k = 0)"]
    unguarded = pick(curve)
    if unguarded is best:
        return best, []
    return best, [f"k = {unguarded['k']:,}, which the rule would otherwise choose, predicts one class on the validation "
                  f"split after the one-step update ({unguarded['one_class']}), so it was not chosen; k = {best['k']:,} was"]


def select(*, model: FrozenTextClassifier, scores: InfluenceScores, validation_rows: TextRows, groups: np.ndarray,
           config: FairIJConfig, threshold: float = 0.5, column: str = "group",
           progress: Progress | None = None) -> Selection:
    """Steps 2-5 of FairIJ: candidates, grid, weights, validation curves, and the choice.  Each point's validation
    decisions (P(favourable) at least ``threshold``) are checked for one class by the groups of ``column``."""
    measure, temperature, batch_size = config.measure, config.temperature, config.batch_size
    n = scores.n
    I_F, I_U = scores.influence_fairness, scores.influence_utility
    order = np.argsort(I_F, kind="stable")
    candidates = int((I_F < 0).sum())
    order = order[:candidates]
    sizes = grid(n, candidates, config.max_fraction, config.fractions)
    scratch = model.adapter_copy()
    theta_hat = [p.detach().clone() for p in scratch.task_parameters()]
    curve: list[dict[str, Any]] = []
    alphas_by_k: dict[int, np.ndarray] = {}
    parameters: dict[int, list[torch.Tensor]] = {}
    labels = np.asarray(validation_rows.labels)

    def one_class(z: torch.Tensor) -> str | None:
        return one_class_reason(y_true=labels, y_pred=decisions(z, threshold), groups=groups, column=column)

    def measured(z: torch.Tensor) -> dict[str, float]:
        """Validation accuracy and the measured gap of the thresholded decisions."""
        made = decisions(z, threshold)
        return {"accuracy": float((made == labels).mean()),
                "gap": group_gap(y_true=labels, y_pred=made, groups=groups, measure=measure)}

    z = margins(scratch, validation_rows, batch_size)
    base = surrogates(z, validation_rows, groups, measure, temperature)
    base_one_class, base_measured = one_class(z), measured(z)
    for step, k in enumerate(sizes):
        alphas = alphas_for(k, order, I_F, I_U, n=n, graded=config.graded, budget=config.utility_budget)
        alphas_by_k[k] = alphas
        point: dict[str, Any] = {"k": k, "fraction": k / n, "weight_removed": float(alphas.sum()),
                                 "predicted_dF": float(alphas @ I_F), "predicted_dU": float(alphas @ I_U)}
        if k == 0:
            actual, marked, seen = dict(base), base_one_class, dict(base_measured)
        else:
            try:
                updated = ij_update(scores=scores, alphas=alphas)
                set_task_parameters(scratch, updated)
                z = margins(scratch, validation_rows, batch_size)
                actual, marked = surrogates(z, validation_rows, groups, measure, temperature), one_class(z)
                seen = measured(z)
            except FairpromptError:  # the step diverged (non-finite margins): record it, never choose it
                actual, marked = {"fairness": math.nan, "utility": math.nan}, None
                seen = {"accuracy": math.nan, "gap": math.nan}
            else:
                parameters[k] = [t.detach().clone() for t in updated]
        point.update({"actual_F": actual["fairness"], "actual_U": actual["utility"],
                      "actual_dF": actual["fairness"] - base["fairness"], "actual_dU": actual["utility"] - base["utility"]})
        point["feasible_predicted"] = bool(point["predicted_dU"] <= config.utility_budget)
        point["feasible_actual"] = bool(math.isfinite(point["actual_dU"]) and point["actual_dU"] <= config.utility_budget)
        point.update(seen)
        point["feasible_accuracy"] = bool(math.isfinite(seen["accuracy"]) and
                                          seen["accuracy"] >= base_measured["accuracy"] - config.max_accuracy_drop - 1e-12)
        point["one_class"] = marked
        curve.append(point)
        if progress:
            progress("fairij: one-step updates on the validation split", step + 1, len(sizes))
    set_task_parameters(scratch, theta_hat)
    best, warnings = choose(curve, selection=config.selection)
    for point in curve:
        point["chosen"] = point is best
    chosen_k = int(best["k"])
    return Selection(curve=curve, best=best, chosen_k=chosen_k, alphas=alphas_by_k[chosen_k], base=base, scratch=scratch,
                     parameters=parameters, warnings=warnings)


__all__ = ["BINARY_RULE", "GRADED_RULE", "GRID_FRACTIONS", "RULES", "Selection", "alphas_for", "choose", "decisions",
           "evaluate", "grid", "margins", "select", "set_task_parameters", "surrogates"]
