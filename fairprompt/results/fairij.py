"""FairIJ's part of a repair record (``mitigations[].fairij``): the influence scoring, the validation curve over k,
the chosen removal set, the repair (one-step IJ update or appended soft prompt) and its artifacts."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from fairprompt.results.base import Real, Record
from fairprompt.results.model import TrainHistoryRecord


class FairnessUtility(Record):
    """Validation fairness surrogate F and cross-entropy U (or their changes)."""

    fairness: Real | None = None
    utility: Real | None = None


class CurvePoint(Record):
    """One grid point k: predicted (first-order) and actual (one-step update) validation F and U."""

    k: int
    fraction: Real | None = None
    weight_removed: Real | None = None
    predicted_dF: Real | None = None
    predicted_dU: Real | None = None
    actual_F: Real | None = None
    actual_U: Real | None = None
    actual_dF: Real | None = None
    actual_dU: Real | None = None
    feasible_predicted: bool | None = None
    feasible_actual: bool | None = None
    accuracy: Real | None = None
    """Validation accuracy of the thresholded decisions after the one-step update."""
    gap: Real | None = None
    """The measured validation gap (the repair's measure on the thresholded decisions) after the one-step update."""
    feasible_accuracy: bool | None = None
    one_class: str | None = None
    """Why the one-step update's validation decisions predict one class, in words (never chosen unless k = 0)."""
    chosen: bool | None = None


class GapDetail(Record):
    """One gap of the fairness surrogate: which rows, each group's mean P(favourable), the pair compared."""

    rows: str | None = None
    group_means: dict[str, Real | None] = Field(default_factory=dict)
    pair: list[str] | None = None
    temperature: Real | None = None
    max_gap: Real | None = None


class SurrogateDetail(Record):
    gaps: list[GapDetail] = Field(default_factory=list)
    smooth: bool | None = None
    favourable_class: int | None = None


class EigenSummary(Record):
    """The Gauss-Newton matrix's spectrum (exact solves only)."""

    largest: Real | None = None
    smallest: Real | None = None
    effective_rank: int | None = None
    rank_threshold: Real | None = None
    above_damping: int | None = None


class InfluenceSummary(Record):
    """How the rows were scored (:meth:`fairprompt.mitigation.fairij_method.influence.InfluenceScores.summary`)."""

    measure: str | None = None
    fairness: Real | None = None
    utility: Real | None = None
    curvature: str | None = None
    damping: Real | None = None
    damping_requested: Real | None = None
    damping_raised: bool | None = None
    l2: Real | None = None
    n: int | None = None
    p: int | None = None
    eigen: EigenSummary | None = None
    solver_info: dict[str, Real | str | None] = Field(default_factory=dict)
    mean_gradient_norm: Real | None = None
    seconds: Real | None = None
    jacobian_seconds: Real | None = None
    fairness_detail: SurrogateDetail | None = None


class FlaggedRow(Record):
    """One of the most harmful flagged training rows (most negative ``I_F`` first)."""

    rank: int | None = None
    row_id: int
    I_F: Real | None = None
    I_U: Real | None = None
    weight: Real | None = None
    group: str | None = None
    groups: dict[str, str | None] = Field(default_factory=dict)
    label: str | None = None
    favourable: bool | None = None
    features: dict[str, str | None] = Field(default_factory=dict)


class AppendTraining(Record):
    """The training settings of the appended soft prompt (:class:`fairprompt.models.training.TrainConfig`)."""

    max_epochs: int | None = None
    patience: int | None = None
    min_delta: Real | None = None
    batch_size: int | None = None
    lr: Real | None = None
    head_lr: Real | None = None
    weight_decay: Real | None = None
    seed: int | None = None
    grad_clip: Real | None = None


class AppendRepair(Record):
    """``append`` mode: the soft tokens appended and trained on the down-weighted rows."""

    tokens: int | None = None
    init: str | None = None
    seed: int | None = None
    position: str | None = None
    trained: str | None = None
    weights: str | None = None
    training: AppendTraining | None = None
    history: TrainHistoryRecord | None = None


class VerificationCheck(Record):
    """One removal set: predicted (first-order) against actual (removal run minus control run) changes."""

    rows: int | None = None
    weight_removed: Real | None = None
    predicted_dF: Real | None = None
    actual_dF: Real | None = None
    predicted_dU: Real | None = None
    actual_dU: Real | None = None
    ratio_dF: Real | None = None


class Verification(Record):
    """``verify: true``: predicted against actual changes, by paired fine-tuning from theta_hat."""

    epochs: int | None = None
    steps: int | None = None
    config: dict[str, Any] | None = None
    baseline: FairnessUtility | None = None
    control: FairnessUtility | None = None
    control_drift: FairnessUtility | None = None
    checks: list[VerificationCheck] = Field(default_factory=list)
    pearson_fairness: Real | None = None
    method: str | None = None
    seconds: Real | None = None


class FairIJRecord(Record):
    """What FairIJ decided and built (:meth:`fairprompt.mitigation.FairIJResult.to_dict`)."""

    method: str | None = None
    mode: str | None = None
    measure: str | None = None
    selection: str | None = None
    rule: str | None = None
    weighting: str | None = None
    graded: bool | None = None
    utility_budget: Real | None = None
    max_accuracy_drop: Real | None = None
    max_fraction: Real | None = None
    seed: int | None = None
    n_train: int | None = None
    chosen_k: int | None = None
    chosen_fraction: Real | None = None
    flagged_rows: int | None = None
    removed_weight: Real | None = None
    predicted_change: FairnessUtility | None = None
    one_step_change: FairnessUtility | None = None
    before: FairnessUtility | None = None
    after: FairnessUtility | None = None
    curve: list[CurvePoint] = Field(default_factory=list)
    influence: InfluenceSummary | None = None
    top_flagged: list[FlaggedRow] = Field(default_factory=list)
    append: AppendRepair | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, Real] = Field(default_factory=dict)
    verification: Verification | None = None
    split_used_for_selection: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def chosen(self) -> CurvePoint | None:
        return next((p for p in self.curve if p.chosen), None)


class FlaggedGroup(Record):
    """Per sensitive column, group and label (1 = favourable): training rows, flagged rows, weight removed."""

    column: str
    group: str | None = None
    label: int | None = None
    train_rows: int | None = None
    flagged_rows: int | None = None
    removed_weight: Real | None = None
