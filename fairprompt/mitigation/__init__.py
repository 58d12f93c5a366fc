"""Repairs of a frozen model through prompts only; one package per method.

``fairij_method``: FairIJ, which scores every training row by its influence on a validation fairness gap
through the task prompt and head (the infinitesimal-jackknife core: ``influence``, ``curvature``,
``objective``), chooses on the validation split which rows to down-weight, and repairs the task prompt
(appended soft tokens, or the one-step update); :func:`fairij` with a :class:`FairIJConfig`,
:func:`train_appended_prompt` (the append repair with any row weights) and :func:`verify_fairij` (paired
refits).
``reprogram_method``: FairReprogram, a fairness trigger (text tokens, a pixel border or patch) trained per
lambda against an adversary or a gap penalty, with the Pareto front and a stated operating-point rule:
:func:`reprogram` with a :class:`ReprogramConfig`; :func:`load_trigger` attaches a saved trigger to a frozen
model.
``baselines``: the reference mitigations they are compared with (reweighing weights, fairlearn's
``ThresholdOptimizer`` on scores).
``registry``: the methods a spec can name, and what each provides to the pipeline.

The names below are imported on first use, so that ``import fairprompt.mitigation`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_INFLUENCE = "fairprompt.mitigation.fairij_method.influence"
_EXPORTS: dict[str, tuple[str, str]] = {
    **{name: (_INFLUENCE, name) for name in (
        "InfluenceScores", "MarginJacobian", "Curvature", "Surrogate", "fairness_surrogate", "fit_logistic",
        "gauss_newton", "ij_update", "influence_scores", "logistic_margins", "parameter_change", "predicted_change",
        "prompt_margins", "score_prompt", "validation_loss")},
    "fairij": ("fairprompt.mitigation.fairij_method.repair", "fairij"),
    "train_appended_prompt": ("fairprompt.mitigation.fairij_method.repair", "train_appended_prompt"),
    "FairIJConfig": ("fairprompt.mitigation.fairij_method.config", "FairIJConfig"),
    "AppendTraining": ("fairprompt.mitigation.fairij_method.config", "AppendTraining"),
    "FairIJResult": ("fairprompt.mitigation.fairij_method.result", "FairIJResult"),
    "FairIJVerification": ("fairprompt.mitigation.fairij_method.result", "FairIJVerification"),
    "verify_fairij": ("fairprompt.mitigation.fairij_method.verify", "verify"),
    "reprogram": ("fairprompt.mitigation.reprogram_method.repair", "reprogram"),
    "ReprogramConfig": ("fairprompt.mitigation.reprogram_method.config", "ReprogramConfig"),
    "ReprogramResult": ("fairprompt.mitigation.reprogram_method.result", "ReprogramResult"),
    "load_trigger": ("fairprompt.mitigation.reprogram_method.artifact", "load_trigger"),
    "reweighing_weights": ("fairprompt.mitigation.baselines", "reweighing_weights"),
    "threshold_optimizer": ("fairprompt.mitigation.baselines", "threshold_optimizer"),
}


def __getattr__(name: str) -> Any:
    """PEP 562: the public names, imported from their module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fairprompt.mitigation' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
