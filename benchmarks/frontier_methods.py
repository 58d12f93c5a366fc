"""bench_frontier's methods: each one's grid (frozen here, before any test number was seen), how one grid point is
fitted on the training rows, how its score and decision are read, and the rule that picks its operating point.

Grids are module-level constants; ``--quick`` uses the ``QUICK_*`` ones (tiny, to check the code paths).
A fitted point is a :data:`Predictor`: split name -> :class:`~frontier_setup.Scores`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from common import log
from frontier_setup import FrontierSetup, Scores

Predictor = Callable[[str], Scores]

# ---------------------------------------------------------------------------------------------- the grids
FAIRIJ_FRACTIONS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
"""FairIJ ``ij``: k = round(f n) rows removed, capped at the rows with negative influence (FairIJ's own grid
fractions, extended past the spec's max_fraction 0.1 to 0.3 to show more of the frontier; the rule still chooses
among k <= 10% of the rows, as the spec says)."""
APPEND_FRACTIONS = (0.0, 0.01, 0.03, 0.1)
"""FairIJ ``append``: a few k (k = 0 is the no-removal control); the rule's k is added when it is not among them."""
REPROGRAM_SOFT_LAMBDAS = (0.0, 1.0, 3.0, 10.0, 30.0)
REPROGRAM_HARD_LAMBDAS = (0.0, 1.0, 3.0, 10.0)
REPROGRAM_CONDITIONAL_LAMBDAS = (0.0, 3.0, 10.0, 30.0)
REPROGRAM_EPOCHS, REPROGRAM_ROWS = 3, 1000   # bench_reprogram's Adult settings (the spec trains 2 epochs on 600 rows)
REWEIGHING_EXPONENTS = (0.0, 0.5, 1.0, 2.0, 3.0)
"""Reweighing: row weights w**t of AIF360's w (t = 1 is AIF360's Reweighing, t = 0 the control: all weights 1)."""
EG_BOUNDS: tuple[float | None, ...] = (None, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002)
"""ExponentiatedGradient: the constraint's difference_bound (10 levels); None is the unconstrained logistic
regression, the control."""
ADVERSARY_ALPHAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
"""AdversarialFairnessClassifier: the adversary's weight alpha.  alpha = 0 is the method's control, but not the
predictor alone: fairlearn's update (Zhang et al.) always removes the projection of the predictor's gradient on the
adversary's, and only the extra ``- alpha * grad`` term scales with alpha."""
ADVERSARY_EPOCHS, ADVERSARY_LR = 50, 1e-3
FINETUNE_LAMBDAS = (0.0, 3.0, 10.0)
TO_TOLERANCES = (0.15, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01)
"""ThresholdOptimizer's tolerances (added in [4/7] as a group-aware reference; the peers' grids are unchanged)."""
FINETUNE_EPOCHS, FINETUNE_ROWS, FINETUNE_LR, FINETUNE_BATCH = 2, 1000, 2e-5, 32
PEER_MAX_DROP = 0.01

QUICK_GRIDS: dict[str, tuple[Any, ...]] = {
    "fairij_ij": (0.0, 0.05, 0.1), "fairij_ij_accuracy": (0.0, 0.05, 0.1), "reprogram_conditional": (0.0, 10.0),
    "fairij_append": (0.0, 0.05), "reprogram_soft": (0.0, 10.0),
    "reprogram_hard": (0.0, 10.0), "reweighing": (0.0, 1.0), "eg_tabular": (None, 0.05, 0.01),
    "eg_embedding": (None, 0.05, 0.01), "adversarial": (0.0, 1.0), "finetune": (0.0, 10.0),
    "threshold_optimizer_tol": (0.1, 0.03),
}

PEER_RULE = (f"the smallest validation gap among the grid points that lose at most {PEER_MAX_DROP * 100:g} point of "
             "validation accuracy against the method's control (its unconstrained point) and do not predict one "
             "class; tie -> the more accurate")


