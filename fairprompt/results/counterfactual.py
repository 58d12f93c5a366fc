"""The counterfactual audit's part of results.json (``counterfactual``): per group pair of each category, how often
the decision flips when the identity terms of a text are swapped, and what was not swapped (:mod:`fairprompt.counterfactual`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from fairprompt.results.base import Real, Record


class IntervalRecord(Record):
    value: Real | None = None
    ci_low: Real | None = None
    ci_high: Real | None = None


class PairRecord(Record):
    """One (category, group named, group swapped in)."""

    category: str
    source_group: str
    target_group: str
    rows: int
    flip_rate: IntervalRecord
    mean_change: IntervalRecord
    largest_change: Real | None = None
    rate_original: IntervalRecord
    rate_swapped: IntervalRecord


class SwapCountsRecord(Record):
    swapped: int
    no_term: int
    several_groups: int
    ambiguous: int
    ambiguous_terms: dict[str, int] = Field(default_factory=dict)


class CounterfactualRecord(Record):
    """The counterfactual audit of the test rows' texts."""

    column: str | None = None
    score: str | None = None
    pairs: list[PairRecord] = Field(default_factory=list)
    counts: dict[str, SwapCountsRecord] = Field(default_factory=dict)
    substitutions: dict[str, Any] = Field(default_factory=dict)
    rows_available: int
    rows_read: int
    variants: int
    flip_rate: Real | None = None
    threshold: Real | None = None
    n_boot: int
    confidence: Real
    seed: int


__all__ = ["CounterfactualRecord", "IntervalRecord", "PairRecord", "SwapCountsRecord"]
