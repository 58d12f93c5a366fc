"""Before and after: the headline disparities of two audits of the same rows, side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEADLINE: tuple[str, ...] = ("demographic_parity_difference", "disparate_impact", "equal_opportunity_difference",
                             "equalized_odds_difference", "accuracy_difference")
"""The between-groups disparities a before/after comparison lists (with overall accuracy)."""


def _index(audit: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for s in audit.get("slices") or []:
        for d in s.get("disparities") or []:
            if d.get("convention") == "between_groups" and d.get("metric") in HEADLINE:
                out[(s["name"], d["metric"])] = d
    for o in audit.get("overall") or []:
        if o.get("metric") == "accuracy":
            out[("overall", "accuracy")] = o
    return out


def compare_audits(*, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per slice, the :data:`HEADLINE` between-groups disparities, and overall accuracy, of two audit records
    (``Audit.to_dict()``) before and after, with their CIs and the change (None where either is undefined)."""
    b, a = _index(before), _index(after)
    rows = []
    for key in [k for k in a if k in b]:
        x, z = b[key], a[key]
        change = None if x.get("value") is None or z.get("value") is None else z["value"] - x["value"]
        rows.append({"slice": key[0], "metric": key[1], "ideal": z.get("ideal", 1.0 if key[1] == "accuracy" else None),
                     "before": x.get("value"), "before_ci_low": x.get("ci_low"), "before_ci_high": x.get("ci_high"),
                     "after": z.get("value"), "after_ci_low": z.get("ci_low"), "after_ci_high": z.get("ci_high"),
                     "change": change})
    return rows


__all__ = ["HEADLINE", "compare_audits"]
