"""Accuracy-fairness frontiers: points, their step hull, and the hull read at an accuracy.

A method's frontier is the set of its grid points (one per lambda, k or constraint level), each with an
accuracy and one or more gaps on one split.  Its **step hull** is the monotone staircase of what the method
reaches: at accuracy ``a``, the smallest gap among the points with accuracy at least ``a``; above the most
accurate point it is undefined (None).  "At matched accuracy" means a peer's hull read at another method's
accuracy (:func:`read_at`).  numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FrontierPoint:
    """One grid point of one method on one split: its accuracy, its gaps by name (``{"dp": ..., "eo": ...}``),
    and whether the method's rule chose it as its operating point."""

    method: str
    setting: str | float | None
    split: str
    accuracy: float
    gaps: Mapping[str, float] = field(default_factory=dict)
    chosen: bool = False


@dataclass(frozen=True)
class StepHull:
    """The staircase of :func:`step_hull`: corner accuracies, ascending, and the hull's gap at each corner
    (non-decreasing: the more accuracy is asked for, the fewer points qualify)."""

    accuracies: tuple[float, ...]
    gaps: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.accuracies)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(float(x))


def step_hull(points: Iterable[FrontierPoint], *, gap: str) -> StepHull:
    """The step hull of ``points`` for the gap named ``gap``: at accuracy ``a``, the smallest gap among the points
    with accuracy >= ``a``.  Points whose accuracy or gap is missing or not finite are left out."""
    pairs = sorted(((float(p.accuracy), float(p.gaps[gap])) for p in points
                    if _finite(p.accuracy) and _finite(p.gaps.get(gap))), reverse=True)
    accuracies: list[float] = []
    gaps: list[float] = []
    best = math.inf
    for accuracy, value in pairs:          # from the most accurate point down
        best = min(best, value)
        if accuracies and accuracies[-1] == accuracy:
            gaps[-1] = best
        else:
            accuracies.append(accuracy)
            gaps.append(best)
    return StepHull(accuracies=tuple(reversed(accuracies)), gaps=tuple(reversed(gaps)))


def read_at(hull: StepHull, accuracy: float) -> float | None:
    """The hull's gap at ``accuracy``: the smallest gap among the points with accuracy >= ``accuracy``; None above
    the most accurate point (or for an empty hull)."""
    for corner, value in zip(hull.accuracies, hull.gaps, strict=True):
        if corner >= accuracy:
            return value
    return None


__all__ = ["FrontierPoint", "StepHull", "read_at", "step_hull"]
