"""What :func:`~fairprompt.mitigation.fairij_method.repair.fairij` decided and built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from fairprompt.mitigation.fairij_method.influence import InfluenceScores
    from fairprompt.models.text import FrozenTextClassifier
    from fairprompt.prompts import SoftPrompt


@dataclass
class FairIJVerification:
    """Predicted against actual changes of F and U for removal sets, by paired fine-tuning from theta_hat."""

    epochs: int
    steps: int
    config: dict[str, Any]
    baseline: dict[str, float]           # validation F, U at theta_hat
    control: dict[str, float]            # validation F, U after the control run (nothing removed)
    control_drift: dict[str, float]      # control minus baseline (subtracted from every removal run)
    checks: list[dict[str, Any]]         # per set: rows removed, predicted and actual dF, dU
    pearson_fairness: float | None
    method: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts (:func:`~fairprompt.mitigation.fairij_method.record.verification_record`)."""
        from fairprompt.mitigation.fairij_method.record import verification_record

        return verification_record(self)


@dataclass
class FairIJResult:
    """What :func:`fairij` decided and built (see the module docstring); ``to_dict`` is results.json-ready."""

    mode: str
    measure: str
    selection: str
    rule: str
    weighting: str
    graded: bool
    utility_budget: float
    max_fraction: float
    seed: int
    row_ids: np.ndarray
    influence_fairness: np.ndarray
    influence_utility: np.ndarray
    alphas: np.ndarray
    chosen_k: int
    curve: list[dict[str, Any]]
    before: dict[str, float]                   # validation F and U of the input model (theta_hat)
    after: dict[str, float]                    # validation F and U of the repaired model
    influence: dict[str, Any]                  # InfluenceScores.summary(): curvature, damping, eigen, gradient norm
    timings: dict[str, float]
    repaired_model: FrozenTextClassifier = field(repr=False)
    prompt: SoftPrompt | None = field(default=None, repr=False)
    append: dict[str, Any] | None = None       # append mode: tokens, init, training config and history
    artifacts: dict[str, str] = field(default_factory=dict)
    verification: FairIJVerification | None = None
    scores: InfluenceScores | None = field(default=None, repr=False)
    grid_parameters: dict[int, list[Any]] = field(default_factory=dict, repr=False)
    """Mode ij: the one-step task prompt and head (tensors) at each k > 0 of the grid that did not diverge."""
    warnings: list[str] = field(default_factory=list)   # what the one-class guard changed, in words
    max_accuracy_drop: float | None = None              # selection accuracy's budget (None for the other rules)

    @property
    def flagged(self) -> np.ndarray:
        """Rows with any weight removed (alpha > 0)."""
        return self.alphas > 0

    @property
    def weights(self) -> np.ndarray:
        """The multiplier each training row's weight receives: ``1 - alpha``."""
        return 1.0 - self.alphas

    @property
    def chosen(self) -> dict[str, Any]:
        """The curve's row at the chosen grid point."""
        return next(point for point in self.curve if point["chosen"])

    def influence_frame(self) -> pd.DataFrame:
        """Per training row: ``row_id, I_F, I_U, flagged, weight`` (the caller adds group and label columns)."""
        import pandas as pd

        return pd.DataFrame({"row_id": self.row_ids, "I_F": self.influence_fairness, "I_U": self.influence_utility,
                             "flagged": self.flagged, "weight": self.weights})

    def save(self, directory: str | Path) -> dict[str, str]:
        """Write the repaired artifact into ``directory`` (:func:`~fairprompt.mitigation.fairij_method.artifact.save_repair`):
        the appended prompt (``fairij_prompt.safetensors`` + ``.json``) or the repaired task adapter
        (``fairij_adapter/``); returns and records the paths."""
        from fairprompt.mitigation.fairij_method.artifact import save_repair

        return save_repair(self, directory)

    def to_dict(self, *, top: int = 50) -> dict[str, Any]:
        """JSON-ready facts (no tensors; :func:`~fairprompt.mitigation.fairij_method.record.result_record`); per-row
        scores go to :meth:`influence_frame`, the ``top`` flagged rows here."""
        from fairprompt.mitigation.fairij_method.record import result_record

        return result_record(self, top=top)


__all__ = ["FairIJResult", "FairIJVerification"]
