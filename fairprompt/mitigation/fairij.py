r"""FairIJ selection and repair: which training rows to down-weight, and a new prompt that acts on it.

The influence math lives in :mod:`fairprompt.mitigation.influence`; this module turns scores into a
decision and a repaired model.  The input model is never changed: every repair works on
:meth:`~fairprompt.models.text.FrozenTextClassifier.adapter_copy`, which shares the frozen backbone
(the same module, never written) and copies only the task prompt, the head and the extra prompts.

Steps of :func:`fairij`
-----------------------
1. **Scoring.**  :func:`~fairprompt.mitigation.influence.score_prompt` at the trained task prompt and
   head theta_hat: ``I_F(i)`` and ``I_U(i)``, the first-order change of the validation fairness surrogate F
   and of the validation cross-entropy U when training row i is removed (negative ``I_F``: removing the row
   makes the model fairer).
2. **Candidates.**  Rows with ``I_F < 0``, most negative first.  The grid of set sizes is
   ``k = 0`` plus ``round(f n)`` for f in :data:`GRID_FRACTIONS` up to ``max_fraction`` (and
   ``max_fraction`` itself), each at least 1 and at most the number of candidates.
3. **Weights per grid point.**  ``alpha_i`` in [0, 1] is the share of row i's weight removed
   (``w_i -> (1 - alpha_i) w_i``).  Binary (default): ``alpha = 1`` on the top-k candidates.
   ``graded=True``: on the top-k candidates ``alpha_i = t_k r_i`` with ``r_i = I_F(i) / I_F(top)``
   (proportional to the negative influence, 1 for the most harmful row, 0 for rows with ``I_F >= 0``),
   and ``t_k = min(1, utility_budget / sum_i r_i I_U(i))`` when that sum is positive, else 1: the
   weights are scaled down until the predicted utility change meets the budget.
4. **Curves, on the validation split only.**  For every grid point: the predicted changes
   ``dF(k) = sum alpha_i I_F(i)``, ``dU(k) = sum alpha_i I_U(i)``, and the ACTUAL validation F and U of the
   one-step IJ update ``theta_hat + (1/n) H^-1 sum alpha_i w_i g_i`` (one forward pass of the validation
   rows each).  The test split is never seen here.
5. **Choice.**  ``selection="actual"`` (default): the grid point with the lowest actual validation F among
   those whose actual validation U rose by at most ``utility_budget`` (k = 0 always qualifies; ties go
   to the smaller k).  ``selection="predicted"``: the lowest predicted ``dF`` with predicted
   ``dU <= utility_budget``.  The rule that ran is recorded in :attr:`FairIJResult.rule`.
6. **Repair.**  ``mode="ij"``: the one-step update written into the task prompt and head of an adapter
   copy (no refit, the FairIJ way).  ``mode="append"`` (default, the design's "down-weighting through
   appended soft prompts"): the task prompt and head stay frozen; ``append_tokens`` new
   :class:`~fairprompt.prompts.SoftPrompt` tokens (``position="append"``, seeded ``init``) are added to an
   adapter copy and trained alone with :func:`fairprompt.models.training.train` on the training rows
   re-weighted ``w_i (1 - alpha_i)`` (0 for removed rows), early-stopped on the validation rows.

``damping`` is the absolute diagonal added to the Gauss-Newton matrix before the Cholesky solve (see the
influence module).  The default here, 1e-3, is ten times the influence core's: a conservative, untuned
choice, because the one-step update moves farthest along the weakest curvature directions and the prompt's
Gauss-Newton matrix is strongly rank-deficient; the actual-value rule then checks the step it damps.  The
damping requested and the damping used (raised automatically when the matrix is numerically singular, never
an error) are reported in ``FairIJResult.influence`` with the curvature name and eigenvalue summary.

Artifacts: ``append`` -> ``fairij_prompt.safetensors`` + ``fairij_prompt.json`` (:func:`fairprompt.prompts.save_prompt`;
attach with ``model.adapter_copy().prompts.append(load_prompt(path))``); ``ij`` -> ``fairij_adapter/`` (the
repaired task adapter, :meth:`FrozenTextClassifier.save`), written by :meth:`FairIJResult.save`.

:func:`verify` (on request) fine-tunes the task prompt and head from theta_hat for a fixed, stated number
of epochs with the chosen rows removed, beside a paired control run (same seed, same batch order,
nothing removed), and reports predicted against actual changes (removal run minus control run).
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.influence import (
    MEASURES, InfluenceScores, MarginJacobian, Measure, Solver, fairness_surrogate, ij_update, score_prompt,
    validation_loss,
)
from fairprompt.models.training import Progress, TrainConfig, TrainHistory, shuffled_batches, train

if TYPE_CHECKING:
    import pandas as pd

    from fairprompt.models.text import FrozenTextClassifier, TextRows
    from fairprompt.prompts import SoftPrompt

Mode = Literal["append", "ij"]
Selection = Literal["actual", "predicted"]
MODES: tuple[str, ...] = ("append", "ij")
SELECTIONS: tuple[str, ...] = ("actual", "predicted")
GRID_FRACTIONS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
DEFAULT_APPEND_TRAINING = TrainConfig(max_epochs=10, patience=3, lr=3e-2, head_lr=None)
DEFAULT_VERIFY_TRAINING = TrainConfig(lr=1e-2, head_lr=1e-2, batch_size=32, grad_clip=None)
PROMPT_STEM = "fairij_prompt"
ADAPTER_DIR = "fairij_adapter"
RULES = {
    "actual": "lowest actual validation F after the one-step IJ update among grid points whose actual validation "
              "U rose by at most utility_budget (k = 0 always qualifies; ties go to the smaller k)",
    "predicted": "lowest predicted (first-order) change of F among grid points whose predicted change of U is at "
                 "most utility_budget (k = 0 always qualifies; ties go to the smaller k)",
}
GRADED_RULE = ("alpha_i = t_k * I_F(i) / I_F(top row) on the top-k rows with I_F < 0, with t_k = min(1, utility_budget / "
               "sum_i (I_F(i) / I_F(top)) I_U(i)) when that sum is positive, else 1")
BINARY_RULE = "alpha_i = 1 (row removed) on the top-k rows with I_F < 0, 0 elsewhere"


# --------------------------------------------------------------------------------------------------- results
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
        return _jsonable({
            "epochs": self.epochs, "steps": self.steps, "config": self.config, "baseline": self.baseline,
            "control": self.control, "control_drift": self.control_drift, "checks": self.checks,
            "pearson_fairness": self.pearson_fairness, "method": self.method, "seconds": self.seconds,
        })


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
        """Write the repaired artifact into ``directory``: the appended prompt (``fairij_prompt.safetensors`` +
        ``.json``) or the repaired task adapter (``fairij_adapter/``); returns and records the paths."""
        from fairprompt.prompts import save_prompt

        directory = Path(directory)
        if self.mode == "append":
            assert self.prompt is not None
            self.artifacts["prompt"] = str(save_prompt(self.prompt, directory / PROMPT_STEM))
        else:
            self.artifacts["adapter"] = str(self.repaired_model.save(directory / ADAPTER_DIR))
        return dict(self.artifacts)

    def to_dict(self, *, top: int = 50) -> dict[str, Any]:
        """JSON-ready facts (no tensors); per-row scores go to :meth:`influence_frame`, the ``top`` flagged rows here."""
        flagged = np.flatnonzero(self.flagged)
        flagged = flagged[np.argsort(self.influence_fairness[flagged], kind="stable")]
        chosen = self.chosen
        return _jsonable({
            "method": "fairij", "mode": self.mode, "measure": self.measure, "selection": self.selection, "rule": self.rule,
            "weighting": self.weighting, "graded": self.graded, "utility_budget": self.utility_budget,
            "max_fraction": self.max_fraction, "seed": self.seed, "n_train": int(self.row_ids.size),
            "chosen_k": self.chosen_k, "chosen_fraction": self.chosen_k / max(1, self.row_ids.size),
            "flagged_rows": int(flagged.size), "removed_weight": float(self.alphas.sum()),
            "predicted_change": {"fairness": chosen["predicted_dF"], "utility": chosen["predicted_dU"]},
            "one_step_change": {"fairness": chosen["actual_dF"], "utility": chosen["actual_dU"]},
            "before": self.before, "after": self.after, "curve": self.curve, "influence": self.influence,
            "top_flagged": [{"row_id": _plain(self.row_ids[i]), "I_F": float(self.influence_fairness[i]),
                             "I_U": float(self.influence_utility[i]), "weight": float(1.0 - self.alphas[i])}
                            for i in flagged[:top]],
            "append": self.append, "artifacts": self.artifacts, "timings": self.timings,
            "verification": self.verification.to_dict() if self.verification is not None else None,
            "split_used_for_selection": "validation",
        })


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ------------------------------------------------------------------------------------------------- helpers
def _forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def _margins(model: FrozenTextClassifier, rows: TextRows, batch_size: int) -> torch.Tensor:
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


def _evaluate(model: FrozenTextClassifier, rows: TextRows, groups: Any, measure: str, temperature: float | None,
              batch_size: int) -> dict[str, float]:
    """Validation F and U of ``model`` (the same surrogates the scores differentiate)."""
    z = _margins(model, rows, batch_size)
    values = MarginJacobian(z=z, J=torch.zeros(len(z), 1, dtype=torch.float64), theta=torch.zeros(1, dtype=torch.float64),
                            shapes=((1,),), names=("unused",))
    F = fairness_surrogate(validation=values, labels=rows.labels, groups=groups, measure=measure, temperature=temperature)
    U = validation_loss(validation=values, labels=rows.labels)
    return {"fairness": F.value, "utility": U.value}


def _set_task_parameters(model: FrozenTextClassifier, tensors: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for parameter, tensor in zip(model.task_parameters(), tensors, strict=True):
            parameter.copy_(tensor.to(device=parameter.device, dtype=parameter.dtype))


def _grid(n: int, candidates: int, max_fraction: float) -> list[int]:
    sizes = {0}
    for fraction in (*[f for f in GRID_FRACTIONS if f < max_fraction], max_fraction):
        k = min(max(1, int(round(fraction * n))), candidates)
        if k >= 1:
            sizes.add(k)
    return sorted(sizes)


def _alphas_for(k: int, order: np.ndarray, I_F: np.ndarray, I_U: np.ndarray, *, n: int, graded: bool,
                budget: float) -> np.ndarray:
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


def _check_inputs(*, model: Any, train_rows: Any, validation_rows: Any, validation_groups: Any, measure: str, mode: str,
                  selection: str, utility_budget: float, max_fraction: float, append_tokens: int,
                  train_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    from fairprompt.models.text import FrozenTextClassifier

    if not isinstance(model, FrozenTextClassifier):
        raise FairpromptError(f"fairij needs a FrozenTextClassifier but got {type(model).__name__}; "
                              "load the model with FrozenTextClassifier.load")
    if model.task_prompt == "none" or not model.task_parameters():
        raise FairpromptError("fairij repairs a task prompt and head, but this classifier has none (task_prompt: none); "
                              "train a task prompt for it first")
    if model.num_labels != 2:
        raise FairpromptError(f"fairij needs a two-class task but the model has {model.num_labels} labels; "
                              "map the labels to 0/1 (1 = favourable)")
    if measure not in MEASURES:
        raise FairpromptError(f"unknown fairness measure {measure!r} for fairij; use one of {', '.join(MEASURES)}")
    if mode not in MODES:
        raise FairpromptError(f"unknown fairij mode {mode!r}; use 'append' or 'ij'")
    if selection not in SELECTIONS:
        raise FairpromptError(f"unknown fairij selection {selection!r}; use 'actual' or 'predicted'")
    if len(train_rows) == 0:
        raise FairpromptError("the training split is empty; fairij scores training rows, so give it the rows the prompt was trained on")
    if len(validation_rows) == 0:
        raise FairpromptError("the validation split is empty; fairij selects on a validation split with group labels, so give it one")
    groups = np.asarray(validation_groups, dtype=object).reshape(-1)
    if groups.shape[0] != len(validation_rows):
        raise FairpromptError(f"validation_groups has {groups.shape[0]} labels for {len(validation_rows)} validation rows; "
                              "pass one group label per validation row")
    import pandas as pd

    present = pd.Series(groups).dropna().unique()
    if len(present) < 2:
        raise FairpromptError(f"the validation split has a single group ({[str(g) for g in present]}); "
                              "fairij needs validation rows from at least two groups")
    if not (isinstance(utility_budget, int | float) and math.isfinite(utility_budget) and utility_budget >= 0):
        raise FairpromptError(f"fairij utility_budget must be a finite number >= 0 but is {utility_budget!r}; "
                              "set it to the largest validation-loss increase you accept, e.g. 0.01")
    if not (isinstance(max_fraction, int | float) and 0 < max_fraction <= 1):
        raise FairpromptError(f"fairij max_fraction must lie in (0, 1] but is {max_fraction!r}; e.g. 0.1 for at most 10% of "
                              "the training rows")
    if isinstance(append_tokens, bool) or not isinstance(append_tokens, int) or append_tokens < 1:
        raise FairpromptError(f"fairij append_tokens must be an integer >= 1 but is {append_tokens!r}; e.g. 4")
    ids = np.arange(len(train_rows)) if train_ids is None else np.asarray(train_ids).reshape(-1)
    if ids.shape[0] != len(train_rows):
        raise FairpromptError(f"train_ids has {ids.shape[0]} ids for {len(train_rows)} training rows; "
                              "pass one id per training row")
    return groups, ids


def _check_scores(scores: Any, *, model: FrozenTextClassifier, n: int, measure: str, l2: float, damping: float) -> None:
    """Reused scores must come from this model's parameters, these rows' count and the same settings."""
    if not isinstance(scores, InfluenceScores):
        raise FairpromptError(f"fairij scores must be the InfluenceScores of an earlier run, not {type(scores).__name__}")
    if scores.n != n:
        raise FairpromptError(f"the reused scores cover {scores.n} training rows but {n} were given; "
                              "score again (pass scores=None)")
    theta = torch.cat([p.detach().to("cpu", torch.float64).reshape(-1) for p in model.task_parameters()])
    if theta.shape != scores._train.theta.shape or not torch.equal(theta, scores._train.theta):
        raise FairpromptError("the reused scores were made at other task-prompt and head parameters than this model's; "
                              "score again (pass scores=None)")
    if (scores.measure, scores.l2, scores.damping_requested) != (measure, l2, damping):
        raise FairpromptError(f"the reused scores were made for measure {scores.measure!r}, l2 {scores.l2:g}, damping "
                              f"{scores.damping_requested:g}, not {measure!r}, {l2:g}, {damping:g}; score again (pass scores=None)")


# ---------------------------------------------------------------------------------------------------- fairij
def fairij(
    *,
    model: FrozenTextClassifier,
    train_rows: TextRows,
    validation_rows: TextRows,
    validation_groups: Any,
    measure: Measure = "demographic_parity",
    mode: Mode = "append",
    utility_budget: float = 0.01,
    max_fraction: float = 0.1,
    graded: bool = False,
    damping: float = 1e-3,
    solver: Solver = "auto",
    l2: float = 0.0,
    temperature: float | None = None,
    selection: Selection = "actual",
    append_tokens: int = 4,
    append_init: Literal["random", "vocab"] = "random",
    append_training: TrainConfig = DEFAULT_APPEND_TRAINING,
    train_ids: Any = None,
    seed: int = 0,
    batch_size: int = 32,
    output_dir: str | Path | None = None,
    verify_epochs: int | None = None,
    verify_training: TrainConfig | None = None,
    keep_scores: bool = False,
    scores: InfluenceScores | None = None,
    progress: Progress | None = None,
) -> FairIJResult:
    """Score the training rows, choose what to down-weight on the validation split, and repair through prompts.

    See the module docstring for the rules.  ``model`` is never changed; the result carries a new model
    (``repaired_model``) on the same frozen backbone.  ``damping`` is the absolute diagonal added to the
    Gauss-Newton matrix, ``solver`` its solve (``"auto"``: Cholesky up to
    :data:`~fairprompt.mitigation.influence.DENSE_MAX_PARAMETERS` parameters, matrix-free conjugate gradients
    above; the one that ran is ``result.influence["curvature"]``), ``l2`` the L2 strength of the trained
    objective (0 for the default prompt tuning).
    ``train_ids`` names the training rows in the output (default 0..n-1).  ``output_dir``, when given,
    receives the repaired artifact (:meth:`FairIJResult.save`).  ``verify_epochs`` runs :func:`verify` with
    ``verify_training``.  ``keep_scores`` keeps the :class:`InfluenceScores` (with the training Jacobian, n x p
    floats) on the result, for further :func:`~fairprompt.mitigation.influence.ij_update` calls.  ``scores``
    (from an earlier ``keep_scores=True`` result for the same model, rows, measure, l2 and damping) skips the
    scoring step; its recorded scoring timings are then those of the earlier run.
    """
    groups, ids = _check_inputs(model=model, train_rows=train_rows, validation_rows=validation_rows,
                                validation_groups=validation_groups, measure=measure, mode=mode, selection=selection,
                                utility_budget=utility_budget, max_fraction=max_fraction, append_tokens=append_tokens,
                                train_ids=train_ids)
    if append_init not in ("random", "vocab"):
        raise FairpromptError(f"fairij append_init is {append_init!r}; use 'random' (near-zero) or 'vocab'")
    start = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. scoring
    if progress:
        progress("fairij: scoring training rows", 0, 1)
    if scores is None:
        scores = score_prompt(model=model, train_rows=train_rows, validation_rows=validation_rows, groups=groups,
                              measure=measure, l2=l2, damping=damping, temperature=temperature, batch_size=batch_size,
                              solver=solver)
        timings["scoring_seconds"] = time.perf_counter() - start
    else:
        _check_scores(scores, model=model, n=len(train_rows), measure=measure, l2=l2, damping=damping)
        timings["scoring_seconds"] = scores.seconds + scores.jacobian_seconds
        timings["scores_reused"] = 1.0
    timings["jacobian_seconds"] = scores.jacobian_seconds
    if progress:
        progress("fairij: scoring training rows", 1, 1)

    # 2.-5. candidates, grid, curves, choice (validation split only)
    tick = time.perf_counter()
    n = len(train_rows)
    I_F, I_U = scores.influence_fairness, scores.influence_utility
    order = np.argsort(I_F, kind="stable")
    candidates = int((I_F < 0).sum())
    order = order[:candidates]
    sizes = _grid(n, candidates, max_fraction)
    scratch = model.adapter_copy()
    theta_hat = [p.detach().clone() for p in scratch.task_parameters()]
    curve: list[dict[str, Any]] = []
    alphas_by_k: dict[int, np.ndarray] = {}
    base = _evaluate(scratch, validation_rows, groups, measure, temperature, batch_size)
    for step, k in enumerate(sizes):
        alphas = _alphas_for(k, order, I_F, I_U, n=n, graded=graded, budget=utility_budget)
        alphas_by_k[k] = alphas
        point: dict[str, Any] = {"k": k, "fraction": k / n, "weight_removed": float(alphas.sum()),
                                 "predicted_dF": float(alphas @ I_F), "predicted_dU": float(alphas @ I_U)}
        if k == 0:
            actual = dict(base)
        else:
            try:
                _set_task_parameters(scratch, ij_update(scores=scores, alphas=alphas))
                actual = _evaluate(scratch, validation_rows, groups, measure, temperature, batch_size)
            except FairpromptError:  # the step diverged (non-finite margins): record it, never choose it
                actual = {"fairness": math.nan, "utility": math.nan}
        point.update({"actual_F": actual["fairness"], "actual_U": actual["utility"],
                      "actual_dF": actual["fairness"] - base["fairness"], "actual_dU": actual["utility"] - base["utility"]})
        point["feasible_predicted"] = bool(point["predicted_dU"] <= utility_budget)
        point["feasible_actual"] = bool(math.isfinite(point["actual_dU"]) and point["actual_dU"] <= utility_budget)
        curve.append(point)
        if progress:
            progress("fairij: one-step updates on the validation split", step + 1, len(sizes))
    _set_task_parameters(scratch, theta_hat)
    if selection == "actual":
        feasible = [p for p in curve if (p["k"] == 0 or p["feasible_actual"]) and math.isfinite(p["actual_F"])]
        best = min(feasible, key=lambda p: (p["actual_F"], p["k"]))
    else:
        feasible = [p for p in curve if p["k"] == 0 or p["feasible_predicted"]]
        best = min(feasible, key=lambda p: (p["predicted_dF"], p["k"]))
    for point in curve:
        point["chosen"] = point is best
    chosen_k = int(best["k"])
    alphas = alphas_by_k[chosen_k]
    timings["selection_seconds"] = time.perf_counter() - tick

    # 6. repair
    tick = time.perf_counter()
    append_info: dict[str, Any] | None = None
    prompt = None
    if mode == "ij":
        repaired = scratch
        if chosen_k:
            _set_task_parameters(repaired, ij_update(scores=scores, alphas=alphas))
        after = {"fairness": best["actual_F"], "utility": best["actual_U"]}
    else:
        repaired, prompt, history = _append_repair(
            model=scratch, train_rows=train_rows, validation_rows=validation_rows, alphas=alphas, tokens=append_tokens,
            init=append_init, config=append_training, seed=seed, progress=progress)
        after = _evaluate(repaired, validation_rows, groups, measure, temperature, batch_size)
        append_info = {"tokens": append_tokens, "init": append_init, "seed": seed, "position": "append",
                       "trained": "the appended tokens only (task prompt, head and backbone frozen)",
                       "weights": "w_i (1 - alpha_i); removed rows weigh 0",
                       "training": asdict(replace(append_training, seed=seed)), "history": history.to_dict()}
    timings["repair_seconds"] = time.perf_counter() - tick
    timings["total_seconds"] = time.perf_counter() - start

    result = FairIJResult(
        mode=mode, measure=measure, selection=selection, rule=RULES[selection],
        weighting=GRADED_RULE if graded else BINARY_RULE, graded=graded, utility_budget=float(utility_budget),
        max_fraction=float(max_fraction), seed=seed, row_ids=ids, influence_fairness=I_F.copy(),
        influence_utility=I_U.copy(), alphas=alphas, chosen_k=chosen_k, curve=curve, before=base, after=after,
        influence=scores.summary(), timings=timings, repaired_model=repaired, prompt=prompt, append=append_info,
        scores=scores if keep_scores else None,
    )
    if verify_epochs is not None:
        result.verification = verify(model=model, train_rows=train_rows, validation_rows=validation_rows,
                                     validation_groups=groups, result=result, epochs=verify_epochs,
                                     config=verify_training, progress=progress)
        result.timings["verify_seconds"] = result.verification.seconds
    if output_dir is not None:
        result.save(output_dir)
    return result


def _append_repair(*, model: FrozenTextClassifier, train_rows: TextRows, validation_rows: TextRows, alphas: np.ndarray,
                   tokens: int, init: str, config: TrainConfig, seed: int,
                   progress: Progress | None) -> tuple[FrozenTextClassifier, SoftPrompt, TrainHistory]:
    """Append ``tokens`` soft tokens to ``model`` (an adapter copy) and train only them on the re-weighted rows."""
    multipliers = 1.0 - np.asarray(alphas, dtype=np.float64)
    return _train_appended(model=model, train_rows=train_rows, validation_rows=validation_rows, multipliers=multipliers,
                           tokens=tokens, init=init, config=config, seed=seed, progress=progress)


def train_appended_prompt(*, model: FrozenTextClassifier, train_rows: TextRows, validation_rows: TextRows,
                          weights: Any = None, tokens: int = 4, init: Literal["random", "vocab"] = "random",
                          config: TrainConfig = DEFAULT_APPEND_TRAINING, seed: int = 0,
                          progress: Progress | None = None) -> tuple[FrozenTextClassifier, SoftPrompt, TrainHistory]:
    """The ``append`` repair with any row weights: an adapter copy of ``model`` with ``tokens`` appended soft
    tokens trained alone (task prompt, head and backbone frozen) on the training rows weighted
    ``w_i * weights_i`` (default: all 1, the control that adds capacity but re-weights nothing).

    FairIJ's ``append`` mode is this with ``weights = 1 - alpha``; benchmarks use it for the no-removal control
    and for other weightings (AIF360 ``Reweighing``).  ``model`` is not changed."""
    multipliers = np.ones(len(train_rows)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if multipliers.shape[0] != len(train_rows) or not np.all(np.isfinite(multipliers)) or (multipliers < 0).any():
        raise FairpromptError(f"train_appended_prompt needs one finite weight >= 0 per training row ({len(train_rows)}), "
                              f"got {multipliers.shape[0]}")
    return _train_appended(model=model.adapter_copy(), train_rows=train_rows, validation_rows=validation_rows,
                           multipliers=multipliers, tokens=tokens, init=init, config=config, seed=seed, progress=progress)


def _train_appended(*, model: FrozenTextClassifier, train_rows: TextRows, validation_rows: TextRows,
                    multipliers: np.ndarray, tokens: int, init: str, config: TrainConfig, seed: int,
                    progress: Progress | None) -> tuple[FrozenTextClassifier, SoftPrompt, TrainHistory]:
    from fairprompt.prompts import SoftPrompt, SoftPromptConfig

    for parameter in [*model.task_parameters(), *model.prompts.parameters()]:
        parameter.requires_grad_(False)
    embeddings = model.base.get_input_embeddings()
    prompt = SoftPrompt.initialise(
        SoftPromptConfig(n_tokens=tokens, dim=int(embeddings.weight.shape[1]), position="append", init=init, seed=seed),
        embeddings=embeddings)
    prompt = prompt.to(device=embeddings.weight.device)
    model.prompts.append(prompt)
    weighted = train_rows.with_weights(np.asarray(train_rows.weights, dtype=np.float64) * multipliers)
    history = train(model=model, forward=_forward, param_groups=[{"params": [prompt.weight], "lr": config.lr}],
                    train_data=weighted, validation_data=validation_rows, config=replace(config, seed=seed),
                    progress=progress, description="fairij: training the appended prompt")
    prompt.weight.requires_grad_(False)
    return model, prompt, history


# ---------------------------------------------------------------------------------------------------- verify
def _fine_tune(model: FrozenTextClassifier, rows: TextRows, weights: np.ndarray, *, epochs: int, config: TrainConfig,
               l2: float) -> int:
    """Fixed-length AdamW fine-tuning of the task prompt and head on ``mean(w CE) + (l2/2)|theta|^2`` (the scored
    objective; removal keeps the 1/n, as the IJ does); the batch order depends on the seed alone."""
    params = model.task_parameters()
    for parameter in params:
        parameter.requires_grad_(True)
    groups = [{"params": [params[0]], "lr": config.lr}, {"params": params[1:], "lr": config.head_lr or config.lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    lengths = rows.lengths()
    device = params[0].device
    w = torch.as_tensor(weights, dtype=torch.float64)
    steps = 0
    model.train()
    for _ in range(epochs):
        for batch_rows in shuffled_batches(len(rows), config.batch_size, generator=rng, lengths=lengths):
            batch = rows.collate(batch_rows)
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            per_row = torch.nn.functional.cross_entropy(logits.float(), batch["labels"].to(device), reduction="none")
            loss = (per_row * w[batch["index"]].to(device, per_row.dtype)).mean()
            if l2:
                loss = loss + 0.5 * l2 * sum((p.float() ** 2).sum() for p in params)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            steps += 1
    model.eval()
    for parameter in params:
        parameter.requires_grad_(False)
    return steps


def verify(
    *,
    model: FrozenTextClassifier,
    train_rows: TextRows,
    validation_rows: TextRows,
    validation_groups: Any,
    result: FairIJResult,
    epochs: int = 3,
    config: TrainConfig | None = None,
    alphas: Sequence[np.ndarray] | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> FairIJVerification:
    """Fine-tune the task prompt and head from theta_hat for ``epochs`` epochs with rows removed, beside a control.

    Each set in ``alphas`` (default: the chosen one, ``result.alphas``) down-weights rows ``w_i -> w_i (1 - alpha_i)``;
    the control run removes nothing and uses the same seed and batch order, so the actual change is
    (removal run) - (control run) and the optimizer's own drift from theta_hat cancels.  Works on adapter copies;
    ``model`` is not changed.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise FairpromptError(f"fairij verify epochs must be an integer >= 1 but is {epochs!r}; e.g. 3")
    groups = np.asarray(validation_groups, dtype=object).reshape(-1)
    config = config or DEFAULT_VERIFY_TRAINING
    config = replace(config, seed=result.seed)
    sets = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (alphas if alphas is not None else [result.alphas])]
    for a in sets:
        if a.shape[0] != len(train_rows):
            raise FairpromptError(f"a verify set has {a.shape[0]} weights for {len(train_rows)} training rows; pass one per row")
    l2 = float(result.influence.get("l2", 0.0))
    start = time.perf_counter()
    base_weights = np.asarray(train_rows.weights, dtype=np.float64)

    def run(weights: np.ndarray) -> tuple[dict[str, float], int]:
        copy = model.adapter_copy()
        steps = _fine_tune(copy, train_rows, weights, epochs=epochs, config=config, l2=l2)
        return _evaluate(copy, validation_rows, groups, result.measure, None, batch_size), steps

    baseline = _evaluate(model, validation_rows, groups, result.measure, None, batch_size)
    control, steps = run(base_weights)
    checks = []
    for index, a in enumerate(sets):
        after, _ = run(base_weights * (1.0 - a))
        predicted = {"fairness": float(a @ result.influence_fairness), "utility": float(a @ result.influence_utility)}
        checks.append({"rows": int((a > 0).sum()), "weight_removed": float(a.sum()),
                       "predicted_dF": predicted["fairness"], "actual_dF": after["fairness"] - control["fairness"],
                       "predicted_dU": predicted["utility"], "actual_dU": after["utility"] - control["utility"]})
        checks[-1]["ratio_dF"] = (checks[-1]["actual_dF"] / predicted["fairness"]) if predicted["fairness"] else math.nan
        if progress:
            progress("fairij: verifying by paired fine-tuning", index + 1, len(sets))
    pearson = None
    if len(checks) >= 3:
        p = np.array([c["predicted_dF"] for c in checks])
        q = np.array([c["actual_dF"] for c in checks])
        if p.std() > 0 and q.std() > 0:
            pearson = float(np.corrcoef(p, q)[0, 1])
    return FairIJVerification(
        epochs=epochs, steps=steps, config=asdict(config), baseline=baseline, control=control,
        control_drift={k: control[k] - baseline[k] for k in baseline}, checks=checks, pearson_fairness=pearson,
        method=(f"warm-started AdamW fine-tuning of the task prompt and head from theta_hat for {epochs} epochs "
                f"({steps} steps, batch {config.batch_size}, lr {config.lr:g}/{config.head_lr or config.lr:g}, "
                f"l2 {l2:g}), removal = weight 0 with the 1/n kept; actual change = removal run minus a paired "
                "control run (same seed and batch order, nothing removed)"),
        seconds=time.perf_counter() - start,
    )


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`fairij`: the submodule and the function share the name
    ``fairprompt.mitigation.fairij``, and whichever of them that name is bound to, calling it runs FairIJ."""

    def __call__(self, **kwargs: Any) -> FairIJResult:
        return fairij(**kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["FairIJResult", "FairIJVerification", "GRID_FRACTIONS", "fairij", "train_appended_prompt", "verify"]
