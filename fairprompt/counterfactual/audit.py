"""The counterfactual audit: each text and its identity-swapped variants scored by the same model, compared in pairs.

Per (category, group named, group swapped in): the flip rate (share of texts whose decision changes), the mean and
the largest score change, and the decision rate of the originals and of the variants, each with a percentile CI
from a bootstrap over texts in which a text and its variant move together.  At most ``max_rows`` texts are read (a
seeded sample, in their order); texts without a term, with terms of several groups or with an ambiguous term are
counted, not errors; substitutions that swap no text at all are an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fairprompt.counterfactual.substitutions import Substitutions, SwapCounts
from fairprompt.errors import FairpromptError
from fairprompt.metrics.bootstrap import percentile_interval


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairResult:
    """One group pair of one category."""

    category: str
    source_group: str
    target_group: str
    rows: int
    flip_rate: Interval
    mean_change: Interval
    largest_change: float
    rate_original: Interval
    rate_swapped: Interval


@dataclass(frozen=True)
class CounterfactualAudit:
    """Every group pair's result, what was and was not swapped, and the settings."""

    pairs: tuple[PairResult, ...]
    counts: dict[str, SwapCounts]
    substitutions: dict[str, Any]
    rows_available: int
    rows_read: int
    variants: int
    threshold: float
    n_boot: int
    confidence: float
    seed: int

    def pair(self, category: str, source: str, target: str) -> PairResult:
        for p in self.pairs:
            if (p.category, p.source_group, p.target_group) == (category, source, target):
                return p
        raise KeyError((category, source, target))

    def flip_rate(self) -> float:
        """The share of all variants whose decision differs from their original's."""
        total = sum(p.rows for p in self.pairs)
        return float(sum(p.flip_rate.value * p.rows for p in self.pairs) / total) if total else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [asdict(p) for p in self.pairs], "counts": {k: asdict(v) for k, v in self.counts.items()},
                "substitutions": self.substitutions, "rows_available": self.rows_available,
                "rows_read": self.rows_read, "variants": self.variants, "flip_rate": self.flip_rate(),
                "threshold": self.threshold, "n_boot": self.n_boot, "confidence": self.confidence, "seed": self.seed}


def _interval(point: float, samples: np.ndarray, confidence: float) -> Interval:
    if samples.size == 0:
        return Interval(point, float("nan"), float("nan"))
    low, high = percentile_interval(samples[:, None], level=confidence)
    return Interval(point, float(low[0]), float(high[0]))


def sample_rows(n: int, *, max_rows: int, seed: int) -> np.ndarray:
    """The rows a counterfactual audit reads: all ``n``, or a seeded sample of ``max_rows`` in their order."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def counterfactual_audit(*, texts: Sequence[str], score: Callable[[list[str]], np.ndarray], threshold: float,
                         substitutions: Substitutions, max_rows: int = 500, n_boot: int = 1000, seed: int = 0,
                         confidence: float = 0.95) -> CounterfactualAudit:
    """Swap, score and compare (module docstring).  ``score`` maps texts to scores; decision = score >= threshold
    (the encoder's rule for P(favourable); a causal LM decides ``score > 0``, so pass a threshold just above 0 to
    match it exactly on ties)."""
    if max_rows < 1:
        raise FairpromptError(f"counterfactual max_rows is {max_rows}; give 1 or more")
    available = len(texts)
    read = [str(texts[i]) for i in sample_rows(available, max_rows=max_rows, seed=seed)]
    variants, counts = substitutions.variants(read)
    if not variants:
        raise FairpromptError(f"substitutions {substitutions.origin} match no row of the {len(read):,} texts read; "
                              "give lists whose terms occur in the texts, or a larger max_rows")
    original = np.asarray(score(read), dtype=np.float64)
    swapped = np.asarray(score([v.text for v in variants]), dtype=np.float64)
    if original.shape != (len(read),) or swapped.shape != (len(variants),):
        raise FairpromptError("the model returned a score count that does not match its texts")
    rng = np.random.default_rng(seed)
    pairs = []
    keys = sorted({(v.category, v.source_group, v.target_group) for v in variants},
                  key=lambda k: ([c.name for c in substitutions.categories].index(k[0]), k[1], k[2]))
    index = {k: [] for k in keys}
    for j, v in enumerate(variants):
        index[(v.category, v.source_group, v.target_group)].append(j)
    for key in keys:
        j = np.array(index[key])
        s0 = original[[variants[i].row for i in j]]
        s1 = swapped[j]
        d0, d1 = s0 >= threshold, s1 >= threshold
        flips, change = (d0 != d1).astype(float), s1 - s0
        draws = rng.integers(0, j.size, size=(n_boot, j.size)) if n_boot else np.zeros((0, j.size), dtype=int)
        pairs.append(PairResult(
            category=key[0], source_group=key[1], target_group=key[2], rows=int(j.size),
            flip_rate=_interval(float(flips.mean()), flips[draws].mean(axis=1), confidence),
            mean_change=_interval(float(change.mean()), change[draws].mean(axis=1), confidence),
            largest_change=float(np.abs(change).max()),
            rate_original=_interval(float(d0.mean()), d0[draws].mean(axis=1), confidence),
            rate_swapped=_interval(float(d1.mean()), d1[draws].mean(axis=1), confidence)))
    return CounterfactualAudit(pairs=tuple(pairs), counts=counts, substitutions=substitutions.describe(),
                               rows_available=available, rows_read=len(read), variants=len(variants),
                               threshold=threshold, n_boot=n_boot, confidence=confidence, seed=seed)


__all__ = ["CounterfactualAudit", "Interval", "PairResult", "counterfactual_audit", "sample_rows"]
