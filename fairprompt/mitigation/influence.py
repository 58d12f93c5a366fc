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

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from fairprompt.errors import FairpromptError

if TYPE_CHECKING:
    from fairprompt.models.text import FrozenTextClassifier, TextRows

Measure = Literal["demographic_parity", "equal_opportunity", "equalized_odds"]
MEASURES: tuple[str, ...] = ("demographic_parity", "equal_opportunity", "equalized_odds")
CURVATURE_NAME = "exact GGN (Cholesky)"
CG_NAME = "GGN, matrix-free conjugate gradient"
DENSE_MAX_PARAMETERS = 8192  # solver="auto": Cholesky up to this many parameters (a 512 MB matrix), CG above
CG_TOLERANCE = 1e-8          # relative residual |b - A x| / |b| at which CG stops
CG_MAX_ITERATIONS = 2000
Solver = Literal["auto", "cholesky", "cg"]
PIVOT_RATIO_LIMIT = 1e-12  # min/max squared Cholesky pivot below this: numerically singular, raise the damping
RANK_THRESHOLD = 1e-8      # eigenvalues above this x the largest count toward the effective rank


# ------------------------------------------------------------------------------------------------- margins
@dataclass(frozen=True)
class MarginJacobian:
    """Margins ``z`` [n] and their Jacobian ``J = dz/dtheta`` [n, p] (float64) at parameters ``theta`` [p].

    ``shapes``, ``names`` and ``dtype`` describe theta's tensors in order, so a flat vector can be
    turned back into them (:meth:`unflatten`).
    """

    z: Tensor
    J: Tensor
    theta: Tensor
    shapes: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]
    dtype: torch.dtype = torch.float64
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n, p = self.J.shape if self.J.dim() == 2 else (-1, -1)
        if self.z.dim() != 1 or self.J.dim() != 2 or self.z.shape[0] != n or self.theta.shape != (p,):
            raise ValueError(f"inconsistent shapes: z {tuple(self.z.shape)}, J {tuple(self.J.shape)}, theta {tuple(self.theta.shape)}")
        if sum(math.prod(s) for s in self.shapes) != p or len(self.shapes) != len(self.names):
            raise ValueError(f"the parameter shapes {self.shapes} do not add up to p = {p}")
        if not (torch.isfinite(self.z).all() and torch.isfinite(self.J).all()):
            raise FairpromptError("the model produced non-finite margins or gradients; check the prompt and inputs "
                                  "(a diverged training run?) before scoring influence")

    @property
    def n(self) -> int:
        return int(self.J.shape[0])

    @property
    def p(self) -> int:
        return int(self.J.shape[1])

    def unflatten(self, vector: Tensor) -> list[Tensor]:
        """Split a flat [p] vector into tensors shaped like theta's (in ``dtype``)."""
        out, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            out.append(vector[start:start + size].reshape(shape).to(self.dtype))
            start += size
        return out


def _as_float64(x: Any) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach().cpu(), dtype=torch.float64)


def logistic_margins(*, features: Any, weight: Any, bias: Any) -> MarginJacobian:
    """Logistic regression ``z = X w + b``: theta = (weight [d], bias []), ``J_i = (x_i, 1)``."""
    start = time.perf_counter()
    X = _as_float64(features)
    w = _as_float64(weight).reshape(-1)
    b = _as_float64(bias).reshape(())
    if X.dim() != 2 or X.shape[1] != w.shape[0]:
        raise ValueError(f"features {tuple(X.shape)} do not match weight {tuple(w.shape)}")
    J = torch.cat([X, torch.ones(X.shape[0], 1, dtype=torch.float64)], dim=1)
    return MarginJacobian(z=X @ w + b, J=J, theta=torch.cat([w, b.reshape(1)]), shapes=((w.shape[0],), ()),
                          names=("weight", "bias"), seconds=time.perf_counter() - start)


