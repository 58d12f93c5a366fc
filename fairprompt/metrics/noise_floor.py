"""The noise floor of a between-groups gap: the gap the same decisions would show if the groups were labels
drawn at random.

With many small groups the largest gap across them is never zero, even for a model that ignores the group: the
sampling noise of each group's rate puts a floor under the max - min.  :func:`permutation_floor` measures it by
permuting the group labels among the rows of each true label (so every group keeps its size within each label,
and the rates stay those of these decisions) and recomputing the gap, ``n_perm`` times.  A gap is then read by its
**excess** over the floor's mean; a repair that "halves the excess" brings ``gap - floor`` to half of what it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fairprompt.metrics.point import disparity, group_codes, group_counts


def permutation_floor(*, y_true: Any, y_pred: Any, groups: Any, disparity_name: str = "equal_opportunity_difference",
                      n_perm: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """The observed between-groups ``disparity_name`` of 0/1 predictions and its permutation floor.

    Returns ``observed``, ``floor`` (the mean gap over the permutations), ``floor_quantile`` (its ``level``
    quantile), ``excess`` (``observed - floor``) and ``p_value`` (the share of permutations with a gap at least
    the observed one, counting the observed labelling once).  Raises ValueError for mismatched lengths, fewer than
    two groups or ``n_perm < 1``.
    """
    y = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_pred).reshape(-1)
    codes, names = group_codes(groups)
    if not (y.size == p.size == codes.size):
        raise ValueError(f"y_true, y_pred and groups differ in length ({y.size}, {p.size}, {codes.size})")
    if len(names) < 2:
        raise ValueError("a noise floor needs at least two groups")
    if n_perm < 1:
        raise ValueError(f"n_perm must be at least 1, got {n_perm}")
    n_groups = len(names)
    observed = float(disparity(group_counts(y_true=y, y_pred=p, codes=codes, n_groups=n_groups), disparity_name))
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(y == label) for label in np.unique(y)]
    gaps = np.empty(n_perm)
    for i in range(n_perm):
        permuted = codes.copy()
        for rows in strata:
            permuted[rows] = codes[rows[rng.permutation(rows.size)]]
        gaps[i] = disparity(group_counts(y_true=y, y_pred=p, codes=permuted, n_groups=n_groups), disparity_name)
    floor = float(np.nanmean(gaps))
    return {"observed": observed, "floor": floor, "floor_quantile": float(np.nanquantile(gaps, level)),
            "excess": observed - floor, "p_value": float((1 + np.sum(gaps >= observed)) / (1 + n_perm)),
            "n_perm": int(n_perm), "level": float(level)}


__all__ = ["permutation_floor"]
