"""Mitigations that repair a frozen model through prompts only.

``influence``: the influence core of FairIJ (per-row influence of training rows on a fairness
surrogate through the task prompt and head; the one-step infinitesimal-jackknife update).
``fairij``: FairIJ's selection (on the validation split) and repair (appended soft prompt, or the
one-step update of the task prompt and head), with an optional paired-refit check (``verify_fairij``), and
``train_appended_prompt`` (the append repair with any row weights).
``reprogram``: FairReprogram, a fairness trigger (text tokens, a pixel border or patch) trained per lambda
against an adversary or a gap penalty, with the Pareto front and a stated operating-point rule; ``load_trigger``
attaches a saved trigger to a frozen model.
``baselines``: the reference mitigations they are compared with (reweighing weights, fairlearn's
``ThresholdOptimizer`` on scores).
Imported lazily so that ``import fairprompt.mitigation`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_INFLUENCE = (
    "InfluenceScores", "MarginJacobian", "Curvature", "Surrogate", "fairness_surrogate", "fit_logistic", "gauss_newton",
    "ij_update", "influence_scores", "logistic_margins", "parameter_change", "predicted_change", "prompt_margins",
    "score_prompt", "validation_loss",
)
_FAIRIJ = {"fairij": "fairij", "FairIJResult": "FairIJResult", "FairIJVerification": "FairIJVerification",
           "verify_fairij": "verify", "train_appended_prompt": "train_appended_prompt"}
_BASELINES = ("reweighing_weights", "threshold_optimizer")
_REPROGRAM = {"reprogram": "reprogram", "ReprogramConfig": "ReprogramConfig", "ReprogramResult": "ReprogramResult",
              "load_trigger": "load_trigger"}


def __getattr__(name: str) -> Any:
    if name in _INFLUENCE:
        return getattr(importlib.import_module("fairprompt.mitigation.influence"), name)
    if name in _BASELINES:
        return getattr(importlib.import_module("fairprompt.mitigation.baselines"), name)
    if name in _FAIRIJ:
        module = importlib.import_module("fairprompt.mitigation.fairij")
        globals()["fairij"] = module.fairij  # importing the submodule bound its name here; the public name is the function
        return getattr(module, _FAIRIJ[name])
    if name in _REPROGRAM:
        module = importlib.import_module("fairprompt.mitigation.reprogram")
        globals()["reprogram"] = module.reprogram  # as for fairij: the public name is the function
        return getattr(module, _REPROGRAM[name])
    raise AttributeError(f"module 'fairprompt.mitigation' has no attribute {name!r}")


__all__ = [*_INFLUENCE, *_FAIRIJ, *_BASELINES, *_REPROGRAM]
