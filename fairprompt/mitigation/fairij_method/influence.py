r"""The influence core of FairIJ: which training rows move a fairness measure, through the prompt alone.

FairIJ (Sattigeri et al., NeurIPS 2022, "Fair Infinitesimal Jackknife") scores every training row by
the first-order change its removal would make to a smooth fairness measure, and repairs a model by
the corresponding one-step parameter update, with no refit.  fairprompt applies it where it is cheap
and exact: the trainable parameters theta are only the task prompt and the head (a few thousand numbers)
on a frozen backbone.  This module is the math, for any two-class model whose margin and margin
Jacobian can be computed; selection, repair modes and reporting live elsewhere.

Model-agnostic interface
------------------------
Everything here works on a :class:`MarginJacobian` per row set: the margin ``z_i = logit_1 - logit_0``
(class 1 is the favourable, "positive" class), its Jacobian ``J = dz/dtheta`` [n, p] (float64), and
theta itself.  Two producers are provided:

* :func:`logistic_margins`: logistic regression on features, theta = (weight, bias), ``J_i = (x_i, 1)``.
* :func:`prompt_margins`: the prompted text model (:class:`~fairprompt.models.text.FrozenTextClassifier`),
  theta = (task prompt [k, d], head weight [2, d], head bias [2]) in ``task_parameters()`` order.
  The prompt block is exact per row on padded batches: every row gets its own copy of the prompt
  tensor (a [B, k, d] leaf with ``requires_grad``), rows do not interact, so one backward pass of
  ``sum_i z_i`` leaves ``dz_i/dprompt`` in row i of the leaf's gradient.  (``torch.func.vmap`` over a
  Hugging Face BERT with an attention mask fails on data-dependent control flow.)  The head block is
  closed form from the pooled features h_i: ``dz/dW_1 = h``, ``dz/dW_0 = -h``, ``dz/db = (-1, +1)``.

Per-row quantities (binary cross-entropy through the margin)
-----------------------------------------------------------
With ``p_i = sigmoid(z_i) = P(class 1)`` and ``y_i`` in {0, 1}: ``l_i = softplus(z_i) - y_i z_i``,
``dl_i/dz_i = p_i - y_i``, ``d2l_i/dz_i2 = p_i (1 - p_i)``.  Hence the per-row loss gradient
``g_i = (p_i - y_i) J_i`` and, for the trained objective

    L(theta; w) = (1/n) sum_i w_i l_i(theta) + (l2/2) |theta|^2        (all w_i = 1 once trained),

the generalized Gauss-Newton matrix

    H = (1/n) sum_i w_i p_i (1 - p_i) J_i J_i^T + l2 I   (+ damping I).

For a two-class softmax this is the whole GGN (the softmax Hessian in logit space is
``p(1-p) u u^T`` with ``u = (-1, +1)``, and ``u^T dlogits/dtheta = J_i``), so one margin Jacobian
per row gives gradients and curvature in the same pass.  For logistic regression it is the exact
Hessian; for the prompt it drops the ``(p_i - y_i) d2z_i`` term.  ``n`` counts every row (the mean
in the training loss is over rows, as in :mod:`fairprompt.models.training`).

Fairness surrogates and utility (validation split, group labels)
----------------------------------------------------------------
Smooth functions of the validation probabilities ``P_i = sigmoid(z_i)``, with group means
``m_g = mean_{i in g} P_i`` over a subset of rows:

* ``demographic_parity``: the gap over all rows;
* ``equal_opportunity``: the gap among ``y = 1``;
* ``equalized_odds``: the gap among ``y = 1`` plus the gap among ``y = 0``.

The gap of several groups is the max pairwise gap ``m_a - m_b`` at the argmax pair
``(a, b) = (argmax m, argmin m)`` (for two groups ``|m_a - m_b|``; its gradient is that of the active
pair, undefined only at exact ties).  With ``temperature = tau`` it is instead the smooth maximum over
ordered pairs ``tau log sum_{a != b} exp((m_a - m_b)/tau)``, which lies between the max gap and the
max gap + ``tau log(G (G - 1))`` and is differentiable everywhere.  Gradients by the chain rule:
``dF/dz_i = dF/dP_i * P_i (1 - P_i)``, ``grad F = J_val^T dF/dz``.  The utility is the validation
cross-entropy ``U = mean_i l_i``, ``grad U = J_val^T (P - y) / n_val``.

Influence, with the signs
-------------------------
At the optimum ``grad_theta L(theta_hat; w) = 0``.  Differentiating in ``w_i``:
``H d theta_hat/d w_i + (1/n) g_i = 0``, so ``d theta_hat/d w_i = -(1/n) H^-1 g_i``.
Removing row i is ``Delta w_i = -w_i`` (= -1 for a trained model), hence

    Delta theta (remove i) ~= +(w_i/n) H^-1 g_i,     I_F(i) = +(w_i/n) grad F^T H^-1 g_i,

the predicted first-order change of F when row i is removed (the issue's ``-(1/n) grad F^T H^-1 g_i``
is the derivative of F with respect to *up*-weighting, ``dF/dw_i``; a negative ``I_F(i)`` here means
removing row i lowers the unfairness).  Likewise ``I_U(i)`` with ``grad U``.  Down-weighting a set S
by fractions ``alpha_i`` (``w_i -> (1 - alpha_i) w_i``; alpha = 1 removes) predicts

    Delta theta = (1/n) H^-1 sum_{i in S} alpha_i w_i g_i,      Delta F = sum_i alpha_i I_F(i),

and the one-step infinitesimal-jackknife update (the ``ij`` repair, no refit) is
``theta_hat + Delta theta``.  The tests check these signs against exact leave-out refits.
``v = H^-1 grad F`` is solved once; each score is then a dot product, ``I_F(i) = (w_i/n)(p_i - y_i) J_i v``.

Curvature solve and damping
---------------------------
``H + damping I`` is factored by Cholesky in float64 ("exact GGN (Cholesky)").  ``damping`` is an
absolute number added to the diagonal (default 1e-4), reported with the result, because the prompt's
GGN is strongly rank-deficient and the damping sets the size of the predicted effect in the weak
directions (the ranking is stable).  Directions in which no training row has curvature (e.g. the
redundant ``W_0 + W_1`` direction of a two-logit head) are orthogonal to every ``J_i``, so they do
not change any score.  If the factorization fails, or its pivots span more than 1e12 (the matrix is
numerically singular: duplicated features, a zero-variance direction), the damping is raised tenfold
(starting from 1e-10 x the mean diagonal when it was 0) until it succeeds; the damping used and the
fact that it was raised are recorded.  Scores are never NaN: non-finite margins are refused.
The eigenvalue summary of ``H`` (without damping) reports its effective rank.
For thousands of parameters this is cheap (p^3/3 flops).

Larger prompts: ``solver="cg"`` (chosen by ``"auto"`` above :data:`DENSE_MAX_PARAMETERS` parameters) never
forms ``H``: it solves ``(H + damping I) x = b`` by conjugate gradients with the matrix-free product
``H v = (1/n) J^T (w p (1 - p) (J v)) + l2 v`` (two matrix-vector products with the Jacobian, O(np) each),
to a relative residual of :data:`CG_TOLERANCE`.  The damping must then be positive (a zero damping is raised
as above); if CG does not reach the tolerance in ``CG_MAX_ITERATIONS`` iterations the damping is raised
tenfold and the solve repeated, and the result records "GGN, matrix-free conjugate gradient", the
iterations and the final residual.  No eigenvalue summary is computed on that path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.fairij_method.config import MEASURES, Measure, Solver
from fairprompt.mitigation.fairij_method.curvature import (
    CG_NAME,
    CURVATURE_NAME,
    DENSE_MAX_PARAMETERS,
    ConjugateGradientCurvature,
    Curvature,
    gauss_newton,
    training_weights,
)
from fairprompt.mitigation.fairij_method.margins import (
    MarginJacobian,
    as_float64,
    fit_logistic,
    logistic_margins,
    prompt_margins,
)
from fairprompt.mitigation.fairij_method.objective import (
    Surrogate,
    binary_labels,
    fairness_surrogate,
    validation_loss,
)

if TYPE_CHECKING:
    from fairprompt.models.text import FrozenTextClassifier, TextRows


@dataclass(frozen=True)
class InfluenceScores:
    """Per-training-row influence on F (fairness) and U (validation loss), and how it was computed.

    ``influence_fairness[i]`` = I_F(i), the predicted first-order change of F when training row i is
    removed (negative: removing the row makes the model fairer); likewise ``influence_utility``.
    """

    influence_fairness: np.ndarray
    influence_utility: np.ndarray
    fairness: float
    utility: float
    measure: str
    fairness_detail: dict[str, Any]
    curvature: str
    damping: float
    damping_requested: float
    damping_raised: bool
    l2: float
    n: int
    p: int
    eigen: dict[str, float]
    solver_info: dict[str, float]
    mean_gradient_norm: float
    seconds: float
    jacobian_seconds: float
    _solver: Curvature | ConjugateGradientCurvature = field(repr=False, compare=False)
    _train: MarginJacobian = field(repr=False, compare=False)
    _coefficients: Tensor = field(repr=False, compare=False)  # w_i (p_i - y_i): g_i = (p_i - y_i) J_i

    @property
    def theta(self) -> Tensor:
        """The parameters the scores were taken at (flat, float64)."""
        return self._train.theta

    @property
    def train_margins(self) -> MarginJacobian:
        """The training rows' margins and Jacobian the scores were computed from."""
        return self._train

    def summary(self) -> dict[str, Any]:
        """The JSON-ready facts (no arrays)."""
        return {"measure": self.measure, "fairness": self.fairness, "utility": self.utility, "curvature": self.curvature,
                "damping": self.damping, "damping_requested": self.damping_requested, "damping_raised": self.damping_raised,
                "l2": self.l2, "n": self.n, "p": self.p, "eigen": dict(self.eigen), "solver_info": dict(self.solver_info),
                "mean_gradient_norm": self.mean_gradient_norm, "seconds": self.seconds,
                "jacobian_seconds": self.jacobian_seconds, "fairness_detail": self.fairness_detail}