@dataclass(frozen=True)
class Method:
    """One method's frontier: what it trains, its grid, its rule, and how a grid point is fitted."""

    name: str
    title: str
    role: str                  # reference, prompt, peer, group-aware
    grid: tuple[Any, ...]
    setting_name: str          # k, lambda, t, bound, alpha, constraint
    takes_measure: bool
    control: Any
    rule: str
    trains: str
    score: str
    fit: Callable[..., Predictor] = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    measures: tuple[str, ...] = ("demographic_parity", "equalized_odds")   # the measures it runs for

    def trained_for(self, value: Any, measure: str) -> str | None:
        """The measure this grid point was trained for; None where its training does not depend on one."""
        return measure if self.takes_measure and value != self.control else None


# ------------------------------------------------------------------------------------------------ fitting
def _fairij_config(setup: FrontierSetup, measure: str) -> Any:
    """FairIJ as [3/7] ran it (the spec's block then, pinned here): the validation-loss budget 0.01, k <= 10%."""
    from fairprompt.mitigation import FairIJConfig

    config = FairIJConfig(measure="demographic_parity", mode="ij", utility_budget=0.01, max_fraction=0.1)
    if setup.quick:
        config = replace(config, append_training=replace(config.append_training, max_epochs=1, patience=1))
    # FairIJ's default grid of shares for its own rule (the demo spec narrows `fractions` only to stay fast)
    return replace(config, measure=measure, seed=0, fractions=None)


def fairij_accuracy_config(setup: FrontierSetup, measure: str) -> Any:
    """FairIJ with the accuracy rule ([4/7]): the lowest validation gap within 1 point of validation accuracy,
    k <= 30% of the rows (the default grid of shares up to 0.3, the bench's grid)."""
    return replace(_fairij_config(setup, measure), selection="accuracy", max_accuracy_drop=PEER_MAX_DROP,
                   max_fraction=0.3)


def fairij_alphas(setup: FrontierSetup, measure: str, k: int) -> np.ndarray:
    """FairIJ's binary weights at k (the top-k rows by negative influence on the measure removed)."""
    from fairprompt.mitigation.fairij_method.selection import alphas_for

    config = _fairij_config(setup, measure)
    scores = setup.fairij(measure, config=config).scores
    I_F, I_U = scores.influence_fairness, scores.influence_utility
    order = np.argsort(I_F, kind="stable")[: int((I_F < 0).sum())]
    return alphas_for(k, order, I_F, I_U, n=scores.n, graded=False, budget=config.utility_budget)


def fairij_rule(setup: FrontierSetup, measure: str, *, accuracy: bool = False) -> dict[str, Any]:
    """FairIJ's own choice of k (as [3/7] ran it: lowest actual validation gap within the validation-loss budget,
    k <= 10% of the rows; ``accuracy``: the accuracy rule, k <= 30%), and the candidate count the grid is capped at.
    The influence scores are computed once per measure and shared by both rules."""
    result = setup.fairij(measure, config=_fairij_config(setup, measure))
    if accuracy:
        from fairprompt.mitigation import fairij

        result = fairij(model=setup.model, train_rows=setup.rows("train"), validation_rows=setup.rows("validation"),
                        validation_groups=setup.groups("validation"), config=fairij_accuracy_config(setup, measure),
                        scores=result.scores)
    return {"chosen_k": int(result.chosen_k), "candidates": int((result.influence_fairness < 0).sum()),
            "n": int(result.influence_fairness.size), "rule": result.rule, "utility_budget": result.utility_budget,
            "max_fraction": result.max_fraction, "max_accuracy_drop": result.max_accuracy_drop,
            "curve": [{k: v for k, v in p.items() if isinstance(v, int | float | bool)} for p in result.curve]}


def fit_unrepaired(setup: FrontierSetup, value: Any, measure: str) -> Predictor:
    return setup.base_scores


def fit_fairij_ij(setup: FrontierSetup, k: int, measure: str) -> Predictor:
    from fairprompt.mitigation import ij_update
    from fairprompt.mitigation.fairij_method.selection import set_task_parameters

    if k == 0:
        return fit_unrepaired(setup, None, measure)
    scratch = setup.model.adapter_copy()
    scores = setup.fairij(measure, config=_fairij_config(setup, measure)).scores
    set_task_parameters(scratch, ij_update(scores=scores, alphas=fairij_alphas(setup, measure, k)))
    return lambda split: setup.prompt_scores(scratch, split)


