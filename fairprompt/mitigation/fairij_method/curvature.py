"""The curvature of FairIJ's influence core: the generalized Gauss-Newton matrix, factored (Cholesky) or
solved matrix-free (conjugate gradients), with the damping raised when it is numerically singular (see
:mod:`fairprompt.mitigation.fairij_method.influence`, "Curvature solve and damping")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.fairij_method.config import Solver
from fairprompt.mitigation.fairij_method.margins import MarginJacobian, as_float64
from fairprompt.mitigation.fairij_method.objective import binary_labels

CURVATURE_NAME = "exact GGN (Cholesky)"
CG_NAME = "GGN, matrix-free conjugate gradient"
DENSE_MAX_PARAMETERS = 8192  # solver="auto": Cholesky up to this many parameters (a 512 MB matrix), CG above
CG_TOLERANCE = 1e-8          # relative residual |b - A x| / |b| at which CG stops
CG_MAX_ITERATIONS = 2000
PIVOT_RATIO_LIMIT = 1e-12  # min/max squared Cholesky pivot below this: numerically singular, raise the damping
RANK_THRESHOLD = 1e-8      # eigenvalues above this x the largest count toward the effective rank


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
    binary_labels(labels, n, "the training labels")  # validated here; the GGN does not depend on y
    w = training_weights(weights, n)
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


def training_weights(weights: Any, n: int) -> Tensor:
    """Training-row weights (default all 1) as a float64 tensor; ``n`` finite non-negative numbers."""
    if weights is None:
        return torch.ones(n, dtype=torch.float64)
    w = as_float64(weights).reshape(-1)
    if w.shape[0] != n or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise FairpromptError(f"training weights must be {n} finite non-negative numbers, one per training row")
    return w


__all__ = ["CG_MAX_ITERATIONS", "CG_NAME", "CG_TOLERANCE", "CURVATURE_NAME", "DENSE_MAX_PARAMETERS",
           "ConjugateGradientCurvature", "Curvature", "gauss_newton", "training_weights"]