def influence_scores(*, train: MarginJacobian, train_labels: Any, validation: MarginJacobian, validation_labels: Any,
                     groups: Any, measure: Measure = "demographic_parity", train_weights: Any = None, l2: float = 0.0,
                     damping: float = 1e-4, temperature: float | None = None, eigen_summary: bool = True,
                     solver: Solver = "auto") -> InfluenceScores:
    """Score every training row: I_F(i) = (w_i/n) grad F^T H^-1 g_i and I_U(i) likewise (removal; see the module docstring).

    ``l2`` is the L2 strength of the *trained* objective (part of H and of the convergence check), ``damping`` an
    extra diagonal for the solve.  ``groups`` are the validation rows' group labels.
    """
    start = time.perf_counter()
    if train.p != validation.p or not torch.equal(train.theta, validation.theta):
        raise FairpromptError("the training and validation margins were taken at different parameters; "
                              "compute both from the same model")
    F = fairness_surrogate(validation=validation, labels=validation_labels, groups=groups, measure=measure,
                           temperature=temperature)
    U = validation_loss(validation=validation, labels=validation_labels)
    curvature = gauss_newton(train=train, labels=train_labels, weights=train_weights, l2=l2, damping=damping,
                             eigen_summary=eigen_summary, solver=solver)
    y = binary_labels(train_labels, train.n, "the training labels")
    w = training_weights(train_weights, train.n)
    coefficients = w * (torch.sigmoid(train.z) - y)
    v = curvature.solve(torch.stack([F.gradient, U.gradient], dim=1))   # [p, 2]: H^-1 grad F, H^-1 grad U
    scores = (train.J @ v) * (coefficients / train.n).unsqueeze(1)      # [n, 2]
    objective_gradient = train.J.T @ coefficients / train.n + l2 * train.theta
    if not bool(torch.isfinite(scores).all()):
        raise FairpromptError("influence scores came out non-finite; raise the damping")
    return InfluenceScores(
        influence_fairness=scores[:, 0].numpy().copy(), influence_utility=scores[:, 1].numpy().copy(),
        fairness=F.value, utility=U.value, measure=measure, fairness_detail=F.detail, curvature=curvature.name,
        damping=curvature.damping, damping_requested=curvature.damping_requested,
        damping_raised=curvature.damping_raised, l2=l2, n=train.n, p=train.p, eigen=curvature.eigen,
        solver_info=dict(getattr(curvature, "info", {})), mean_gradient_norm=float(objective_gradient.norm()),
        seconds=time.perf_counter() - start, jacobian_seconds=train.seconds + validation.seconds,
        _solver=curvature, _train=train, _coefficients=coefficients,
    )


