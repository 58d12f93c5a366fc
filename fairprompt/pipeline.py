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


def _load_data(spec: Spec):
    d = spec.data
    assert d is not None
    ds = datasets.load(d.dataset, label=d.label, favourable_label=d.positive_label, sensitive=d.sensitive,
                       **({"options": d.options} if d.options else {}))
    if ds.label is None:
        raise FairpromptError(f"data set {d.dataset!r} has no label column; set data.label in the spec")
    if ds.favourable_label is None and not set(pd.unique(ds.frame[ds.label].dropna())) <= {0, 1}:
        raise FairpromptError(f"data set {d.dataset!r} has no favourable label; set data.positive_label in the spec")
    sensitive = list(spec.audit.sensitive or ds.sensitive)
    if not sensitive:
        raise FairpromptError(f"no sensitive columns for {d.dataset!r}; set audit.sensitive in the spec")
    _require_columns(ds.frame, sensitive, source=ds.source, role="sensitive")
    return ds, sensitive


def _data_block(ds, sensitive: list[str], *, prediction: str, split: str) -> dict[str, Any]:
    return {"source": ds.source, "name": ds.name, "label": ds.label, "positive_label": str(ds.favourable_label),
            "prediction": prediction, "score": f"P({ds.label} = {ds.favourable_label})", "weight": None,
            "sensitive": sensitive, "rows": int(len(ds.frame)), "split": split}


def prepare_model(spec: Spec, *, progress: Progress | None = None, use_cache: bool = True) -> AuditInputs:
    """Load the data set, get the spec's model (train or load it), predict the test rows."""
    assert spec.model is not None
    if spec.model.kind == "frozen_text":
        return prepare_frozen_text(spec, progress=progress, use_cache=use_cache)
    if spec.model.kind == "frozen_image":
        from fairprompt.models.image_task import prepare_frozen_image

        return prepare_frozen_image(spec, progress=progress, use_cache=use_cache)
    return prepare_baseline(spec, progress=progress)


def prepare_baseline(spec: Spec, *, progress: Progress | None = None) -> AuditInputs:
    """Train the scikit-learn baseline on one split and predict the other."""
    from fairprompt.models.tabular_baseline import train_and_predict

    m = spec.model
    assert m is not None and m.kind == "logistic_regression"
    ds, sensitive = _load_data(spec)
    y = ds.y
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
        data=_data_block(ds, sensitive, prediction=f"P({ds.label} = {ds.favourable_label}) >= {m.threshold}",
                         split=f"held-out test split ({m.test_size:.0%})"),
        inputs=[{"role": "data", "path": ds.source, "sha256": ds.sha256, "rows": int(len(ds.frame))}],
        model=predicted.description,
    )


def model_texts(spec: Spec, ds, sensitive: list[str]) -> tuple[list[str], dict[str, Any]]:
    """What the language model reads for every row of the data set, and how it was made."""
    from fairprompt.models.tabular_text import rows_to_text

    m = spec.model
    assert m is not None and m.kind == "frozen_text"
    t = m.text
    frame = ds.frame
    if t.column is not None:
        _require_columns(frame, [t.column], source=ds.source, role="text")
        values = frame[t.column]
        if values.isna().any():
            raise FairpromptError(f"text column {t.column!r} of {ds.source} has {int(values.isna().sum())} missing values; fill or drop them")
        texts = values.astype(str).tolist()
        return texts, {"text_column": t.column, "example": texts[0] if texts else ""}
    split_column = m.splits.column
    excluded = {ds.label, split_column, *t.exclude} | (set() if t.include_sensitive else set(sensitive))
    _require_columns(frame, t.exclude, source=ds.source, role="excluded")
    if t.columns is not None:
        columns = list(t.columns)
        _require_columns(frame, columns, source=ds.source, role="text")
        leaked = [c for c in columns if c in sensitive and not t.include_sensitive]
        if leaked:
            raise FairpromptError(f"text column {leaked[0]!r} is sensitive; remove it from model.text.columns or set model.text.include_sensitive")
        if ds.label in columns:
            raise FairpromptError(f"text column {ds.label!r} is the label; remove it from model.text.columns")
    else:
        columns = [c for c in frame.columns if c not in excluded]
    texts = rows_to_text(frame, columns=columns, source=ds.source)
    return texts, {"text_columns": columns, "sensitive_in_text": bool(t.include_sensitive), "example": texts[0] if texts else ""}


