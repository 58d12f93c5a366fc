"""FairIJ's settings: one frozen dataclass, each field with its help text (the spec's ``fairij`` block is
derived from it, see :mod:`fairprompt.spec`), checked in ``__post_init__``.

Field metadata: ``help`` (one line), the bounds a spec accepts (``ge``, ``gt``, ``le``), and ``spec: False``
for settings of the Python API that a spec does not expose.  No torch here: the spec imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fairprompt.errors import FairpromptError

if TYPE_CHECKING:
    from fairprompt.models.training import TrainConfig

Measure = Literal["demographic_parity", "equal_opportunity", "equalized_odds"]
Mode = Literal["append", "ij"]
Selection = Literal["actual", "predicted", "accuracy"]
Solver = Literal["auto", "cholesky", "cg"]
MEASURES: tuple[str, ...] = ("demographic_parity", "equal_opportunity", "equalized_odds")
MODES: tuple[str, ...] = ("append", "ij")
SELECTIONS: tuple[str, ...] = ("actual", "predicted", "accuracy")
SOLVERS: tuple[str, ...] = ("auto", "cholesky", "cg")


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def check_fractions(fractions: Any) -> None:
    """Refuse a grid of shares that is empty, holds a value outside (0, 1], or is not strictly increasing (the bound
    ``max_fraction`` is checked with the whole config)."""
    if fractions is None:
        return
    values = list(fractions)
    if not values:
        raise FairpromptError("fairij.fractions is empty; give shares of the training rows in (0, 1], smallest first, "
                              "e.g. [0.01, 0.05, 0.1], or leave it out for the default grid")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and 0 < value <= 1):
            raise FairpromptError(f"fairij.fractions holds {value!r}; every share of the training rows must lie in "
                                  "(0, 1], e.g. 0.05 for 5%")
    for before, after in zip(values, values[1:]):
        if after <= before:
            raise FairpromptError(f"fairij.fractions is not strictly increasing ({before:g} then {after:g}); list each "
                                  "share once, smallest first, e.g. [0.01, 0.05, 0.1]")


@dataclass(frozen=True)
class AppendTraining:
    """How the appended soft tokens are trained (mode append; the task prompt and head stay frozen)."""

    max_epochs: int = field(default=10, metadata={"help": "upper limit of epochs", "ge": 1})
    patience: int = field(default=3, metadata={"help": "stop when validation loss has not improved for this many "
                                                       "epochs", "ge": 1})
    batch_size: int = field(default=32, metadata={"help": "training batch size", "ge": 1})
    lr: float = field(default=0.03, metadata={"help": "learning rate of the appended tokens", "gt": 0.0})

    def __post_init__(self) -> None:
        for key in ("max_epochs", "patience", "batch_size"):
            if not _positive_int(getattr(self, key)):
                raise FairpromptError(f"fairij append_training.{key} must be an integer >= 1 but is "
                                      f"{getattr(self, key)!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise FairpromptError(f"fairij append_training.lr must be a finite number > 0 but is {self.lr!r}")

    def train_config(self) -> TrainConfig:
        """The trainer's :class:`~fairprompt.models.training.TrainConfig` (no head learning rate: the head is frozen)."""
        from fairprompt.models.training import TrainConfig

        return TrainConfig(max_epochs=self.max_epochs, patience=self.patience, batch_size=self.batch_size, lr=self.lr,
                           head_lr=None)