def _appended(setup: FrontierSetup, weights: np.ndarray | None, measure: str) -> Predictor:
    from fairprompt.mitigation import train_appended_prompt

    config = _fairij_config(setup, measure)
    model, _, _ = train_appended_prompt(model=setup.model, train_rows=setup.rows("train"),
                                        validation_rows=setup.rows("validation"), weights=weights,
                                        tokens=config.append_tokens, init=config.append_init,
                                        config=config.append_training.train_config(), seed=config.seed)
    return lambda split: setup.prompt_scores(model, split)


def fit_fairij_append(setup: FrontierSetup, k: int, measure: str) -> Predictor:
    return _appended(setup, None if k == 0 else 1.0 - fairij_alphas(setup, measure, k), measure)


def fit_reweighing(setup: FrontierSetup, t: float, measure: str) -> Predictor:
    from fairprompt.mitigation import reweighing_weights

    weights = reweighing_weights(groups=setup.groups("train"), labels=setup.y("train")) ** t
    return _appended(setup, None if t == 0 else weights, measure)


def reprogram_config(setup: FrontierSetup, *, kind: str, lam: float, measure: str) -> Any:
    """A trigger's settings: soft and hard as [3/7] ran them (the spec's block then, pinned here, on 1,000 rows for 3
    epochs); conditional ([4/7]): the spec's block (trigger, anchor, learning rate, epochs, rows) at this lambda."""
    from fairprompt.mitigation import ReprogramConfig

    if kind == "conditional":
        config = next(m for m in setup.spec.mitigations if m.name == "reprogram").config()
        config = replace(config, trigger=kind, measure=measure, lambdas=(float(lam),), seed=0)
        return replace(config, epochs=1, max_rows=None) if setup.quick else config
    config = ReprogramConfig(trigger=kind, tokens=5, objective="surrogate", max_accuracy_drop=0.01)
    epochs, rows = (1, None) if setup.quick else (REPROGRAM_EPOCHS, REPROGRAM_ROWS)
    return replace(config, measure=measure, lambdas=(float(lam),), epochs=epochs, max_rows=rows, seed=0)


def _fit_reprogram(kind: str) -> Callable[..., Predictor]:
    def fit(setup: FrontierSetup, lam: float, measure: str) -> Predictor:
        from fairprompt.mitigation import reprogram

        result = reprogram(model=setup.model, train_rows=setup.rows("train"), validation_rows=setup.rows("validation"),
                           train_groups=setup.groups("train"), validation_groups=setup.groups("validation"),
                           config=reprogram_config(setup, kind=kind, lam=lam, measure=measure),
                           threshold=setup.threshold, batch_size=setup.batch_size)
        model = result.triggered_model
        return lambda split: setup.prompt_scores(model, split)
    return fit


def _standardised(features: Callable[[str], np.ndarray]) -> Callable[[str], np.ndarray]:
    """Features standardised with the training rows' mean and spread (the embeddings; the design already is)."""
    train = features("train")
    mean, spread = train.mean(0), train.std(0) + 1e-8
    return lambda split: (features(split) - mean) / spread


def _fit_eg(which: str) -> Callable[..., Predictor]:
    def fit(setup: FrontierSetup, bound: float | None, measure: str) -> Predictor:
        from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
        from sklearn.linear_model import LogisticRegression

        x = setup.tabular if which == "tabular" else _standardised(setup.embeddings)
        y, g = setup.y("train"), setup.groups("train")
        if bound is None:
            plain = LogisticRegression(max_iter=2000).fit(x("train"), y)

            def read(split: str) -> Scores:
                score = plain.predict_proba(x(split))[:, 1]
                return Scores(score=score, decision=(score >= 0.5).astype(np.int64))
            return read
        moment = DemographicParity if measure == "demographic_parity" else EqualizedOdds
        reduction = ExponentiatedGradient(LogisticRegression(max_iter=2000), moment(difference_bound=bound))
        reduction.fit(x("train"), y, sensitive_features=g)

        def read_eg(split: str) -> Scores:
            features = x(split)
            # the randomized classifier's probability of the favourable decision (fairlearn's _pmf_predict), and
            # its decisions drawn with a fixed random_state (fairlearn's predict)
            return Scores(score=np.asarray(reduction._pmf_predict(features))[:, 1],
                          decision=np.asarray(reduction.predict(features, random_state=0), dtype=np.int64))
        return read_eg
    return fit


