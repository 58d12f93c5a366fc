"""Helpers the benchmark scripts share (imported as ``common``: each script runs from ``benchmarks/``)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

N_BOOT = 1000
DP_EO: dict[str, str] = {"dp": "demographic_parity_difference", "eo": "equalized_odds_difference"}


def log(message: str) -> None:
    """One time-stamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_mb() -> float:
    """This process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def paired_table(y: np.ndarray, groups: np.ndarray, predictions: Mapping[str, np.ndarray], *, base: str,
                 gaps: Mapping[str, str] = DP_EO, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Point values and paired bootstrap CIs (the same resampled rows for every method) against ``base``
    (:func:`fairprompt.metrics.paired_bootstrap`); the point DP and EO are checked against fairlearn's on every run."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    from fairprompt.metrics import paired_bootstrap

    table = paired_bootstrap(y_true=y, groups=groups, predictions=predictions, base=base, gaps=gaps, n_boot=n_boot,
                             seed=seed)
    for m, p in predictions.items():
        dp = demographic_parity_difference(y, p, sensitive_features=groups)
        eo = equalized_odds_difference(y, p, sensitive_features=groups)
        assert abs(dp - table[m]["dp"]) < 1e-12 and abs(eo - table[m]["eo"]) < 1e-12, (m, dp, eo, table[m])
    return table