def score_prompt(*, model: FrozenTextClassifier, train_rows: TextRows, validation_rows: TextRows, groups: Any,
                 measure: Measure = "demographic_parity", l2: float = 0.0, damping: float = 1e-4,
                 temperature: float | None = None, batch_size: int = 16, eigen_summary: bool = True,
                 solver: Solver = "auto") -> InfluenceScores:
    """:func:`influence_scores` for a prompted text model; labels and weights come with the rows."""
    if len(validation_rows) == 0:
        raise FairpromptError("the validation split is empty; influence needs a validation split with group labels")
    train = prompt_margins(model=model, rows=train_rows, batch_size=batch_size)
    validation = prompt_margins(model=model, rows=validation_rows, batch_size=batch_size)
    return influence_scores(train=train, train_labels=train_rows.labels, train_weights=train_rows.weights,
                            validation=validation, validation_labels=validation_rows.labels, groups=groups,
                            measure=measure, l2=l2, damping=damping, temperature=temperature, eigen_summary=eigen_summary,
                            solver=solver)


def _alphas(n: int, rows: Sequence[int] | np.ndarray | None, alphas: Any) -> Tensor:
    if (rows is None) == (alphas is None):
        raise ValueError("give exactly one of rows (removed fully) or alphas (down-weighting fractions)")
    if rows is not None:
        out = torch.zeros(n, dtype=torch.float64)
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise ValueError(f"row indices must lie in [0, {n})")
        out[index] = 1.0
        return out
    out = as_float64(alphas).reshape(-1)
    if out.shape[0] != n or not bool(torch.isfinite(out).all()):
        raise ValueError(f"alphas must be {n} finite numbers, one per training row")
    return out