def fit_logistic(*, features: Any, labels: Any, weights: Any = None, l2: float, init: tuple[Any, Any] | None = None,
                 max_iter: int = 100, tol: float = 1e-12) -> tuple[np.ndarray, float]:
    """Exact minimiser of ``(1/n) sum w_i l_i + (l2/2)(|weight|^2 + bias^2)`` by damped Newton, float64.

    The reference for refits (the convex head-only fidelity check and the tests); ``l2 > 0`` makes
    the optimum unique.  Returns ``(weight [d], bias)``.
    """
    if l2 <= 0:
        raise ValueError("fit_logistic needs l2 > 0 for a unique optimum")
    X = _as_float64(features)
    y = _as_float64(labels)
    n, d = X.shape
    w = torch.ones(n, dtype=torch.float64) if weights is None else _as_float64(weights)
    A = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    theta = torch.zeros(d + 1, dtype=torch.float64) if init is None else torch.cat(
        [_as_float64(init[0]).reshape(-1), _as_float64(init[1]).reshape(1)])

    def objective(t: Tensor) -> Tensor:
        z = A @ t
        return (w * (torch.nn.functional.softplus(z) - y * z)).sum() / n + 0.5 * l2 * t.dot(t)

    for _ in range(max_iter):
        z = A @ theta
        p = torch.sigmoid(z)
        grad = A.T @ (w * (p - y)) / n + l2 * theta
        if float(grad.norm()) < tol:
            break
        H = (A * (w * p * (1 - p)).unsqueeze(1)).T @ A / n + l2 * torch.eye(d + 1, dtype=torch.float64)
        step = torch.linalg.solve(H, grad)
        current, t = objective(theta), 1.0
        while t > 1e-10 and objective(theta - t * step) > current + 1e-4 * t * (-grad.dot(step)):
            t *= 0.5
        theta = theta - t * step
    return theta[:d].numpy(), float(theta[d])


