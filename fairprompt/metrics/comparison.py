"""The headline disparities: the between-groups disparities that summarise a slice, and that a repair's
before/after comparison lists (one list for the pipeline, the results record and every report section)."""

from __future__ import annotations

HEADLINE: tuple[str, ...] = ("demographic_parity_difference", "disparate_impact", "equal_opportunity_difference",
                             "equalized_odds_difference", "accuracy_difference")
"""Between-groups disparities a repair is judged by, in the order the report shows them."""