def predicted_change(*, scores: InfluenceScores, rows: Sequence[int] | np.ndarray | None = None,
                     alphas: Any = None) -> dict[str, float]:
    """First-order predicted change of F and U when ``rows`` are removed (or down-weighted by ``alphas``)."""
    a = _alphas(scores.n, rows, alphas).numpy()
    return {"fairness": float(a @ scores.influence_fairness), "utility": float(a @ scores.influence_utility)}


def parameter_change(*, scores: InfluenceScores, rows: Sequence[int] | np.ndarray | None = None,
                     alphas: Any = None) -> Tensor:
    """Predicted ``Delta theta = (1/n) H^-1 sum_i alpha_i w_i g_i`` (flat, float64) for removing / down-weighting."""
    a = _alphas(scores.n, rows, alphas)
    train = scores._train
    return scores._solver.solve(train.J.T @ (a * scores._coefficients) / train.n)


def ij_update(*, scores: InfluenceScores, rows: Sequence[int] | np.ndarray | None = None,
              alphas: Any = None) -> list[Tensor]:
    """The one-step infinitesimal-jackknife parameters ``theta_hat + Delta theta`` as new tensors (theta's shapes).

    No model is changed: copy the tensors into the task prompt and head of a copy to apply them.
    """
    train = scores._train
    return train.unflatten(train.theta + parameter_change(scores=scores, rows=rows, alphas=alphas))


__all__ = [
    "CG_NAME", "CURVATURE_NAME", "DENSE_MAX_PARAMETERS", "MEASURES", "ConjugateGradientCurvature", "Curvature",
    "InfluenceScores", "MarginJacobian", "Measure", "Surrogate",
    "fairness_surrogate", "fit_logistic", "gauss_newton", "ij_update", "influence_scores", "logistic_margins",
    "parameter_change", "predicted_change", "prompt_margins", "score_prompt", "validation_loss",
]
