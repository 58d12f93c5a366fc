"""The accuracy-fairness step hull: properties on seeded random point sets, and hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairprompt.metrics.frontier import FrontierPoint, read_at, step_hull


def _points(rng: np.random.Generator, n: int) -> list[FrontierPoint]:
    # coarse grids make ties in accuracy and gap likely
    accuracy = rng.choice(np.linspace(0.7, 0.9, 9), n)
    gap = rng.choice(np.linspace(0.0, 0.3, 7), n)
    return [FrontierPoint(method="m", setting=i, split="test", accuracy=float(a), gaps={"dp": float(g)})
            for i, (a, g) in enumerate(zip(accuracy, gap, strict=True))]


@pytest.mark.parametrize("seed", range(40))
def test_step_hull_properties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = _points(rng, int(rng.integers(1, 12)))
    hull = step_hull(points, gap="dp")
    # non-decreasing in accuracy, corners strictly ascending
    assert all(a < b for a, b in zip(hull.accuracies, hull.accuracies[1:]))
    assert all(a <= b for a, b in zip(hull.gaps, hull.gaps[1:]))
    for p in points:
        # never above a point it covers (every point with accuracy >= a bounds the hull at a) ...
        assert read_at(hull, p.accuracy) <= p.gaps["dp"]
        # ... and equal to the point set's minimum at each point's accuracy
        assert read_at(hull, p.accuracy) == min(q.gaps["dp"] for q in points if q.accuracy >= p.accuracy)
    for a in rng.uniform(0.6, 0.95, 20):
        covering = [q.gaps["dp"] for q in points if q.accuracy >= a]
        assert read_at(hull, float(a)) == (min(covering) if covering else None)


def test_step_hull_by_hand() -> None:
    points = [FrontierPoint(method="eg", setting=s, split="test", accuracy=a, gaps={"dp": d, "eo": e})
              for s, a, d, e in [(0.1, 0.84, 0.15, 0.10), (0.05, 0.83, 0.07, 0.12), (0.01, 0.82, 0.02, 0.20),
                                 (0.02, 0.80, 0.05, 0.01)]]
    hull = step_hull(points, gap="dp")
    assert hull.accuracies == (0.80, 0.82, 0.83, 0.84) and hull.gaps == (0.02, 0.02, 0.07, 0.15)
    assert read_at(hull, 0.845) is None            # above the most accurate point
    assert read_at(hull, 0.835) == 0.15
    assert read_at(hull, 0.825) == 0.07
    assert read_at(hull, 0.5) == 0.02
    assert step_hull(points, gap="eo").gaps == (0.01, 0.10, 0.10, 0.10)


def test_step_hull_skips_missing_values_and_handles_empty() -> None:
    points = [FrontierPoint(method="m", setting=None, split="test", accuracy=0.8, gaps={"dp": math.nan}),
              FrontierPoint(method="m", setting=None, split="test", accuracy=0.7, gaps={})]
    hull = step_hull(points, gap="dp")
    assert len(hull) == 0 and read_at(hull, 0.1) is None
