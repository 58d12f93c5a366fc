"""Runs a spec: load -> (train and predict) -> audit -> results.json -> report.

Every check on the inputs happens before anything is written, and the outputs
are rendered in memory first, then each written atomically, so a bad input or a
crash leaves no half-written report directory behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairprompt import datasets
from fairprompt.atomic import write_text
from fairprompt.errors import FairpromptError, did_you_mean
from fairprompt.metrics import Audit, audit
from fairprompt.metrics.inputs import binarize, scores_array
from fairprompt.report import render_html
from fairprompt.report.results import build_results, dumps
from fairprompt.spec import Spec

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AuditInputs:
    """Everything an audit needs, checked: arrays, groups and where they came from."""

    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray | None
    sample_weight: np.ndarray | None
    sensitive: pd.DataFrame
    data: dict[str, Any]
    inputs: list[dict[str, Any]]
    model: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunOutput:
    """Where a run wrote its files, and what it found."""

    out_dir: Path
    results_path: Path
    report_path: Path
    csv_path: Path
    audit: Audit
    results: dict[str, Any]


def _require_columns(frame: pd.DataFrame, columns: Sequence[str | None], *, source: str, role: str) -> None:
    for column in columns:
        if column is not None and column not in frame.columns:
            raise FairpromptError(f"{source} has no {role} column {column!r}{did_you_mean(column, frame.columns)}")


def prepare_predictions(spec: Spec) -> AuditInputs:
    """Read and check a predictions file named by the spec."""
    p = spec.predictions
    assert p is not None
    frame = datasets.read_table(p.path)
    sensitive = list(spec.audit.sensitive or [])
    _require_columns(frame, [p.label], source=p.path, role="label")
    _require_columns(frame, [p.prediction], source=p.path, role="prediction")
    _require_columns(frame, [p.score], source=p.path, role="score")
    _require_columns(frame, [p.weight], source=p.path, role="weight")
    _require_columns(frame, sensitive, source=p.path, role="sensitive")
    y_true = binarize(frame[p.label], name=p.label, positive_label=p.positive_label)
    scores = scores_array(frame[p.score], name=p.score) if p.score else None
    if p.prediction is not None:
        y_pred = binarize(frame[p.prediction], name=p.prediction, positive_label=p.positive_label, require_present=False)
    else:
        assert scores is not None and p.score_threshold is not None
        y_pred = (scores >= p.score_threshold).astype(np.int8)
    weights = frame[p.weight].to_numpy() if p.weight else None
    return AuditInputs(
        y_true=y_true, y_pred=y_pred, y_score=scores, sample_weight=weights, sensitive=frame[sensitive],
        data={"source": str(p.path), "label": p.label, "positive_label": None if p.positive_label is None else str(p.positive_label),
              "prediction": p.prediction or f"{p.score} >= {p.score_threshold}", "score": p.score, "weight": p.weight,
              "sensitive": sensitive, "rows": int(len(frame)), "split": None},
        inputs=[{"role": "predictions", "path": str(p.path), "sha256": datasets.sha256_file(p.path), "rows": int(len(frame))}],
    )


def prepare_model(spec: Spec, *, progress: Progress | None = None) -> AuditInputs:
    """Load the data set, train the spec's model on one split and predict the other."""
    from fairprompt.models.tabular_baseline import train_and_predict

    d, m = spec.data, spec.model
    assert d is not None and m is not None
    ds = datasets.load(d.dataset, label=d.label, favourable_label=d.positive_label, sensitive=d.sensitive)
    if ds.label is None:
        raise FairpromptError(f"data set {d.dataset!r} has no label column; set data.label in the spec")
    if ds.favourable_label is None:
        raise FairpromptError(f"data set {d.dataset!r} has no favourable label; set data.positive_label in the spec")
    sensitive = list(spec.audit.sensitive or ds.sensitive)
    if not sensitive:
        raise FairpromptError(f"no sensitive columns for {d.dataset!r}; set audit.sensitive in the spec")
    _require_columns(ds.frame, sensitive, source=ds.source, role="sensitive")
    y = binarize(ds.frame[ds.label], name=ds.label, positive_label=ds.favourable_label)
    if progress:
        progress("training the baseline model", 0, 1)
    predicted = train_and_predict(
        frame=ds.frame, y=y, label=ds.label, sensitive=sensitive, features=m.features,
        include_sensitive=m.include_sensitive, test_size=m.test_size, seed=m.seed, threshold=m.threshold,
    )
    if progress:
        progress("training the baseline model", 1, 1)
    return AuditInputs(
        y_true=predicted.y_true, y_pred=predicted.y_pred, y_score=predicted.y_score, sample_weight=None,
        sensitive=predicted.frame[sensitive],
        data={"source": ds.source, "name": ds.name, "label": ds.label, "positive_label": str(ds.favourable_label),
              "prediction": f"P({ds.label} = {ds.favourable_label}) >= {m.threshold}", "score": f"P({ds.label} = {ds.favourable_label})",
              "weight": None, "sensitive": sensitive, "rows": int(len(ds.frame)), "split": f"held-out test split ({m.test_size:.0%})"},
        inputs=[{"role": "data", "path": ds.source, "sha256": ds.sha256, "rows": int(len(ds.frame))}],
        model=predicted.description,
    )


def run(
    spec: Spec,
    *,
    out_dir: str | Path | None = None,
    command: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> RunOutput:
    """Run everything the spec names and write results.json, metrics_by_group.csv and report.html."""
    prepared = prepare_predictions(spec) if spec.predictions is not None else prepare_model(spec, progress=progress)
    a = spec.audit
    result = audit(
        y_true=prepared.y_true, y_pred=prepared.y_pred, y_score=prepared.y_score, sample_weight=prepared.sample_weight,
        sensitive=prepared.sensitive, reference=a.reference, n_boot=a.n_boot, ci_level=a.ci_level, seed=a.seed,
        min_group_size=a.min_group_size, impact_threshold=a.impact_threshold, bootstrap=a.bootstrap, progress=progress,
    )
    seeds = {"bootstrap": a.seed} | ({"model": spec.model.seed} if spec.model is not None else {})
    results = build_results(
        name=spec.name, title=spec.title or spec.name, audit=result.to_dict(),
        data=prepared.data | {"rows_audited": result.n_rows}, inputs=prepared.inputs, seeds=seeds,
        model=prepared.model, spec=spec.model_dump(mode="json"), command=command,
    )
    if progress:
        progress("rendering the report", 0, 1)
    json_text = dumps(results)
    html_text = render_html(results)
    csv_text = result.by_group().to_csv(index=False)
    target = spec.output_dir(out_dir)
    paths = (target / "results.json", target / "metrics_by_group.csv", target / "report.html")
    for path, text in zip(paths, (json_text, csv_text, html_text)):
        write_text(path, text)
    if progress:
        progress("rendering the report", 1, 1)
    return RunOutput(out_dir=target, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=result, results=results)
