r"""FairIJ selection and repair: which training rows to down-weight, and a new prompt that acts on it.

The influence math lives in :mod:`~fairprompt.mitigation.fairij_method.influence` and the choice of rows in
:mod:`~fairprompt.mitigation.fairij_method.selection`; this module runs them and builds the repaired model.
The input model is never changed: every repair works on
:meth:`~fairprompt.models.text.FrozenTextClassifier.adapter_copy`, which shares the frozen backbone (the
same module, never written) and copies only the task prompt, the head and the extra prompts.

Steps of :func:`fairij`
-----------------------
1. **Scoring.**  :func:`~fairprompt.mitigation.fairij_method.influence.score_prompt` at the trained task prompt and
   head theta_hat: ``I_F(i)`` and ``I_U(i)``, the first-order change of the validation fairness surrogate F
   and of the validation cross-entropy U when training row i is removed (negative ``I_F``: removing the row
   makes the model fairer).
2. **Candidates.**  Rows with ``I_F < 0``, most negative first.  The grid of set sizes is
   ``k = 0`` plus ``round(f n)`` for f in ``fractions`` (default: :data:`GRID_FRACTIONS` up to ``max_fraction``,
   and ``max_fraction`` itself), each at least 1 and at most the number of candidates.
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
   The one-class guard (:mod:`fairprompt.mitigation.guard`): a point k > 0 whose one-step validation decisions
   (P(favourable) at least ``threshold``) predict one class (every row the same decision, or one group of
   ``group_column`` with both labels present getting one decision for at least 99% of its rows) is marked
   (``one_class``, the reason in words) and never chosen; if every point k > 0 is, k = 0 (the input model) is
   kept.  :attr:`FairIJResult.warnings` says when the guard changed the choice.
6. **Repair.**  ``mode="ij"``: the one-step update written into the task prompt and head of an adapter
   copy (no refit, the FairIJ way).  ``mode="append"`` (default, the design's "down-weighting through
   appended soft prompts"): the task prompt and head stay frozen; ``append_tokens`` new
   :class:`~fairprompt.prompts.SoftPrompt` tokens (``position="append"``, seeded ``init``) are added to an
   adapter copy and trained alone with :func:`fairprompt.models.training.train` on the training rows
   re-weighted ``w_i (1 - alpha_i)`` (0 for removed rows), early-stopped on the validation rows.

Every setting lives in :class:`~fairprompt.mitigation.fairij_method.config.FairIJConfig`.  ``damping`` is
the absolute diagonal added to the Gauss-Newton matrix before the Cholesky solve (see the influence module).
The default here, 1e-3, is ten times the influence core's: a conservative, untuned choice, because the
one-step update moves farthest along the weakest curvature directions and the prompt's Gauss-Newton matrix
is strongly rank-deficient; the actual-value rule then checks the step it damps.  The damping requested and
the damping used (raised automatically when the matrix is numerically singular, never an error) are reported
in ``FairIJResult.influence`` with the curvature name and eigenvalue summary.

Artifacts: ``append`` -> ``fairij_prompt.safetensors`` + ``fairij_prompt.json`` (:func:`fairprompt.prompts.save_prompt`;
attach with ``model.adapter_copy().prompts.append(load_prompt(path))``); ``ij`` -> ``fairij_adapter/`` (the
repaired task adapter, :meth:`FrozenTextClassifier.save`), written by :meth:`FairIJResult.save`
(:mod:`~fairprompt.mitigation.fairij_method.artifact`).

:func:`~fairprompt.mitigation.fairij_method.verify.verify` (``verify: true``) fine-tunes the task prompt and
head from theta_hat for a fixed, stated number of epochs with the chosen rows removed, beside a paired
control run (same seed, same batch order, nothing removed), and reports predicted against actual changes
(removal run minus control run).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.fairij_method.config import FairIJConfig
from fairprompt.mitigation.fairij_method.influence import InfluenceScores, ij_update, score_prompt
from fairprompt.mitigation.fairij_method.result import FairIJResult
from fairprompt.mitigation.fairij_method.selection import (
    BINARY_RULE,
    GRADED_RULE,
    RULES,
    evaluate,
    select,
    set_task_parameters,
)
from fairprompt.models.text import text_forward
from fairprompt.models.training import Progress, TrainConfig, TrainHistory, train

if TYPE_CHECKING:
    from fairprompt.models.text import FrozenTextClassifier, TextRows
    from fairprompt.prompts import SoftPrompt

DEFAULT_APPEND_TRAINING: TrainConfig = TrainConfig(max_epochs=10, patience=3, lr=3e-2, head_lr=None)
"""How :func:`train_appended_prompt` trains by default (FairIJ's own default, ``AppendTraining()``, is the same)."""

DEFAULT_CONFIG = FairIJConfig()
"""The settings :func:`fairij` uses when given none."""


def check_inputs(*, model: Any, train_rows: Any, validation_rows: Any, validation_groups: Any,
                 train_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Refuse a model or rows FairIJ cannot work with (one sentence each); returns the validation groups and the
    training-row ids."""
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
    if len(train_rows) == 0:
        raise FairpromptError("the training split is empty; fairij scores training rows, "
                              "so give it the rows the prompt was trained on")
    if len(validation_rows) == 0:
        raise FairpromptError("the validation split is empty; fairij selects on a validation split with group labels, "
                              "so give it one")
    groups = np.asarray(validation_groups, dtype=object).reshape(-1)
    if groups.shape[0] != len(validation_rows):
        raise FairpromptError(f"validation_groups has {groups.shape[0]} labels for {len(validation_rows)} validation rows; "
                              "pass one group label per validation row")
    import pandas as pd

    present = pd.Series(groups).dropna().unique()
    if len(present) < 2:
        raise FairpromptError(f"the validation split has a single group ({[str(g) for g in present]}); "
                              "fairij needs validation rows from at least two groups")
    ids = np.arange(len(train_rows)) if train_ids is None else np.asarray(train_ids).reshape(-1)
    if ids.shape[0] != len(train_rows):
        raise FairpromptError(f"train_ids has {ids.shape[0]} ids for {len(train_rows)} training rows; "
                              "pass one id per training row")
    return groups, ids


def check_scores(scores: Any, *, model: FrozenTextClassifier, n: int, measure: str, l2: float, damping: float) -> None:
    """Reused scores must come from this model's parameters, these rows' count and the same settings."""
    if not isinstance(scores, InfluenceScores):
        raise FairpromptError(f"fairij scores must be the InfluenceScores of an earlier run, not {type(scores).__name__}")
    if scores.n != n:
        raise FairpromptError(f"the reused scores cover {scores.n} training rows but {n} were given; "
                              "score again (pass scores=None)")
    theta = torch.cat([p.detach().to("cpu", torch.float64).reshape(-1) for p in model.task_parameters()])
    if theta.shape != scores.theta.shape or not torch.equal(theta, scores.theta):
        raise FairpromptError("the reused scores were made at other task-prompt and head parameters than this model's; "
                              "score again (pass scores=None)")
    if (scores.measure, scores.l2, scores.damping_requested) != (measure, l2, damping):
        raise FairpromptError(f"the reused scores were made for measure {scores.measure!r}, l2 {scores.l2:g}, damping "
                              f"{scores.damping_requested:g}, not {measure!r}, {l2:g}, {damping:g}; "
                              "score again (pass scores=None)")


def fairij(
    *,
    model: FrozenTextClassifier,
    train_rows: TextRows,
    validation_rows: TextRows,
    validation_groups: Any,
    config: FairIJConfig = DEFAULT_CONFIG,
    train_ids: Any = None,
    scores: InfluenceScores | None = None,
    keep_scores: bool = False,
    output_dir: str | Path | None = None,
    threshold: float = 0.5,
    group_column: str = "group",
    progress: Progress | None = None,
) -> FairIJResult:
    """Score the training rows, choose what to down-weight on the validation split, and repair through prompts.

    See the module docstring for the rules and :class:`FairIJConfig` for every setting.  ``model`` is never
    changed; the result carries a new model (``repaired_model``) on the same frozen backbone.  ``train_ids``
    names the training rows in the output (default 0..n-1).  ``scores`` (from an earlier ``keep_scores=True``
    result for the same model, rows, measure, l2 and damping) skips the scoring step; its recorded scoring
    timings are then those of the earlier run.  ``keep_scores`` keeps the :class:`InfluenceScores` (with the
    training Jacobian, n x p floats) on the result, for further
    :func:`~fairprompt.mitigation.fairij_method.influence.ij_update` calls.  ``output_dir``, when given,
    receives the repaired artifact (:meth:`FairIJResult.save`).  ``threshold`` is the model's decision threshold on
    P(favourable) and ``group_column`` names the validation groups' sensitive column: a grid point whose validation
    decisions predict one class is marked and never chosen (k = 0 aside; see the module docstring).
    """
    if not isinstance(config, FairIJConfig):
        raise FairpromptError(f"fairij config must be a FairIJConfig, not {type(config).__name__}")
    groups, ids = check_inputs(model=model, train_rows=train_rows, validation_rows=validation_rows,
                               validation_groups=validation_groups, train_ids=train_ids)
    c = config
    start = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. scoring
    if progress:
        progress("fairij: scoring training rows", 0, 1)
    if scores is None:
        scores = score_prompt(model=model, train_rows=train_rows, validation_rows=validation_rows, groups=groups,
                              measure=c.measure, l2=c.l2, damping=c.damping, temperature=c.temperature,
                              batch_size=c.batch_size, solver=c.solver)
        timings["scoring_seconds"] = time.perf_counter() - start
    else:
        check_scores(scores, model=model, n=len(train_rows), measure=c.measure, l2=c.l2, damping=c.damping)
        timings["scoring_seconds"] = scores.seconds + scores.jacobian_seconds
        timings["scores_reused"] = 1.0
    timings["jacobian_seconds"] = scores.jacobian_seconds
    if progress:
        progress("fairij: scoring training rows", 1, 1)

    # 2.-5. candidates, grid, curves, choice (validation split only)
    tick = time.perf_counter()
    chosen = select(model=model, scores=scores, validation_rows=validation_rows, groups=groups, config=c,
                    threshold=threshold, column=group_column, progress=progress)
    alphas, chosen_k, best, base = chosen.alphas, chosen.chosen_k, chosen.best, chosen.base
    timings["selection_seconds"] = time.perf_counter() - tick

    # 6. repair
    tick = time.perf_counter()
    append_info: dict[str, Any] | None = None
    prompt = None
    if c.mode == "ij":
        repaired = chosen.scratch
        if chosen_k:
            set_task_parameters(repaired, ij_update(scores=scores, alphas=alphas))
        after = {"fairness": best["actual_F"], "utility": best["actual_U"]}
    else:
        training = c.append_training.train_config()
        repaired, prompt, history = _train_appended(
            model=chosen.scratch, train_rows=train_rows, validation_rows=validation_rows,
            multipliers=1.0 - np.asarray(alphas, dtype=np.float64), tokens=c.append_tokens, init=c.append_init,
            config=training, seed=c.seed, progress=progress)
        after = evaluate(repaired, validation_rows, groups, c.measure, c.temperature, c.batch_size)
        append_info = {"tokens": c.append_tokens, "init": c.append_init, "seed": c.seed, "position": "append",
                       "trained": "the appended tokens only (task prompt, head and backbone frozen)",
                       "weights": "w_i (1 - alpha_i); removed rows weigh 0",
                       "training": asdict(replace(training, seed=c.seed)), "history": history.to_dict()}
    timings["repair_seconds"] = time.perf_counter() - tick
    timings["total_seconds"] = time.perf_counter() - start

    result = FairIJResult(
        mode=c.mode, measure=c.measure, selection=c.selection, rule=RULES[c.selection],
        weighting=GRADED_RULE if c.graded else BINARY_RULE, graded=c.graded, utility_budget=float(c.utility_budget),
        max_fraction=float(c.max_fraction), seed=c.seed, row_ids=ids, influence_fairness=scores.influence_fairness.copy(),
        influence_utility=scores.influence_utility.copy(), alphas=alphas, chosen_k=chosen_k, curve=chosen.curve,
        before=base, after=after, influence=scores.summary(), timings=timings, repaired_model=repaired, prompt=prompt,
        append=append_info, scores=scores if keep_scores else None, warnings=list(chosen.warnings),
        grid_parameters=chosen.parameters if c.mode == "ij" else {},
        max_accuracy_drop=float(c.max_accuracy_drop) if c.selection == "accuracy" else None,
    )
    if c.verify:
        from fairprompt.mitigation.fairij_method.verify import verify

        result.verification = verify(model=model, train_rows=train_rows, validation_rows=validation_rows,
                                     validation_groups=groups, result=result, epochs=c.verify_epochs,
                                     config=c.verify_training, progress=progress)
        result.timings["verify_seconds"] = result.verification.seconds
    if output_dir is not None:
        result.save(output_dir)
    return result


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
    """Append ``tokens`` soft tokens to ``model`` (an adapter copy) and train only them on the re-weighted rows."""
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
    history = train(model=model, forward=text_forward, param_groups=[{"params": [prompt.weight], "lr": config.lr}],
                    train_data=weighted, validation_data=validation_rows, config=replace(config, seed=seed),
                    progress=progress, description="fairij: training the appended prompt")
    prompt.weight.requires_grad_(False)
    return model, prompt, history


__all__ = ["DEFAULT_APPEND_TRAINING", "check_inputs", "check_scores", "fairij", "train_appended_prompt"]
