"""FairReprogram's part of results.json: the result's facts, and the baselines table on the test split (the
untriggered model, fairlearn's ThresholdOptimizer on its scores, and the trigger, on the same rows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fairprompt.metrics.point import group_gap
from fairprompt.results import to_jsonable

if TYPE_CHECKING:
    from fairprompt.mitigation.reprogram_method.result import ReprogramResult


def result_record(result: ReprogramResult) -> dict[str, Any]:
    """What FairReprogram trained and chose, JSON-ready (no modules)."""
    return to_jsonable({
        "trigger_kind": result.trigger_kind, "modality": result.modality, "config": result.config, "rule": result.rule,
        "rule_met": result.rule_met, "chosen_lambda": result.chosen_lambda, "points": result.points,
        "before": result.before, "tuning": result.tuning, "parameters": result.parameters,
        "trigger": result.trigger_description, "warnings": result.warnings, "seconds": result.seconds,
        "artifacts": result.artifacts,
    })


def baseline_row(*, method: str, description: str, y_true: np.ndarray, predicted: np.ndarray, groups: np.ndarray,
                 reference: np.ndarray) -> dict[str, Any]:
    """One method's test accuracy and gaps (NaN where undefined), and its accuracy change against ``reference``
    (the untriggered model's decisions on the same rows)."""
    accuracy = float((predicted == y_true).mean())
    return {"method": method, "description": description, "test_accuracy": accuracy,
            "demographic_parity_difference": group_gap(y_true=y_true, y_pred=predicted, groups=groups,
                                                       measure="demographic_parity"),
            "equalized_odds_difference": group_gap(y_true=y_true, y_pred=predicted, groups=groups,
                                                   measure="equalized_odds"),
            "accuracy_change": accuracy - float((reference == y_true).mean())}


def baselines(*, result: ReprogramResult, group: str, threshold: float, y_test: np.ndarray, test_groups: np.ndarray,
              before_test: np.ndarray, after_pred: np.ndarray, fit_scores: np.ndarray, fit_labels: np.ndarray,
              fit_groups: np.ndarray, seed: int) -> list[dict[str, Any]]:
    """The untriggered model, fairlearn's ThresholdOptimizer (fitted on the untriggered validation scores, by
    ``group``; it needs the group at prediction time) and the trigger, on the same test rows."""
    from fairprompt.mitigation.baselines import threshold_optimizer

    measure = result.config["measure"]
    optimized = threshold_optimizer(fit_scores=fit_scores, fit_labels=fit_labels, fit_groups=fit_groups,
                                    scores=before_test, groups=test_groups, constraints=measure, seed=seed)
    before_pred = (before_test >= threshold).astype(np.int8)
    common = {"y_true": y_test, "groups": test_groups, "reference": before_pred}
    return [
        baseline_row(method="untriggered model", description=f"the frozen model as audited, threshold {threshold:g}",
                     predicted=before_pred, **common),
        baseline_row(method=f"ThresholdOptimizer ({measure})",
                     description="fairlearn's ThresholdOptimizer on the untriggered model's scores, fitted on the "
                                 f"validation split by {group}; it needs the group at prediction time",
                     predicted=np.asarray(optimized), **common),
        baseline_row(method=f"FairReprogram (lambda {result.chosen_lambda:g})",
                     description=f"{result.trigger_kind} trigger appended to every input; needs no group at "
                                 "prediction time", predicted=after_pred, **common),
    ]


__all__ = ["baseline_row", "baselines", "result_record"]