def prompt_margins(*, model: FrozenTextClassifier, rows: TextRows, batch_size: int = 16) -> MarginJacobian:
    """Exact per-row margin Jacobians of a two-class prompted text model w.r.t. its task prompt and head.

    One forward and one backward per batch (padded, length-sorted), float64 accumulation; the model
    is put in eval mode and its parameters are not changed.  See the module docstring for the method.
    """
    start = time.perf_counter()
    params = model.task_parameters()
    if not params:
        raise FairpromptError("this classifier has no task prompt and head to score (task_prompt: none); "
                              "train a task prompt first")
    prompt, head = model.task_prompt_embedding(), model.head()
    if not isinstance(head, torch.nn.Linear) or head.bias is None or head.out_features != 2:
        raise FairpromptError("influence scoring needs a two-class linear head with a bias")
    n = len(rows)
    k_d = prompt.numel()
    d = head.in_features
    z_all = torch.empty(n, dtype=torch.float64)
    J_all = torch.empty(n, k_d + 2 * d + 2, dtype=torch.float64)
    was_training = model.training
    model.eval()
    device = prompt.device
    try:
        order = np.argsort(-rows.lengths(), kind="stable")
        for begin in range(0, n, batch_size):
            batch = rows.collate(order[begin:begin + batch_size].tolist())
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            with torch.enable_grad():
                copies = prompt.detach().unsqueeze(0).expand(ids.shape[0], -1, -1).clone().requires_grad_(True)
                z, h = model.margins_and_features(ids, mask, prompt_rows=copies)
                (grad,) = torch.autograd.grad(z.sum(), copies)
            index = batch["index"]
            h64 = h.detach().to("cpu", torch.float64)
            z_all[index] = z.detach().to("cpu", torch.float64)
            J_all[index, :k_d] = grad.reshape(ids.shape[0], -1).to("cpu", torch.float64)
            J_all[index, k_d:k_d + d] = -h64            # dz/dW_0
            J_all[index, k_d + d:k_d + 2 * d] = h64     # dz/dW_1
            J_all[index, k_d + 2 * d] = -1.0            # dz/db_0
            J_all[index, k_d + 2 * d + 1] = 1.0         # dz/db_1
    finally:
        model.train(was_training)
    theta = torch.cat([p.detach().to("cpu", torch.float64).reshape(-1) for p in params])
    return MarginJacobian(z=z_all, J=J_all, theta=theta, shapes=tuple(tuple(p.shape) for p in params),
                          names=("task_prompt", "head.weight", "head.bias"), dtype=prompt.dtype,
                          seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------------------------- surrogates
@dataclass(frozen=True)
class Surrogate:
    """A smooth validation objective: its value and gradient w.r.t. theta (float64), and how it was formed."""

    name: str
    value: float
    gradient: Tensor
    detail: dict[str, Any] = field(default_factory=dict)


def _binary_labels(labels: Any, n: int, what: str) -> Tensor:
    y = _as_float64(labels).reshape(-1)
    if y.shape[0] != n:
        raise FairpromptError(f"{what} has {y.shape[0]} labels for {n} rows; pass one 0/1 label per row")
    if not bool(((y == 0) | (y == 1)).all()):
        raise FairpromptError(f"{what} must be 0/1 (1 = the favourable class); map the labels to 0/1 first")
    return y


def _group_codes(groups: Any, n: int) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    values = np.asarray(groups, dtype=object).reshape(-1)
    if values.shape[0] != n:
        raise FairpromptError(f"the validation split has {n} rows but {values.shape[0]} group labels; "
                              "pass one group label per validation row")
    codes, uniques = pd.factorize(pd.Series(values), sort=True)
    if (codes < 0).any():
        raise FairpromptError("the validation group labels have missing values; fill them or drop those rows")
    if len(uniques) < 2:
        raise FairpromptError(f"the validation split has a single group ({list(uniques)}); a fairness gap needs "
                              "at least two groups with rows")
    return codes, [str(u) for u in uniques]


def _gap(P: Tensor, codes: np.ndarray, names: list[str], subset: np.ndarray, temperature: float | None,
         what: str) -> tuple[float, Tensor, dict[str, Any]]:
    """Gap of group means of P over ``subset``; returns (value, dF/dP [n], detail)."""
    G = len(names)
    counts = np.bincount(codes[subset], minlength=G)
    if (counts == 0).any():
        empty = [names[g] for g in np.flatnonzero(counts == 0)]
        raise FairpromptError(f"group(s) {empty} have no validation rows {what}; the gap is undefined; "
                              "use a larger validation split or another fairness measure")
    onehot = torch.zeros(P.shape[0], G, dtype=torch.float64)
    onehot[np.flatnonzero(subset), codes[subset]] = 1.0
    onehot /= torch.as_tensor(counts, dtype=torch.float64)
    means = onehot.T @ P
    detail: dict[str, Any] = {"rows": what, "group_means": {names[g]: float(means[g]) for g in range(G)}}
    if temperature is None:
        a, b = int(torch.argmax(means)), int(torch.argmin(means))
        value = float(means[a] - means[b])
        dmeans = torch.zeros(G, dtype=torch.float64)
        dmeans[a] += 1.0
        dmeans[b] -= 1.0
        detail["pair"] = (names[a], names[b])
    else:
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        diffs = (means.unsqueeze(1) - means.unsqueeze(0)) / temperature  # [a, b] = m_a - m_b
        off = ~torch.eye(G, dtype=torch.bool)
        flat = diffs[off]
        value = float(temperature * torch.logsumexp(flat, dim=0))
        weights = torch.zeros(G, G, dtype=torch.float64)
        weights[off] = torch.softmax(flat, dim=0)
        dmeans = weights.sum(dim=1) - weights.sum(dim=0)
        detail["temperature"] = temperature
        detail["max_gap"] = float(means.max() - means.min())
    return value, onehot @ dmeans, detail


def fairness_surrogate(*, validation: MarginJacobian, labels: Any, groups: Any, measure: Measure = "demographic_parity",
                       temperature: float | None = None) -> Surrogate:
    """F on the validation split: a group gap of mean predicted P(class 1), with its gradient w.r.t. theta."""
    if measure not in MEASURES:
        raise FairpromptError(f"unknown fairness measure {measure!r}; use one of {', '.join(MEASURES)}")
    n = validation.n
    y = _binary_labels(labels, n, "the validation labels")
    codes, names = _group_codes(groups, n)
    P = torch.sigmoid(validation.z)
    every = np.ones(n, dtype=bool)
    positive, negative = y.numpy() == 1, y.numpy() == 0
    parts = {"demographic_parity": [(every, "(all rows)")],
             "equal_opportunity": [(positive, "with y = 1")],
             "equalized_odds": [(positive, "with y = 1"), (negative, "with y = 0")]}[measure]
    value, dP, details = 0.0, torch.zeros(n, dtype=torch.float64), []
    for subset, what in parts:
        v, d, detail = _gap(P, codes, names, subset, temperature, what)
        value += v
        dP += d
        details.append(detail)
    dz = dP * P * (1 - P)
    return Surrogate(name=measure, value=value, gradient=validation.J.T @ dz,
                     detail={"gaps": details, "smooth": temperature is not None, "favourable_class": 1})


def validation_loss(*, validation: MarginJacobian, labels: Any) -> Surrogate:
    """U = mean validation cross-entropy, with its gradient w.r.t. theta."""
    y = _binary_labels(labels, validation.n, "the validation labels")
    z = validation.z
    value = float((torch.nn.functional.softplus(z) - y * z).mean())
    return Surrogate(name="validation cross-entropy", value=value,
                     gradient=validation.J.T @ ((torch.sigmoid(z) - y) / validation.n))


# ---------------------------------------------------------------------------------------------- curvature
@dataclass(frozen=True)
class Curvature:
    """``H + damping I`` (H = GGN + l2 I), Cholesky-factored in float64."""

    cholesky: Tensor
    l2: float
    damping_requested: float
    damping: float
    damping_raised: bool
    eigen: dict[str, float]
    name: str = CURVATURE_NAME

    def solve(self, b: Tensor) -> Tensor:
        """``(H + damping I)^-1 b`` for a [p] or [p, m] right-hand side."""
        vector = b.dim() == 1
        x = torch.cholesky_solve(b.unsqueeze(1) if vector else b, self.cholesky)
        return x.squeeze(1) if vector else x


@dataclass(frozen=True)
class ConjugateGradientCurvature:
    """``H + damping I`` (H = GGN + l2 I) applied matrix-free, solved by conjugate gradients."""

    scaled: Tensor               # [n, p]: sqrt(w_i p_i (1 - p_i) / n) J_i, so H = scaled^T scaled + l2 I
    l2: float
    damping_requested: float
    damping: float
    damping_raised: bool
    eigen: dict[str, float]
    name: str = CG_NAME
    info: dict[str, float] = field(default_factory=dict)

    def matvec(self, v: Tensor) -> Tensor:
        return self.scaled.T @ (self.scaled @ v) + (self.l2 + self.damping) * v

    def solve(self, b: Tensor) -> Tensor:
        """``(H + damping I)^-1 b`` for a [p] or [p, m] right-hand side (each column to :data:`CG_TOLERANCE`)."""
        x, _, _ = _cg(self.matvec, b.unsqueeze(1) if b.dim() == 1 else b)
        return x.squeeze(1) if b.dim() == 1 else x


def _cg(matvec: Any, B: Tensor) -> tuple[Tensor, int, float]:
    """Conjugate gradients on the columns of ``B`` at once (independent scalars per column); returns
    ``(X, iterations, worst relative residual)``."""
    X = torch.zeros_like(B)
    R = B.clone()
    P = R.clone()
    norms = B.norm(dim=0).clamp_min(1e-300)
    rs = (R * R).sum(dim=0)
    iterations, worst = 0, float((R.norm(dim=0) / norms).max()) if B.numel() else 0.0
    while worst > CG_TOLERANCE and iterations < CG_MAX_ITERATIONS:
        active = R.norm(dim=0) / norms > CG_TOLERANCE       # converged columns stay where they are
        AP = matvec(P)
        step = torch.where(active, rs / (P * AP).sum(dim=0).clamp_min(1e-300), torch.zeros_like(rs))
        X += P * step
        R -= AP * step
        new = (R * R).sum(dim=0)
        P = R + P * torch.where(active, new / rs.clamp_min(1e-300), torch.zeros_like(rs))
        rs = new
        iterations += 1
        worst = float((R.norm(dim=0) / norms).max())
    return X, iterations, worst


def _conjugate_gradient(scaled: Tensor, *, l2: float, damping: float, scale: float) -> ConjugateGradientCurvature:
    """The CG curvature, with the damping raised (tenfold, recorded) until CG converges on a probe system."""
    current, raised = damping, False
    if current <= 0:
        current, raised = (1e-10 * scale if scale > 0 else 1e-10), True
    probe = torch.ones(scaled.shape[1], 1, dtype=torch.float64)
    for _ in range(30):
        curvature = ConjugateGradientCurvature(scaled=scaled, l2=l2, damping_requested=damping, damping=current,
                                               damping_raised=raised, eigen={})
        _, iterations, residual = _cg(curvature.matvec, probe)
        if residual <= CG_TOLERANCE:
            curvature.info.update({"probe_iterations": iterations, "probe_residual": residual,
                                   "tolerance": CG_TOLERANCE, "max_iterations": CG_MAX_ITERATIONS})
            return curvature
        current, raised = current * 10, True
    raise FairpromptError(f"conjugate gradients did not converge even with damping {current:g}; the margins are degenerate")


def gauss_newton(*, train: MarginJacobian, labels: Any, weights: Any = None, l2: float = 0.0, damping: float = 1e-4,
                 eigen_summary: bool = True, solver: Solver = "auto") -> Curvature | ConjugateGradientCurvature:
    """Build ``H = (1/n) sum w_i p_i (1 - p_i) J_i J_i^T + l2 I`` and factor ``H + damping I`` (see the module
    docstring); ``solver="cg"`` (or ``"auto"`` with more than :data:`DENSE_MAX_PARAMETERS` parameters) solves
    matrix-free by conjugate gradients instead."""
    if l2 < 0 or damping < 0 or not (math.isfinite(l2) and math.isfinite(damping)):
        raise ValueError("l2 and damping must be finite and non-negative")
    if solver not in ("auto", "cholesky", "cg"):
        raise FairpromptError(f"unknown curvature solver {solver!r}; use 'auto', 'cholesky' or 'cg'")
    n, p = train.n, train.p
    _binary_labels(labels, n, "the training labels")  # validated here; the GGN does not depend on y
    w = _training_weights(weights, n)
    P = torch.sigmoid(train.z)
    root = torch.sqrt(w * P * (1 - P) / n)
    scaled = train.J * root.unsqueeze(1)
    if solver == "cg" or (solver == "auto" and p > DENSE_MAX_PARAMETERS):
        scale = float((scaled * scaled).sum() / p) + l2   # the mean diagonal of H
        return _conjugate_gradient(scaled, l2=l2, damping=damping, scale=scale)
    H = scaled.T @ scaled
    eye = torch.eye(p, dtype=torch.float64)
    H += l2 * eye
    values = torch.linalg.eigvalsh(H) if eigen_summary else None
    scale = float(torch.diagonal(H).mean())
    current, raised = damping, False
    for _ in range(60):
        L, info = torch.linalg.cholesky_ex(H + current * eye)
        if int(info) == 0:
            pivots = torch.diagonal(L) ** 2
            if float(pivots.min()) >= PIVOT_RATIO_LIMIT * float(pivots.max()) and torch.isfinite(L).all():
                eigen: dict[str, float] = {}
                if values is not None:
                    top = float(values[-1])
                    eigen = {"largest": top, "smallest": float(values[0]),
                             "effective_rank": int((values > RANK_THRESHOLD * top).sum()) if top > 0 else 0,
                             "rank_threshold": RANK_THRESHOLD, "above_damping": int((values > current).sum())}
                return Curvature(cholesky=L, l2=l2, damping_requested=damping, damping=current, damping_raised=raised,
                                 eigen=eigen)
        if current > 0:
            current *= 10
        else:
            current = 1e-10 * scale if scale > 0 else 1e-10
        raised = True
    raise FairpromptError(f"the curvature matrix could not be factored even with damping {current:g}; "
                          "the margins are degenerate")


def _training_weights(weights: Any, n: int) -> Tensor:
    if weights is None:
        return torch.ones(n, dtype=torch.float64)
    w = _as_float64(weights).reshape(-1)
    if w.shape[0] != n or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise FairpromptError(f"training weights must be {n} finite non-negative numbers, one per training row")
    return w


# ---------------------------------------------------------------------------------------------- influence
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
    y = _binary_labels(train_labels, train.n, "the training labels")
    w = _training_weights(train_weights, train.n)
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
    out = _as_float64(alphas).reshape(-1)
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
