"""FairReprogram's settings: one frozen dataclass, each field with its help text (the spec's ``reprogram``
block is derived from it, see :mod:`fairprompt.spec`), checked in ``__post_init__``.

Field metadata: ``help`` (one line) and the bounds a spec accepts (``ge``, ``gt``, ``le``); ``check`` names a
function that refuses a bad value of that field alone (the spec runs it on the key).  No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from fairprompt.errors import FairpromptError

TriggerKind = Literal["soft", "hard", "conditional", "border", "patch"]
Objective = Literal["adversary", "surrogate"]
Measure = Literal["demographic_parity", "equalized_odds"]
TuningSplit = Literal["train", "validation"]
Selection = Literal["gap", "swap_flips"]
Corner = Literal["top_left", "top_right", "bottom_left", "bottom_right"]
TEXT_TRIGGERS: tuple[str, ...] = ("soft", "hard", "conditional")
IMAGE_TRIGGERS: tuple[str, ...] = ("border", "patch")
TRIGGERS: tuple[str, ...] = (*TEXT_TRIGGERS, *IMAGE_TRIGGERS)
OBJECTIVES: tuple[str, ...] = ("adversary", "surrogate")
MEASURES: tuple[str, ...] = ("demographic_parity", "equalized_odds")
SELECTIONS: tuple[str, ...] = ("gap", "swap_flips")
DEFAULT_LR: dict[str, float] = {"soft": 0.03, "hard": 0.05, "conditional": 0.03, "border": 0.1, "patch": 0.1}


def check_lambdas(lambdas: Sequence[float]) -> None:
    """Refuse an empty lambda grid, one with a negative or non-finite value, or one not strictly increasing."""
    values = list(lambdas)
    if not values:
        raise FairpromptError("reprogram.lambdas is empty; give one or more lambdas >= 0, e.g. [0, 1, 4, 16] "
                              "(0 is the control)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise FairpromptError(f"reprogram.lambdas holds {value!r}; every lambda must be a finite number >= 0")
    for before, after in zip(values, values[1:]):
        if after <= before:
            raise FairpromptError(f"reprogram.lambdas is not strictly increasing ({before:g} then {after:g}); list each "
                                  "lambda once, smallest first, e.g. [0, 1, 4, 16]")


@dataclass(frozen=True)
class ReprogramConfig:
    """How a fairness trigger is trained and chosen (see :mod:`fairprompt.mitigation.reprogram_method.repair`)."""

    KEY_OMITS_AT_DEFAULT: ClassVar[tuple[str, ...]] = ("counterfactual", "swap_terms", "selection")
    """Options added after repairs were shipped: at their defaults, shipped-repair keys leave them out."""

    trigger: TriggerKind | None = field(default=None, metadata={
        "help": "soft, hard or conditional tokens (text models), border or patch (image models); default soft / border"})
    tokens: int = field(default=5, metadata={"help": "trigger tokens (soft, hard, conditional)", "ge": 1})
    bottleneck: int = field(default=8, metadata={
        "help": "conditional trigger: width of the bottleneck of the generator that writes the tokens per input",
        "ge": 1})
    parameter_budget: float = field(default=0.001, metadata={
        "help": "conditional trigger: the largest share of the model's parameters its generator may train (0.001 = "
                "0.1%); a larger one is refused", "gt": 0.0, "le": 1.0})
    width: int = field(default=4, metadata={"help": "border width in pixels", "ge": 1})
    patch_size: int = field(default=8, metadata={"help": "side of the patch in pixels", "ge": 1})
    corner: Corner = field(default="bottom_right", metadata={"help": "corner of the patch"})
    measure: Measure = field(default="demographic_parity", metadata={"help": "the gap the trigger removes"})
    objective: Objective = field(default="surrogate", metadata={
        "help": "adversary (min-max against a group predictor) or surrogate (a squared-gap penalty)"})
    projection: bool = field(default=False, metadata={
        "help": "adversary: project the task gradient (Zhang et al. 2018)"})
    lambdas: tuple[float, ...] = field(default=(0.0, 1.0, 4.0, 16.0), metadata={
        "help": "the grid of fairness weights, strictly increasing, one trigger each (0 is the control)", "check": check_lambdas})
    max_accuracy_drop: float = field(default=0.02, metadata={
        "help": "operating point: the smallest validation gap with at most this much validation accuracy lost",
        "ge": 0.0, "le": 1.0})
    epochs: int = field(default=3, metadata={"help": "epochs per lambda", "ge": 1})
    batch_size: int = field(default=64, metadata={"help": "training batch size", "ge": 2})
    lr: float | None = field(default=None, metadata={
        "help": "learning rate (default 0.03 soft, 0.05 hard, 0.1 pixels)", "gt": 0.0})
    adversary_lr: float = field(default=1e-2, metadata={"help": "learning rate of the adversary", "gt": 0.0})
    adversary_hidden: int = field(default=32, metadata={"help": "hidden units of the adversary", "ge": 1})
    anchor: float = field(default=0.0, metadata={
        "help": "surrogate: weight, inside the fairness term, of the rate anchor: the squared change of the batch's "
                "mean favourable probability against the untriggered model's on the same rows (keeps a trigger from "
                "closing the gap by moving every score one way)", "ge": 0.0})
    counterfactual: float = field(default=0.0, metadata={
        "help": "surrogate, text, tuning_split train: weight, inside the fairness term, of counterfactual invariance: "
                "the mean squared change of the favourable probability when each training row's identity phrases "
                "are swapped for another group's (swap_terms)", "ge": 0.0})
    swap_terms: str | None = field(default=None, metadata={
        "help": "the identity phrases the counterfactual term swaps: built-in identity_toxicity, or a YAML or JSON "
                "file (relative to the working directory) mapping each group to its phrases"})
    selection: Selection = field(default="gap", metadata={
        "help": "what the operating point minimises within the accuracy budget: gap (the measure's gap on the "
                "selection rows) or swap_flips (the share of selection rows naming an identity whose decision flips "
                "when their identity phrases are swapped, swap_terms; text models)"})
    temperature: float = field(default=1.0, metadata={
        "help": "surrogate: the gap is taken on sigmoid((margin - logit(threshold)) / temperature); 1 is the "
                "favourable probability, smaller is closer to the decision", "gt": 0.0})
    tuning_split: TuningSplit = field(default="train", metadata={
        "help": "train triggers on the training split (choose on validation), or on half the validation split"})
    max_rows: int | None = field(default=None, metadata={
        "help": "train triggers on at most this many rows (seeded draw)", "ge": 10})
    seed: int = field(default=0, metadata={"help": "seed of the trigger's initialisation and batch order"})

    def __post_init__(self) -> None:
        if self.trigger is not None and self.trigger not in TRIGGERS:
            raise FairpromptError(f"reprogram.trigger is {self.trigger!r}; use one of {', '.join(TRIGGERS)}")
        if self.measure not in MEASURES:
            raise FairpromptError(f"reprogram.measure is {self.measure!r}; use demographic_parity or equalized_odds")
        if self.objective not in OBJECTIVES:
            raise FairpromptError(f"reprogram.objective is {self.objective!r}; use adversary or surrogate")
        if self.projection and self.objective != "adversary":
            raise FairpromptError("reprogram.projection needs objective: adversary (it projects the adversary's gradient)")
        if self.objective == "adversary" and isinstance(self.anchor, int | float) and self.anchor > 0:
            raise FairpromptError("reprogram.anchor needs objective: surrogate (the adversary has no rate anchor); "
                                  "remove anchor or use the surrogate objective")
        check_lambdas(self.lambdas)
        for key in ("tokens", "width", "patch_size", "epochs", "batch_size", "adversary_hidden", "bottleneck"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FairpromptError(f"reprogram.{key} must be an integer >= 1 but is {value!r}")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 10):
            raise FairpromptError(f"reprogram.max_rows must be an integer >= 10 or null but is {self.max_rows!r}")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise FairpromptError(f"reprogram.max_accuracy_drop is {self.max_accuracy_drop!r}; "
                                  "use a share in [0, 1] (0.02 = 2 points)")
        if isinstance(self.counterfactual, int | float) and self.counterfactual > 0:
            if not self.swap_terms:
                raise FairpromptError("reprogram.counterfactual needs swap_terms: the identity phrases to swap "
                                      "(built-in identity_toxicity, or a YAML file of group -> phrases)")
            if self.objective != "surrogate" or self.tuning_split != "train":
                raise FairpromptError("reprogram.counterfactual needs objective: surrogate and tuning_split: train "
                                      "(it swaps the training rows' identity phrases)")
        if self.selection not in SELECTIONS:
            raise FairpromptError(f"reprogram.selection is {self.selection!r}; use gap or swap_flips")
        if self.selection == "swap_flips" and not self.swap_terms:
            raise FairpromptError("reprogram.selection: swap_flips needs swap_terms: the identity phrases to swap "
                                  "(built-in identity_toxicity, or a YAML file of group -> phrases)")
        for key, value in (("anchor", self.anchor), ("parameter_budget", self.parameter_budget),
                           ("counterfactual", self.counterfactual)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0 \
                    or (key == "parameter_budget" and not 0 < value <= 1):
                raise FairpromptError(f"reprogram.{key} is {value!r}; use "
                                      + ("a share in (0, 1], e.g. 0.001" if key == "parameter_budget"
                                         else "a finite number >= 0"))
        for key in ("lr", "adversary_lr", "temperature"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise FairpromptError(f"reprogram.{key} must be a finite number > 0 but is {value!r}")
        if self.tuning_split not in ("train", "validation"):
            raise FairpromptError(f"reprogram.tuning_split is {self.tuning_split!r}; use train or validation")

    def learning_rate(self, kind: str) -> float:
        """The trigger's learning rate: ``lr``, else the default for the trigger ``kind``."""
        return float(self.lr) if self.lr is not None else DEFAULT_LR[kind]


__all__ = ["DEFAULT_LR", "IMAGE_TRIGGERS", "MEASURES", "OBJECTIVES", "SELECTIONS", "TEXT_TRIGGERS", "TRIGGERS", "Corner",
           "Measure", "Objective", "ReprogramConfig", "Selection", "TriggerKind", "TuningSplit", "check_lambdas"]