def fit_adversarial(setup: FrontierSetup, alpha: float, measure: str) -> Predictor:
    import torch
    from fairlearn.adversarial import AdversarialFairnessClassifier

    x = _standardised(setup.embeddings)
    torch.manual_seed(0)
    model = AdversarialFairnessClassifier(
        backend="torch", predictor_model=[], adversary_model=[3, "leaky_relu"], constraints=measure,
        learning_rate=ADVERSARY_LR, alpha=alpha, epochs=2 if setup.quick else ADVERSARY_EPOCHS, batch_size=32,
        shuffle=True, random_state=0)
    model.fit(x("train").astype(np.float32), setup.y("train"), sensitive_features=setup.groups("train"))

    def read(split: str) -> Scores:
        features = x(split).astype(np.float32)
        # the predictor's sigmoid output (fairlearn's _raw_predict) and its decision at 0.5 (predict)
        return Scores(score=np.asarray(model._raw_predict(features), dtype=np.float64).reshape(-1),
                      decision=np.asarray(model.predict(features), dtype=np.int64))
    return read


def fit_finetune(setup: FrontierSetup, lam: float, measure: str) -> Predictor:
    """Every MiniLM weight, the task prompt and the head trained (from the shipped task prompt's model, a deep
    copy) under cross-entropy + lam x the squared batch gap of FairReprogram's surrogate (same soft decision)."""
    import torch

    from fairprompt.mitigation.reprogram_method.objective import surrogate_gap
    from fairprompt.mitigation.reprogram_method.selection import subsample, take
    from fairprompt.models.text import text_forward
    from fairprompt.models.training import shuffled_batches

    g, y = setup.groups("train"), setup.y("train")
    positions = subsample(g.astype(str), y, 100 if setup.quick else FINETUNE_ROWS, 0)
    rows = take(setup.rows("train"), positions)
    names = sorted(set(g.tolist()))
    codes = torch.as_tensor(np.searchsorted(np.asarray(names), g[positions]))
    full = copy.deepcopy(setup.model)
    params = list(full.parameters())
    for p in params:
        p.requires_grad_(True)
    full.train()
    full.encoder.train()
    optimizer = torch.optim.AdamW(params, lr=FINETUNE_LR)
    threshold_logit = math.log(setup.threshold / (1 - setup.threshold))
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for epoch in range(1 if setup.quick else FINETUNE_EPOCHS):
        tick = time.perf_counter()
        for index in shuffled_batches(len(rows), FINETUNE_BATCH, generator=rng, lengths=rows.lengths()):
            batch = rows.collate(index)
            logits = text_forward(full, batch).float()
            loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
            soft = torch.sigmoid(logits[:, 1] - logits[:, 0] - threshold_logit)
            gap = surrogate_gap(soft, labels=batch["labels"], codes=codes[batch["index"]], n_groups=len(names),
                                measure=measure)
            objective = loss + lam * gap.pow(2)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        log(f"  fine-tuning lambda {lam:g} epoch {epoch + 1}: {time.perf_counter() - tick:.0f} s")
    full.eval()
    for p in params:
        p.requires_grad_(False)
    return lambda split: setup.prompt_scores(full, split)


def fit_threshold_optimizer(setup: FrontierSetup, constraint: str, measure: str, tol: float | None = None) -> Predictor:
    from fairprompt.mitigation import threshold_optimizer

    fit_scores = setup.base_scores("validation").score

    def read(split: str) -> Scores:
        scores = setup.base_scores(split).score
        decision = threshold_optimizer(fit_scores=fit_scores, fit_labels=setup.y("validation"),
                                       fit_groups=setup.groups("validation"), scores=scores, groups=setup.groups(split),
                                       constraints=constraint, seed=0, tol=tol)
        return Scores(score=None, decision=np.asarray(decision, dtype=np.int64))
    return read


def fit_threshold_optimizer_tol(setup: FrontierSetup, tol: float, measure: str) -> Predictor:
    return fit_threshold_optimizer(setup, measure, measure, tol=tol)


