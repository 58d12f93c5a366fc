"""Helpers the benchmark scripts share (imported as ``common``: each script runs from ``benchmarks/``)."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
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


def write_json(out: dict[str, Any], path: Path | None, *, start: float) -> None:
    """Stamp ``out`` with the run's seconds since ``start`` and this process's peak RSS, and write it to ``path``
    (if given) whole: through a temporary file, so a reader never sees half a run."""
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = peak_mb()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1, default=float))
        tmp.replace(path)


@dataclass(frozen=True)
class SpecRepair:
    """A spec of ``audits/`` with its frozen model and one of its repair blocks, as the pipeline resolves them."""

    spec: Any
    block: Any      # the spec's mitigation block (``.config()`` gives the method's config)
    task: Any
    model: Any
    training: dict[str, Any]
    group: str      # the sensitive column the repair works on


def spec_repair(spec_file: str, *, method: str = "reprogram") -> SpecRepair:
    """Load ``audits/<spec_file>``, its task and frozen model (cached or shipped), and its ``method`` block."""
    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_repairs, load_task

    spec = load_spec(ROOT / "audits" / spec_file)
    task = load_task(spec)
    model, training = task.load_model()
    return SpecRepair(spec=spec, block=next(m for m in spec.mitigations if m.name == method), task=task, model=model,
                      training=dict(training), group=next(r.group for r in load_repairs(spec, task) if r.name == method))
