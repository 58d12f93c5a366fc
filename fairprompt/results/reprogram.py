"""FairReprogram's part of a repair record (``mitigations[].reprogram``): one trigger per lambda on the selection
rows, the chosen one and the rule, the trigger itself (words, nearest words or an image) and its artifacts."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from fairprompt.results.base import Real, Record


class ReprogramSettings(Record):
    """The :class:`fairprompt.mitigation.ReprogramConfig` that ran."""

    trigger: str | None = None
    tokens: int | None = None
    bottleneck: int | None = None
    parameter_budget: Real | None = None
    width: int | None = None
    patch_size: int | None = None
    corner: str | None = None
    measure: str | None = None
    objective: str | None = None
    projection: bool | None = None
    lambdas: list[Real] = Field(default_factory=list)
    max_accuracy_drop: Real | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: Real | None = None
    adversary_lr: Real | None = None
    adversary_hidden: int | None = None
    anchor: Real | None = None
    counterfactual: Real | None = None
    swap_terms: str | None = None
    selection: str | None = None
    temperature: Real | None = None
    tuning_split: str | None = None
    max_rows: int | None = None
    seed: int | None = None


class TriggerEpoch(Record):
    epoch: int
    task_loss: Real | None = None
    fairness_loss: Real | None = None
    seconds: Real | None = None


class SelectionScores(Record):
    """A model's accuracy and gaps on the selection rows."""

    accuracy: Real | None = None
    gap: Real | None = None
    demographic_parity_difference: Real | None = None
    equalized_odds_difference: Real | None = None
    one_class: str | None = None
    """Why these decisions predict one class (every row one decision, or 99% of a group), in words; None: they do not."""
    swap_flip_rate: Real | None = None
    """With ``selection: swap_flips``: the share of selection rows naming an identity whose decision flips when their
    identity phrases are swapped."""


class LambdaPoint(Record):
    """One trigger of the grid, on the selection rows."""

    lambda_: Real = Field(alias="lambda")
    accuracy: Real | None = None
    gap: Real | None = None
    demographic_parity_difference: Real | None = None
    equalized_odds_difference: Real | None = None
    one_class: str | None = None
    """Why these decisions predict one class (every row one decision, or 99% of a group), in words; None: they do not."""
    swap_flip_rate: Real | None = None
    """With ``selection: swap_flips``: the share of selection rows naming an identity whose decision flips when their
    identity phrases are swapped (the value the rule minimised)."""
    history: list[TriggerEpoch] | None = None
    diverged: str | None = None
    epoch_seconds: Real | None = None
    pareto: bool | None = None
    chosen: bool | None = None


class Tuning(Record):
    """Which rows trained the triggers and which chose one."""

    how: str | None = None
    fit_rows: int | None = None
    selection_rows: int | None = None
    groups: list[str] = Field(default_factory=list)
    group_column_values: int | None = None


class TriggerParameters(Record):
    trigger_trainable: int | None = None
    backbone: int | None = None
    model_total: int | None = None
    trainable_share_of_model: Real | None = None
    deployed_trigger_tokens: int | None = None
    note: str | None = None


class TriggerDescription(Record):
    """The trigger in a reader's terms: a hard trigger's words, a soft trigger's nearest words (a reading aid,
    not the trigger), or a pixel trigger as a PNG data URI."""

    kind: str | None = None
    tokens: int | None = None
    dim: int | None = None
    bottleneck: int | None = None
    parameters: int | None = None
    nearest_words: list[str] | None = None
    norms: list[Real | None] | None = None
    words: list[str] | None = None
    token_ids: list[int] | None = None
    text: str | None = None
    image_png: str | None = None
    image_size: list[int] | None = None
    config: dict[str, Any] | None = None


class ReprogramRecord(Record):
    """What FairReprogram trained and chose (:meth:`fairprompt.mitigation.ReprogramResult.to_dict`)."""

    trigger_kind: str | None = None
    modality: str | None = None
    config: ReprogramSettings | None = None
    rule: str | None = None
    rule_met: bool | None = None
    chosen_lambda: Real | None = None
    points: list[LambdaPoint] = Field(default_factory=list)
    before: SelectionScores | None = None
    tuning: Tuning | None = None
    parameters: TriggerParameters | None = None
    trigger: TriggerDescription | None = None
    warnings: list[str] = Field(default_factory=list)
    seconds: Real | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)

    @property
    def chosen(self) -> LambdaPoint | None:
        return next((p for p in self.points if p.chosen), None)


class BaselineRow(Record):
    """A peer on the same test rows (the untriggered model, ThresholdOptimizer, the chosen trigger)."""

    method: str
    description: str | None = None
    test_accuracy: Real | None = None
    demographic_parity_difference: Real | None = None
    equalized_odds_difference: Real | None = None
    accuracy_change: Real | None = None