@dataclass(frozen=True)
class FairIJConfig:
    """How FairIJ scores, selects and repairs (see :mod:`fairprompt.mitigation.fairij_method.repair`)."""

    measure: Measure = field(default="demographic_parity", metadata={"help": "the validation fairness gap to reduce"})
    mode: Mode = field(default="append", metadata={"help": "append: train appended soft tokens on the down-weighted "
                                                           "rows; ij: one-step IJ update of the task prompt and head"})
    utility_budget: float = field(default=0.01, metadata={"help": "largest accepted rise of the validation loss",
                                                          "ge": 0.0})
    max_fraction: float = field(default=0.1, metadata={"help": "largest share of training rows down-weighted",
                                                       "gt": 0.0, "le": 1.0})
    fractions: tuple[float, ...] | None = field(default=None, metadata={
        "help": "the grid of shares of the training rows tried as k, strictly increasing, each in (0, 1] and at most "
                "max_fraction (default: 0.005 to 0.5 up to max_fraction, and max_fraction itself)",
        "check": check_fractions})
    damping: float = field(default=1e-3, metadata={"help": "diagonal added to the Gauss-Newton matrix before the solve",
                                                   "gt": 0.0})
    solver: Solver = field(default="auto", metadata={"help": "curvature solve: Cholesky of the dense matrix, "
                                                             "matrix-free conjugate gradients, or auto (CG above 8,192 "
                                                             "prompt parameters)"})
    graded: bool = field(default=False, metadata={"help": "graded weights instead of removing the top-k rows outright"})
    selection: Selection = field(default="actual", metadata={
        "help": "choose k by the actual (one-step) or the predicted validation change of the surrogate F within "
                "utility_budget, or (accuracy) by the measured validation gap within max_accuracy_drop"})
    max_accuracy_drop: float = field(default=0.01, metadata={
        "help": "selection accuracy: the most validation accuracy a grid point may lose against k = 0 (0.01 = 1 point)",
        "ge": 0.0, "le": 1.0})
    append_tokens: int = field(default=4, metadata={"help": "soft tokens appended in mode append", "ge": 1, "le": 64})
    append_training: AppendTraining = field(default=AppendTraining(), metadata={"help": "how the appended tokens "
                                                                                         "are trained"})
    seed: int = field(default=0, metadata={"help": "seed of the appended tokens' initialisation and batch order"})
    verify: bool = field(default=False, metadata={"help": "also fine-tune with the chosen rows removed and report "
                                                          "predicted against actual change (slow)"})
    verify_epochs: int = field(default=3, metadata={"help": "epochs of the verify fine-tuning", "ge": 1})
    l2: float = field(default=0.0, metadata={"help": "L2 strength of the trained objective (0 for prompt tuning)",
                                             "spec": False})
    temperature: float | None = field(default=None, metadata={"help": "smooth-max temperature of the fairness "
                                                                      "surrogate (None: the max gap)", "spec": False})
    append_init: Literal["random", "vocab"] = field(default="random", metadata={
        "help": "initialisation of the appended tokens: near-zero random, or vocabulary embeddings", "spec": False})
    batch_size: int = field(default=32, metadata={"help": "batch size of the margin and Jacobian passes",
                                                  "spec": False})
    verify_training: TrainConfig | None = field(default=None, metadata={
        "help": "the verify fine-tuning's TrainConfig (None: DEFAULT_VERIFY_TRAINING)", "spec": False})

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise FairpromptError(f"unknown fairness measure {self.measure!r} for fairij; use one of {', '.join(MEASURES)}")
        if self.mode not in MODES:
            raise FairpromptError(f"unknown fairij mode {self.mode!r}; use 'append' or 'ij'")
        if self.selection not in SELECTIONS:
            raise FairpromptError(f"unknown fairij selection {self.selection!r}; use 'actual', 'predicted' or 'accuracy'")
        if not (isinstance(self.max_accuracy_drop, int | float) and not isinstance(self.max_accuracy_drop, bool)
                and math.isfinite(self.max_accuracy_drop) and 0 <= self.max_accuracy_drop <= 1):
            raise FairpromptError(f"fairij max_accuracy_drop is {self.max_accuracy_drop!r}; use a share in [0, 1] "
                                  "(0.01 = 1 point of validation accuracy)")
        if self.solver not in SOLVERS:
            raise FairpromptError(f"unknown curvature solver {self.solver!r}; use 'auto', 'cholesky' or 'cg'")
        if not (isinstance(self.utility_budget, int | float) and math.isfinite(self.utility_budget)
                and self.utility_budget >= 0):
            raise FairpromptError(f"fairij utility_budget must be a finite number >= 0 but is {self.utility_budget!r}; "
                                  "set it to the largest validation-loss increase you accept, e.g. 0.01")
        if not (isinstance(self.max_fraction, int | float) and 0 < self.max_fraction <= 1):
            raise FairpromptError(f"fairij max_fraction must lie in (0, 1] but is {self.max_fraction!r}; e.g. 0.1 for at "
                                  "most 10% of the training rows")
        check_fractions(self.fractions)
        if self.fractions is not None and max(self.fractions) > self.max_fraction:
            raise FairpromptError(f"fairij.fractions holds {max(self.fractions)!r}, above max_fraction "
                                  f"{self.max_fraction!r}; drop the larger shares or raise max_fraction")
        if not _positive_int(self.append_tokens):
            raise FairpromptError(f"fairij append_tokens must be an integer >= 1 but is {self.append_tokens!r}; e.g. 4")
        if not isinstance(self.append_training, AppendTraining):
            raise FairpromptError(f"fairij append_training must be an AppendTraining, not "
                                  f"{type(self.append_training).__name__}")
        for key in ("damping", "l2"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise FairpromptError(f"fairij {key} must be a finite number >= 0 but is {value!r}")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise FairpromptError(f"fairij temperature must be a finite number > 0 or None but is {self.temperature!r}")
        if self.append_init not in ("random", "vocab"):
            raise FairpromptError(f"fairij append_init is {self.append_init!r}; use 'random' (near-zero) or 'vocab'")
        if not _positive_int(self.verify_epochs):
            raise FairpromptError(f"fairij verify epochs must be an integer >= 1 but is {self.verify_epochs!r}; e.g. 3")
        if not _positive_int(self.batch_size):
            raise FairpromptError(f"fairij batch_size must be an integer >= 1 but is {self.batch_size!r}")


__all__ = ["MEASURES", "MODES", "SELECTIONS", "SOLVERS", "AppendTraining", "FairIJConfig", "Measure", "Mode",
           "Selection", "Solver", "check_fractions"]
