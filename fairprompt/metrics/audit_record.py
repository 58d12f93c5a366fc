"""An :class:`~fairprompt.metrics.audit.Audit` as the JSON-ready dictionary results.json records (NaN becomes None)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairprompt.metrics.audit import MERGEABLE
from fairprompt.metrics.rates import RATE_DESCRIPTIONS
from fairprompt.metrics.scores import SCORE_DESCRIPTIONS

if TYPE_CHECKING:
    from fairprompt.metrics.audit import Audit


def _num(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _records(frame: pd.DataFrame, *, index: str | None = None) -> list[dict[str, Any]]:
    if index is not None:
        frame = frame.reset_index(names=index)
    return [{k: _num(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def audit_to_dict(result: Audit) -> dict[str, Any]:
    """Everything ``result`` found, for results.json (:meth:`Audit.to_dict`)."""
    cfg = result.config
    return {
        "n_rows": result.n_rows,
        "weighted": result.weighted,
        "has_scores": result.has_scores,
        "median_score": _num(result.median_score),
        "metrics": list(result.metrics),
        "metric_descriptions": RATE_DESCRIPTIONS | (SCORE_DESCRIPTIONS if result.has_scores else {}),
        "mergeable": MERGEABLE,
        "bootstrap": {
            "n_boot": cfg.n_boot,
            "ci_level": cfg.ci_level,
            "seed": cfg.seed,
            "method": cfg.bootstrap,
            "interval": "percentile",
            "stratified_by": list(result.table.columns),
            "note": (
                "stratified: every resample keeps each intersectional group's row count (missing values form their own group); "
                + ("count-based metrics resample count tables (multinomial per group"
                   + ("; weighted sums by a normal approximation" if result.weighted else ", exact for the row bootstrap") + ")"
                   if cfg.bootstrap == "counts" else "count-based metrics use row-level resampling")
                + (("; score-based metrics use multinomial draws on merged score histograms"
                    if result.score_histogram is not None else "; score-based metrics use row-level resampling")
                   if result.has_scores else "")
            ),
        },
        "config": asdict(cfg),
        "overall": _records(result.overall),
        **({"degenerate": result.degeneracy.to_dict()} if result.degeneracy is not None else {}),
        **({"score_histogram": result.score_histogram} if result.score_histogram is not None else {}),
        "slices": [
            {
                "name": s.name,
                "columns": list(s.columns),
                "reference": s.reference,
                "reference_rule": s.reference_rule,
                "excluded_rows": s.excluded_rows,
                "excluded_weight": s.excluded_weight,
                "groups": _records(s.groups_table, index="group"),
                "undefined": list(s.undefined),
                "disparities": _records(s.disparities),
                "compliance": {"table": _records(s.compliance, index="group"),
                               **{k: _num(v) for k, v in s.compliance_meta.items()}},
                "curves": s.curves,
            }
            for s in result.slices
        ],
        "count_table": {
            "columns": list(result.table.columns),
            "cells": ["tp", "fp", "tn", "fn"],
            "groups": [list(k) for k in result.table.groups],
            "k": result.table.k.tolist(),
            "w": result.table.w.tolist(),
        },
    }
