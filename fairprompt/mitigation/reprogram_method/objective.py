"""FairReprogram's objectives: the batch's differentiable gap (the surrogate penalty) and the adversary that
predicts the group from the model's outputs (see :mod:`fairprompt.mitigation.reprogram_method.repair`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def group_means(values: Tensor, codes: Tensor, n_groups: int, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` per group present in the batch (groups absent from it are skipped)."""
    weight = torch.ones_like(values) if mask is None else mask.to(values.dtype)
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, codes, values * weight)
    counts = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, codes, weight)
    present = counts > 0
    return sums[present] / counts[present]


def surrogate_gap(p: Tensor, *, labels: Tensor, codes: Tensor, n_groups: int, measure: str) -> Tensor:
    """The batch's differentiable gap on the favourable probability ``p`` (module docstring)."""
    if measure == "demographic_parity":
        means = group_means(p, codes, n_groups)
        return means.max() - means.min() if means.numel() > 1 else p.sum() * 0.0
    total = p.sum() * 0.0
    for label in (0, 1):
        means = group_means(p, codes, n_groups, labels == label)
        if means.numel() > 1:
            total = total + (means.max() - means.min())
    return total


def adversary_features(probabilities: Tensor, labels: Tensor, *, measure: str) -> Tensor:
    """What the adversary sees: the output probabilities, plus (equalized odds) the label and products."""
    if measure == "demographic_parity":
        return probabilities
    onehot = F.one_hot(labels, probabilities.shape[1]).to(probabilities.dtype)
    products = (probabilities.unsqueeze(2) * onehot.unsqueeze(1)).flatten(1)
    return torch.cat([probabilities, onehot, products], dim=1)


class Adversary(nn.Module):
    """Predicts the group (categorical) from :func:`adversary_features`."""

    def __init__(self, *, inputs: int, hidden: int, groups: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, groups))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


__all__ = ["Adversary", "adversary_features", "group_means", "surrogate_gap"]
