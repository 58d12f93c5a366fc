"""Margins and their Jacobians through the trainable parameters (theta), for FairIJ's influence core.

:class:`MarginJacobian` is what every other part of the core works on; :func:`logistic_margins` and
:func:`prompt_margins` produce it (see :mod:`fairprompt.mitigation.fairij_method.influence` for the method).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from fairprompt.errors import FairpromptError

if TYPE_CHECKING:
    from fairprompt.models.text import FrozenTextClassifier, TextRows


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
            raise ValueError(f"inconsistent shapes: z {tuple(self.z.shape)}, J {tuple(self.J.shape)}, "
                             f"theta {tuple(self.theta.shape)}")
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


def as_float64(x: Any) -> Tensor:
    """``x`` (array, tensor or number) as a float64 CPU tensor, detached."""
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach().cpu(), dtype=torch.float64)


def logistic_margins(*, features: Any, weight: Any, bias: Any) -> MarginJacobian:
    """Logistic regression ``z = X w + b``: theta = (weight [d], bias []), ``J_i = (x_i, 1)``."""
    start = time.perf_counter()
    X = as_float64(features)
    w = as_float64(weight).reshape(-1)
    b = as_float64(bias).reshape(())
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
    X = as_float64(features)
    y = as_float64(labels)
    n, d = X.shape
    w = torch.ones(n, dtype=torch.float64) if weights is None else as_float64(weights)
    A = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    theta = torch.zeros(d + 1, dtype=torch.float64) if init is None else torch.cat(
        [as_float64(init[0]).reshape(-1), as_float64(init[1]).reshape(1)])

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


__all__ = ["MarginJacobian", "as_float64", "fit_logistic", "logistic_margins", "prompt_margins"]
