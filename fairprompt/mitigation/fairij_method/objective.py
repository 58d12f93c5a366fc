"""FairIJ's objective on the validation split: the smooth fairness surrogate F and the utility U.

Smooth functions of the validation probabilities ``P_i = sigmoid(z_i)`` with their gradients w.r.t. theta
(see :mod:`fairprompt.mitigation.fairij_method.influence` for the definitions and the signs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.fairij_method.config import MEASURES, Measure
from fairprompt.mitigation.fairij_method.margins import MarginJacobian, as_float64


@dataclass(frozen=True)
class Surrogate:
    """A smooth validation objective: its value and gradient w.r.t. theta (float64), and how it was formed."""

    name: str
    value: float
    gradient: Tensor
    detail: dict[str, Any] = field(default_factory=dict)


def binary_labels(labels: Any, n: int, what: str) -> Tensor:
    """``labels`` as a float64 0/1 tensor of ``n`` rows, or a FairpromptError naming ``what``."""
    y = as_float64(labels).reshape(-1)
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
    y = binary_labels(labels, n, "the validation labels")
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
    y = binary_labels(labels, validation.n, "the validation labels")
    z = validation.z
    value = float((torch.nn.functional.softplus(z) - y * z).mean())
    return Surrogate(name="validation cross-entropy", value=value,
                     gradient=validation.J.T @ ((torch.sigmoid(z) - y) / validation.n))


__all__ = ["Surrogate", "binary_labels", "fairness_surrogate", "validation_loss"]