# --------------------------------------------------------------------------------------------- the methods
PROMPT_SCORE = "P(favourable) of the prompted model; decision: score >= the spec's threshold 0.5"
ORDER = ("unrepaired", "fairij_ij", "fairij_ij_accuracy", "reprogram_soft", "reprogram_conditional", "eg_tabular",
         "eg_embedding", "adversarial", "threshold_optimizer",
         "threshold_optimizer_tol", "reweighing", "fairij_append", "finetune", "reprogram_hard")
"""The order a run takes (the prompt repairs and the cheap peers first, the expensive trainings last)."""
_METHODS: dict[str, Method] = {m.name: m for m in (
    Method("unrepaired", "un-repaired prompt model", "reference", (None,), "-", False, None,
           "the reference point", "nothing (the shipped task prompt and head)", PROMPT_SCORE, fit_unrepaired),
    Method("fairij_ij", "FairIJ ij", "prompt", FAIRIJ_FRACTIONS, "k", True, 0,
           "FairIJ's own: the lowest actual validation gap among the one-step updates whose validation loss rose by at "
           "most the spec's utility_budget 0.01, k <= 10% of the rows (max_fraction)",
           "task prompt and head, one-step IJ update with the top-k rows by influence removed", PROMPT_SCORE,
           fit_fairij_ij),
    Method("fairij_ij_accuracy", "FairIJ ij, accuracy rule", "prompt", FAIRIJ_FRACTIONS, "k", True, 0,
           "FairIJ's accuracy rule ([4/7]): the lowest measured validation gap among the one-step updates that lose at "
           "most 1 point of validation accuracy against k = 0, k <= 30% of the rows",
           "the one-step updates of FairIJ ij (the same fits), chosen by the accuracy rule", PROMPT_SCORE,
           fit_fairij_ij),
    Method("reprogram_conditional", "FairReprogram conditional trigger", "prompt", REPROGRAM_CONDITIONAL_LAMBDAS,
           "lambda", True, 0.0, "FairReprogram's own (as for the soft trigger)",
           "5 tokens written per input by a generator (attention pooling, bottleneck 8; 20,744 numbers), surrogate "
           "objective with the rate anchor 10, 4 epochs on the 2,000 training rows, lr 0.01: audits/adult_income.yaml's "
           "reprogram block at each lambda", PROMPT_SCORE,
           _fit_reprogram("conditional")),
    Method("fairij_append", "FairIJ append", "prompt", APPEND_FRACTIONS, "k", True, 0,
           "FairIJ's own: the k its rule chooses (as for ij), then 4 appended tokens trained on the re-weighted rows",
           "4 appended soft tokens trained (early-stopped on validation) with the top-k rows removed", PROMPT_SCORE,
           fit_fairij_append),
    Method("reprogram_soft", "FairReprogram soft trigger", "prompt", REPROGRAM_SOFT_LAMBDAS, "lambda", True, 0.0,
           "FairReprogram's own: the smallest validation gap among lambda > 0 with at most the spec's "
           "max_accuracy_drop (1 point) of validation accuracy lost against the un-repaired model; else the most "
           "accurate point", f"5 soft trigger tokens, surrogate objective, {REPROGRAM_EPOCHS} epochs on "
           f"{REPROGRAM_ROWS} training rows", PROMPT_SCORE, _fit_reprogram("soft")),
    Method("reprogram_hard", "FairReprogram hard trigger", "prompt", REPROGRAM_HARD_LAMBDAS, "lambda", True, 0.0,
           "FairReprogram's own (as for the soft trigger)", f"5 hard trigger words, surrogate objective, "
           f"{REPROGRAM_EPOCHS} epochs on {REPROGRAM_ROWS} training rows", PROMPT_SCORE, _fit_reprogram("hard")),
    Method("reweighing", "AIF360 Reweighing through the prompt", "peer", REWEIGHING_EXPONENTS, "t", False, 0.0,
           PEER_RULE, "4 appended soft tokens (FairIJ append's training) on rows weighted w**t, w = AIF360 Reweighing's "
           "P(g) P(y) / P(g, y) by sex x label", PROMPT_SCORE, fit_reweighing),
    Method("eg_tabular", "ExponentiatedGradient, logistic regression on the tabular columns", "peer", EG_BOUNDS,
           "bound", True, None, PEER_RULE, "fairlearn ExponentiatedGradient (DemographicParity for dp, EqualizedOdds "
           "for eo) over LogisticRegression(max_iter=2000) on the text's columns (one-hot / standardised; sex and race "
           "left out)", "score: the randomized classifier's P(favourable) (_pmf_predict); decision: predict with "
           "random_state=0; the control: predict_proba and >= 0.5", _fit_eg("tabular")),
    Method("eg_embedding", "ExponentiatedGradient, logistic regression on frozen MiniLM embeddings", "peer", EG_BOUNDS,
           "bound", True, None, PEER_RULE, "the same over the frozen MiniLM's mean-pooled embeddings of the row texts "
           "without a prompt (standardised on train): same backbone, no prompt", "as for the tabular one",
           _fit_eg("embedding")),
    Method("adversarial", "AdversarialFairnessClassifier on frozen MiniLM embeddings", "peer", ADVERSARY_ALPHAS, "alpha",
           True, 0.0, PEER_RULE, f"fairlearn AdversarialFairnessClassifier (torch; linear predictor, adversary [3, "
           f"leaky_relu], Adam lr {ADVERSARY_LR:g}, {ADVERSARY_EPOCHS} epochs, batch 32, random_state 0) on the "
           "standardised embeddings; alpha = 0 still projects the predictor's gradient off the adversary's (fairlearn's "
           "update), so it is the method's control, not the predictor alone (that is eg_embedding's unconstrained point)",
           "score: the predictor's sigmoid output (_raw_predict); decision: predict (>= 0.5)",
           fit_adversarial),
    Method("finetune", "full fine-tuning of MiniLM under the surrogate penalty", "peer", FINETUNE_LAMBDAS, "lambda",
           True, 0.0, PEER_RULE, f"every weight (backbone, task prompt, head) from the shipped task prompt's model, "
           f"AdamW lr {FINETUNE_LR:g}, {FINETUNE_EPOCHS} epochs on {FINETUNE_ROWS} training rows (stratified draw), "
           "batch 32, loss CE + lambda x FairReprogram's squared surrogate gap; a reference, not an upper bound",
           PROMPT_SCORE, fit_finetune),
    Method("threshold_optimizer", "ThresholdOptimizer on the un-repaired scores (uses sex at prediction)",
           "group-aware", ("measure",), "constraint", True, None, "fitted on the validation split (its validation "
           "numbers are in-sample)", "fairlearn ThresholdOptimizer (constraint = the measure, objective accuracy) on "
           "the un-repaired model's validation scores", "decisions only (randomized, random_state 0); no score",
           fit_threshold_optimizer),
    Method("threshold_optimizer_tol", "ThresholdOptimizer with a tolerance on the un-repaired scores (uses sex at "
           "prediction)", "group-aware", TO_TOLERANCES, "tol", True, None, PEER_RULE + " (validation numbers in-sample)",
           "fairlearn ThresholdOptimizer (constraint = the measure, objective accuracy, tol = the largest gap allowed "
           "between the groups' constrained rates) on the un-repaired model's validation scores: the frontier of "
           "re-deciding the un-repaired scores with the group known, a reference for what a repair of the decisions "
           "alone can reach (demographic parity only: fairlearn relaxes no equalized-odds constraint)",
           "decisions only (randomized, random_state 0); no score", fit_threshold_optimizer_tol,
           measures=("demographic_parity",)),
)}
METHODS: dict[str, Method] = {name: _METHODS[name] for name in ORDER}


def grid_values(method: Method, *, quick: bool, rule: dict[str, Any] | None) -> list[Any]:
    """The settings run: the grid as given, or (FairIJ) k = round(f n) capped at the candidate rows, plus the k the
    rule chose; ThresholdOptimizer: its one constraint per measure."""
    grid = QUICK_GRIDS.get(method.name, method.grid) if quick else method.grid
    if method.name.startswith("fairij"):
        assert rule is not None
        ks = {min(int(round(f * rule["n"])), rule["candidates"]) for f in grid} | {rule["chosen_k"]}
        return sorted(ks)
    return list(grid)


__all__ = ["METHODS", "PEER_MAX_DROP", "PEER_RULE", "Method", "Predictor", "fairij_rule", "grid_values",
           "reprogram_config"]