def prepare_frozen_text(spec: Spec, *, progress: Progress | None = None, use_cache: bool = True) -> AuditInputs:
    """Frozen encoder + task prompt (tuned once, cached), predictions on the test split."""
    from fairprompt.datasets.splits import make_splits
    from fairprompt.models.adapt import TaskPromptSettings, task_text_classifier
    from fairprompt.models.tabular_baseline import reference_scores
    from fairprompt.models.text import FrozenTextClassifier
    from fairprompt.models.training import TrainConfig

    m = spec.model
    assert m is not None and m.kind == "frozen_text"
    ds, sensitive = _load_data(spec)
    y = ds.y
    texts, text_info = model_texts(spec, ds, sensitive)
    s = m.splits
    splits = make_splits(frame=ds.frame, y=y, column=s.column, train=s.train, validation=s.validation, test=s.test,
                         seed=s.seed, source=ds.source)
    pick = lambda rows: [texts[i] for i in rows]  # noqa: E731
    if m.task_prompt == "none":
        model = FrozenTextClassifier.from_trained_classifier(path=m.backbone, max_length=m.text.max_length)
        training: dict[str, Any] = {"source": "trained classifier used as it is (task_prompt: none)"}
    else:
        t = m.training
        settings = TaskPromptSettings(
            backbone=m.backbone, tokens=m.task_prompt.tokens, init=m.task_prompt.init, init_text=m.task_prompt.init_text,
            max_length=m.text.max_length,
            training=TrainConfig(max_epochs=t.max_epochs, patience=t.patience, batch_size=t.batch_size, lr=t.lr,
                                 head_lr=t.head_lr, seed=t.seed),
        )
        model, training = task_text_classifier(
            settings=settings, train_texts=pick(splits.train), train_labels=y[splits.train],
            validation_texts=pick(splits.validation), validation_labels=y[splits.validation],
            use_cache=use_cache, progress=progress,
        )
    if model.num_labels != 2:
        raise FairpromptError(f"classifier {m.backbone!r} has {model.num_labels} labels; fairprompt audits binary classifiers")
    test_rows = model.encode(pick(splits.test), labels=y[splits.test])
    score = model.predict_proba(test_rows, batch_size=m.batch_size, progress=progress,)[:, 1]
    y_test = y[splits.test]
    y_pred = (score >= m.threshold).astype(np.int8)
    description = model.describe() | {"text": text_info, "splits": splits.describe(), "training": training,
                                      "threshold": m.threshold,
                                      "test_accuracy": float((y_pred == y_test).mean()),
                                      "test_auc": _auc(y_test, score)}
    if m.text.column is None:
        description["reference"] = reference_scores(
            frame=ds.frame, y=y, train=splits.train, test=splits.test, features=text_info["text_columns"], threshold=m.threshold,
        )
    test_frame = ds.frame.iloc[splits.test].reset_index(drop=True)
    return AuditInputs(
        y_true=y_test, y_pred=y_pred, y_score=score, sample_weight=None, sensitive=test_frame[sensitive],
        data=_data_block(ds, sensitive, prediction=f"P({ds.label} = {ds.favourable_label}) >= {m.threshold}",
                         split=f"test split ({splits.test.size:,} rows): {splits.rule}"),
        inputs=[{"role": "data", "path": ds.source, "sha256": ds.sha256, "rows": int(len(ds.frame))}],
        model=description,
    )


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if np.unique(y).size == 2 else None


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
