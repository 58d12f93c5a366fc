"""Mitigations that repair a frozen model through prompts only.

``influence``: the influence core of FairIJ (per-row influence of training rows on a fairness
surrogate through the task prompt and head; the one-step infinitesimal-jackknife update).
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


def __getattr__(name: str) -> Any:
    if name in _INFLUENCE:
        return getattr(importlib.import_module("fairprompt.mitigation.influence"), name)
    raise AttributeError(f"module 'fairprompt.mitigation' has no attribute {name!r}")


__all__ = list(_INFLUENCE)
