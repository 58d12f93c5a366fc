"""A validated spec turned into typed tasks, once: the one place below :mod:`fairprompt.spec` that reads a Spec.

:func:`load_task` checks the data against the spec and returns one frozen task object holding what the code
below needs (data, splits, settings): a :class:`PredictionsTask` (a file of predictions), a
:class:`BaselineTask` (the scikit-learn reference model), a :class:`TextTask` (a frozen text encoder with its
task prompt) or an :class:`ImageTask` (a frozen image classifier).  Each gives the :class:`AuditInputs` of its
test rows; the model tasks also load their model (:meth:`TextTask.load_model`), cut their splits into rows
the model reads and predict them.  :func:`load_repairs` resolves the spec's mitigations against a task
(:class:`Repair`: the method, its config, the group it repairs), checked before any model is built.
Nothing here writes a report.  From a notebook::

    task = load_task(load_spec("audits/adult_income.yaml"))
    model, training = task.load_model()
    rows = task.split_rows(model, task.splits.test)
"""

from __future__ import annotations

import glob
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairprompt import datasets
from fairprompt.audit_tasks import CounterfactualTask, DecisionTask, counterfactual_task, decision_task
from fairprompt.errors import FairpromptError, did_you_mean
from fairprompt.metrics.audit import check_reference
from fairprompt.metrics.point import auc_or_none
from fairprompt.scale.scan import EXACT_ROWS, Columns, ScanResult, scan_predictions

if TYPE_CHECKING:
    from fairprompt.datasets.splits import Splits
    from fairprompt.mitigation.registry import RepairMethod
    from fairprompt.models.adapt import TaskPromptSettings
    from fairprompt.models.image import ImageRows
    from fairprompt.spec import FrozenImageSpec, FrozenTextSpec, Spec, SplitSpec, TextSpec

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AuditInputs:
    """Everything an audit needs, checked: arrays, groups and where they came from; or, for a predictions file
    too large to hold (:mod:`fairprompt.scale`), its merged count tables and score histograms in ``tables`` (the
    arrays are then None)."""

    y_true: np.ndarray | None
    y_pred: np.ndarray | None
    y_score: np.ndarray | None
    sample_weight: np.ndarray | None
    sensitive: pd.DataFrame | None
    data: dict[str, Any]
    inputs: list[dict[str, Any]]
    model: dict[str, Any] | None = None
    row_ids: np.ndarray | None = None  # the audited rows' positions in the data set, when a model predicted them
    threshold: float | None = None     # the model's decision threshold on ``y_score``
    tables: ScanResult | None = None   # a predictions file audited from its tables, not its rows


def _require_columns(frame: pd.DataFrame, columns: Sequence[str | None], *, source: str, role: str) -> None:
    for column in columns:
        if column is not None and column not in frame.columns:
            raise FairpromptError(f"{source} has no {role} column {column!r}{did_you_mean(column, frame.columns)}")


def _data_block(ds: datasets.Dataset, sensitive: list[str], *, threshold: float, split: str) -> dict[str, Any]:
    return {"source": ds.source, "name": ds.name, "label": ds.label, "positive_label": str(ds.favourable_label),
            "prediction": f"P({ds.label} = {ds.favourable_label}) >= {threshold}",
            "score": f"P({ds.label} = {ds.favourable_label})", "weight": None,
            "sensitive": sensitive, "rows": int(len(ds.frame)), "split": split}


def _data_input(ds: datasets.Dataset) -> list[dict[str, Any]]:
    return [{"role": "data", "path": ds.source, "sha256": ds.sha256, "rows": int(len(ds.frame))}]


# ------------------------------------------------------------------------------------------ predictions file
@dataclass(frozen=True)
class PredictionsTask:
    """A file of predictions (or a directory or glob of Parquet files), audited as it is (the spec's ``predictions``
    block).  It is read batch by batch (:mod:`fairprompt.scale`): a file of at most ``exact_rows`` rows is audited
    from its rows, a larger one from its merged count tables and score histograms."""

    path: str
    label: str
    prediction: str | None
    score: str | None
    weight: str | None
    positive_label: Any
    score_threshold: float | None
    sensitive: list[str]
    drop_missing: bool = False  # leave out rows with a missing label, prediction, score or weight (else refuse them)
    score_scale: str = "probability"  # or "logit": scores are log-odds, mapped through the sigmoid
    exact_rows: int = EXACT_ROWS
    engine: str = "embedded"  # or "spark"
    spark_master: str | None = None

    @property
    def seeds(self) -> dict[str, int]:
        return {}

    def audit_inputs(self, *, progress: Progress | None = None) -> AuditInputs:
        """Read and check the file (rows with a missing label, prediction, score or weight are refused, or dropped
        and counted with ``drop_missing``)."""
        columns = Columns(label=self.label, sensitive=tuple(self.sensitive), prediction=self.prediction,
                          score=self.score, weight=self.weight, positive_label=self.positive_label,
                          score_threshold=self.score_threshold, score_scale=self.score_scale,  # type: ignore[arg-type]
                          drop_missing=self.drop_missing)
        if self.engine == "spark":
            from fairprompt.scale.spark import spark_scan

            scan = spark_scan(self.path, columns=columns, master=self.spark_master, exact_rows=self.exact_rows)
        else:
            scan = scan_predictions(self.path, columns=columns, exact_rows=self.exact_rows, progress=progress)
        counted = ({"rows_dropped": scan.rows - int(scan.table.k.sum()), "dropped_missing": scan.dropped}
                   if self.drop_missing else {})
        data = {"source": str(self.path), "label": self.label,
                "positive_label": None if self.positive_label is None else str(self.positive_label),
                "prediction": self.prediction or f"{self.score} >= {self.score_threshold}", "score": self.score,
                "weight": self.weight, "sensitive": self.sensitive, "rows": scan.rows, "split": None} | counted
        inputs = ([{"role": "predictions", "path": str(f), "sha256": datasets.sha256_file(f), "rows": n}
                   for f, n in scan.file_rows.items()]
                  or [{"role": "predictions", "path": str(self.path), "sha256": None, "rows": scan.rows}])
        kept = scan.kept
        if kept is None:
            return AuditInputs(y_true=None, y_pred=None, y_score=None, sample_weight=None, sensitive=None, data=data,
                               inputs=inputs, tables=scan)
        return AuditInputs(y_true=kept["y_true"], y_pred=kept["y_pred"], y_score=kept["y_score"],
                           sample_weight=kept["sample_weight"], sensitive=kept["sensitive"], data=data, inputs=inputs)


# ------------------------------------------------------------------------------------------ baseline model
@dataclass(frozen=True)
class BaselineTask:
    """The scikit-learn baseline (``model.kind: logistic_regression``) on a data set."""

    dataset: datasets.Dataset
    sensitive: list[str]
    features: list[str] | None
    include_sensitive: bool
    test_size: float
    seed: int
    threshold: float

    @property
    def seeds(self) -> dict[str, int]:
        return {"model": self.seed}

    def audit_inputs(self, *, progress: Progress | None = None) -> AuditInputs:
        """Train the baseline on one split and predict the other."""
        from fairprompt.models.tabular_baseline import train_and_predict

        ds = self.dataset
        if progress:
            progress("training the baseline model", 0, 1)
        predicted = train_and_predict(
            frame=ds.frame, y=ds.y, label=ds.label, sensitive=self.sensitive, features=self.features,
            include_sensitive=self.include_sensitive, test_size=self.test_size, seed=self.seed, threshold=self.threshold,
        )
        if progress:
            progress("training the baseline model", 1, 1)
        return AuditInputs(
            y_true=predicted.y_true, y_pred=predicted.y_pred, y_score=predicted.y_score, sample_weight=None,
            sensitive=predicted.frame[self.sensitive],
            data=_data_block(ds, self.sensitive, threshold=self.threshold,
                             split=f"held-out test split ({self.test_size:.0%})"),
            inputs=_data_input(ds), model=predicted.description, row_ids=predicted.rows, threshold=self.threshold,
        )


# ------------------------------------------------------------------------------------------- frozen models
@dataclass(frozen=True)
class _ModelTask:
    """What a frozen-model task shares: the data set, its sensitive columns, labels, splits and prediction settings."""

    dataset: datasets.Dataset
    sensitive: list[str]
    y: np.ndarray
    splits: Splits
    threshold: float  # predict favourable where P(favourable) >= threshold
    batch_size: int   # prediction batch size

    def _audit_inputs(self, *, score: np.ndarray, description: dict[str, Any]) -> AuditInputs:
        test = self.splits.test
        y_test = self.y[test]
        y_pred = (score >= self.threshold).astype(np.int8)
        description |= {"test_accuracy": float((y_pred == y_test).mean()), "test_auc": auc_or_none(y_test, score)}
        test_frame = self.dataset.frame.iloc[test].reset_index(drop=True)
        return AuditInputs(
            y_true=y_test, y_pred=y_pred, y_score=score, sample_weight=None, sensitive=test_frame[self.sensitive],
            data=_data_block(self.dataset, self.sensitive, threshold=self.threshold,
                             split=f"test split ({test.size:,} rows): {self.splits.rule}"),
            inputs=_data_input(self.dataset), model=description,
        )


@dataclass(frozen=True)
class TextTask(_ModelTask):
    """A frozen_text spec resolved against its data: texts, labels, splits and task-prompt settings."""

    texts: list[str] = field(default_factory=list)
    text_info: dict[str, Any] = field(default_factory=dict)
    settings: TaskPromptSettings | None = None  # None: task_prompt none (a trained classifier used as it is)
    backbone: str = "all-MiniLM-L6-v2"
    max_length: int = 128
    split_seed: int = 0
    training_seed: int = 0
    counterfactual: CounterfactualTask | None = None

    @property
    def seeds(self) -> dict[str, int]:
        return {"split": self.split_seed, "training": self.training_seed}

    def counterfactual_audit(self, model: Any) -> dict[str, Any] | None:
        """The counterfactual audit of the test texts (``audit.counterfactual``) as results.json records it."""
        if self.counterfactual is None:
            return None
        return self.counterfactual.run(
            texts=self.pick(self.splits.test), threshold=self.threshold, score_name="P(favourable)",
            score=lambda texts: model.predict_proba(model.encode(texts), batch_size=self.batch_size)[:, 1])

    def pick(self, rows: np.ndarray) -> list[str]:
        """The texts of data-set rows ``rows``."""
        return [self.texts[i] for i in rows]

    def task_prompt_key(self) -> str:
        """The cache key of the task prompt this spec trains (no training happens here)."""
        from fairprompt.models.adapt import task_prompt_key

        s = self.splits
        return task_prompt_key(settings=self.settings, train_texts=self.pick(s.train), train_labels=self.y[s.train],
                               validation_texts=self.pick(s.validation), validation_labels=self.y[s.validation])

    def load_model(self, *, progress: Progress | None = None, use_cache: bool = True,
                   use_shipped: bool = True) -> tuple[Any, dict[str, Any]]:
        """The frozen text classifier (task prompt tuned once and cached, or a trained classifier) and its
        training record."""
        from fairprompt.models.adapt import task_text_classifier
        from fairprompt.models.text import FrozenTextClassifier

        splits, y = self.splits, self.y
        if self.settings is None:
            model = FrozenTextClassifier.from_trained_classifier(path=self.backbone, max_length=self.max_length)
            training: dict[str, Any] = {"source": "trained classifier used as it is (task_prompt: none)"}
        else:
            model, training = task_text_classifier(
                settings=self.settings, train_texts=self.pick(splits.train), train_labels=y[splits.train],
                validation_texts=self.pick(splits.validation), validation_labels=y[splits.validation],
                use_cache=use_cache, use_shipped=use_shipped, progress=progress,
            )
        if model.num_labels != 2:
            raise FairpromptError(f"classifier {self.backbone!r} has {model.num_labels} labels; fairprompt audits "
                                  "binary classifiers")
        return model, training

    def split_rows(self, model: Any, positions: np.ndarray) -> Any:
        """Data-set rows ``positions`` as the model reads them (tokenized, with their labels)."""
        return model.encode(self.pick(positions), labels=self.y[positions])

    def predict(self, model: Any, rows: Any, *, progress: Progress | None = None) -> np.ndarray:
        """P(favourable) of ``model`` (the task's model or a repaired copy) for ``rows``, in row order."""
        return model.predict_proba(rows, batch_size=self.batch_size, progress=progress)[:, 1]

    def audit_inputs(self, *, model: Any, training: dict[str, Any], progress: Progress | None = None) -> AuditInputs:
        """The model's predictions on the test split, with its description."""
        from fairprompt.models.tabular_baseline import reference_scores

        splits = self.splits
        score = self.predict(model, self.split_rows(model, splits.test), progress=progress)
        description = model.describe() | {"text": self.text_info, "splits": splits.describe(), "training": training,
                                          "threshold": self.threshold}
        inputs = self._audit_inputs(score=score, description=description)
        if "text_columns" in self.text_info:  # rows written as text: a tabular reference model on the same columns
            assert inputs.model is not None
            inputs.model["reference"] = reference_scores(
                frame=self.dataset.frame, y=self.y, train=splits.train, test=splits.test,
                features=self.text_info["text_columns"], threshold=self.threshold, model_decisions=inputs.y_pred,
            )
        return inputs


@dataclass(frozen=True)
class ImageTask(_ModelTask):
    """A frozen_image spec resolved against its data: images, labels, groups and splits."""

    images: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 3), dtype=np.uint8))
    generated: Any = None  # the colored_digits generator output (for the fixture), or None
    backbone: str = "fixture"
    epochs: int = 8
    seed: int = 0
    data_seed: int = 0

    @property
    def seeds(self) -> dict[str, int]:
        return {"data": self.data_seed, "training": self.seed}

    def rows(self, positions: np.ndarray) -> ImageRows:
        """Data-set rows ``positions`` as images with their labels."""
        from fairprompt.models.image import ImageRows

        return ImageRows(self.images[positions], self.y[positions])

    def split_rows(self, model: Any, positions: np.ndarray) -> ImageRows:
        """Data-set rows ``positions`` as the model reads them (any image model reads the same rows)."""
        return self.rows(positions)

    def load_model(self, *, progress: Progress | None = None, use_cache: bool = True,
                   use_shipped: bool = True) -> tuple[Any, dict[str, Any]]:
        """The frozen image classifier (the fixture, trained once and cached, or a saved one) and its record."""
        from fairprompt.models.image import load_classifier
        from fairprompt.models.image_fixture import fixture_classifier

        if self.backbone == "fixture":
            if self.generated is None:
                raise FairpromptError("backbone 'fixture' is trained on colored_digits only; for your images give "
                                      "model.backbone, a directory written by fairprompt.models.image.save_classifier")
            return fixture_classifier(data=self.generated, seed=self.seed, epochs=self.epochs, cache=use_cache,
                                      progress=progress)
        if not Path(self.backbone).is_dir():
            raise FairpromptError(f"image backbone '{self.backbone}' is not a directory; give 'fixture' or a folder "
                                  "written by save_classifier")
        return load_classifier(directory=self.backbone), {"source": f"loaded from {self.backbone}"}

    def predict(self, model: Any, rows: ImageRows, *, progress: Progress | None = None) -> np.ndarray:
        """P(favourable) of ``model`` (the task's model or a triggered copy) for ``rows``, in row order."""
        return model.predict_proba(images=rows.images, batch_size=self.batch_size, device="cpu", progress=progress)[:, 1]

    def audit_inputs(self, *, model: Any, training: dict[str, Any], progress: Progress | None = None) -> AuditInputs:
        """The model's predictions on the test split (through the Accelerate predictor), with its description."""
        import torch

        from fairprompt.models.training import predict_logits

        splits = self.splits
        logits = predict_logits(model=model, forward=lambda net, batch: net(batch["images"]),
                                data=self.rows(splits.test), batch_size=self.batch_size, progress=progress,
                                description="predicting the test images")
        score = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()[:, 1].astype(np.float64)
        parameters = training.get("parameters") or sum(p.numel() for p in model.backbone.parameters())
        description = {
            "kind": "frozen_image", "backbone": self.backbone, "backbone_sha256": model.backbone_sha256,
            "architecture": training.get("architecture") or getattr(model, "architecture", None),
            "backbone_parameters": int(parameters), "trainable_parameters": 0, "input_size": training.get("input_size"),
            "splits": splits.describe(), "training": training, "threshold": self.threshold,
        }
        return self._audit_inputs(score=score, description=description)


ModelTask = TextTask | ImageTask


# ------------------------------------------------------------------------------------------ from the spec
def _input_file(spec: Spec, value: str, *, key: str) -> str:
    """A file or folder the spec names under ``key``, resolved from the spec file's folder
    (:meth:`~fairprompt.spec.Spec.input_path`); one that is not there is an error naming the spec, the key and
    where it was looked for (other paths get the reader's own error)."""
    resolved = spec.input_path(value)
    relative = spec.folder is not None and not value.startswith("~") and not Path(value).is_absolute()
    if relative and not Path(resolved).exists() and not glob.has_magic(value) and "://" not in value:
        raise FairpromptError(f"spec {spec.file}: {key} '{value}' does not exist in the spec's folder (looked for "
                              f"'{resolved}'); relative paths in a spec start from the spec file's folder, so fix the path")
    return resolved


def _dataset_path(spec: Spec, value: str) -> str:
    """``data.dataset``: an embedded or generated name as it is, else a file resolved from the spec's folder (a
    bare word found nowhere is passed on as it is, for the loader's did-you-mean)."""
    if value in datasets.NAMES or value in datasets.GENERATED_NAMES:
        return value
    resolved = spec.input_path(value)
    if Path(resolved).exists() or Path(value).suffix or "/" in value or "\\" in value:
        return _input_file(spec, value, key="data.dataset")
    return value


def _backbone_path(spec: Spec, value: str, *, kind: str) -> str:
    """``model.backbone``: the embedded names (all-MiniLM-L6-v2, the image ``fixture``) as they are; a local
    directory resolved from the spec's folder when it is there or is written as a path (``./my-model``, or any
    image backbone); else as written (a hub id)."""
    from fairprompt.models.backbones import is_default_alias

    if (kind == "frozen_text" and is_default_alias(value)) or (kind == "frozen_image" and value == "fixture"):
        return value
    resolved = spec.input_path(value)
    if kind == "frozen_image" or Path(resolved).exists() or value.startswith(("./", "../", ".\\", "..\\")):
        return _input_file(spec, value, key="model.backbone")
    return value


def _sensitive(spec: Spec, ds: datasets.Dataset, *, name: str) -> list[str]:
    sensitive = list(spec.audit.sensitive or ds.sensitive)
    if not sensitive:
        raise FairpromptError(f"no sensitive columns for {name}; set audit.sensitive in the spec")
    _require_columns(ds.frame, sensitive, source=ds.source, role="sensitive")
    check_reference(ds.frame[sensitive], spec.audit.reference)  # before any training, not after
    return sensitive


def _load_data(spec: Spec) -> tuple[datasets.Dataset, list[str]]:
    d = spec.data
    assert d is not None
    ds = datasets.load(_dataset_path(spec, d.dataset), label=d.label, favourable_label=d.positive_label, sensitive=d.sensitive,
                       **({"options": d.options} if d.options else {}))
    if ds.label is None:
        raise FairpromptError(f"data set {d.dataset!r} has no label column; set data.label in the spec")
    if ds.favourable_label is None and not set(pd.unique(ds.frame[ds.label].dropna())) <= {0, 1}:
        raise FairpromptError(f"data set {d.dataset!r} has no favourable label; set data.positive_label in the spec")
    return ds, _sensitive(spec, ds, name=repr(d.dataset))


def _splits(s: SplitSpec, ds: datasets.Dataset) -> Splits:
    from fairprompt.datasets.splits import make_splits

    return make_splits(frame=ds.frame, y=ds.y, column=s.column, train=s.train, validation=s.validation, test=s.test,
                       seed=s.seed, final=s.final, source=ds.source)


def model_texts(t: TextSpec, ds: datasets.Dataset, sensitive: list[str], *,
                split_column: str | None) -> tuple[list[str], dict[str, Any]]:
    """What the language model reads for every row of the data set (``t``: the spec's ``model.text``), and how it
    was made."""
    from fairprompt.models.tabular_text import rows_to_text

    frame = ds.frame
    if t.column is not None:
        _require_columns(frame, [t.column], source=ds.source, role="text")
        values = frame[t.column]
        if values.isna().any():
            raise FairpromptError(f"text column {t.column!r} of {ds.source} has {int(values.isna().sum())} missing "
                                  "values; fill or drop them")
        texts = values.astype(str).tolist()
        return texts, {"text_column": t.column, "example": texts[0] if texts else ""}
    excluded = {ds.label, split_column, *t.exclude} | (set() if t.include_sensitive else set(sensitive))
    _require_columns(frame, t.exclude, source=ds.source, role="excluded")
    if t.columns is not None:
        columns = list(t.columns)
        _require_columns(frame, columns, source=ds.source, role="text")
        leaked = [c for c in columns if c in sensitive and not t.include_sensitive]
        if leaked:
            raise FairpromptError(f"text column {leaked[0]!r} is sensitive; remove it from model.text.columns or set "
                                  "model.text.include_sensitive")
        if ds.label in columns:
            raise FairpromptError(f"text column {ds.label!r} is the label; remove it from model.text.columns")
    else:
        columns = [c for c in frame.columns if c not in excluded]
    texts = rows_to_text(frame, columns=columns, source=ds.source)
    return texts, {"text_columns": columns, "sensitive_in_text": bool(t.include_sensitive),
                   "example": texts[0] if texts else ""}


def _text_task(spec: Spec, m: FrozenTextSpec) -> TextTask:
    from fairprompt.models.adapt import TaskPromptSettings
    from fairprompt.models.training import TrainConfig

    ds, sensitive = _load_data(spec)
    texts, text_info = model_texts(m.text, ds, sensitive, split_column=m.splits.column)
    splits = _splits(m.splits, ds)
    settings = None
    backbone = _backbone_path(spec, m.backbone, kind=m.kind)
    if m.task_prompt != "none":
        t = m.training
        settings = TaskPromptSettings(
            backbone=backbone, tokens=m.task_prompt.tokens, init=m.task_prompt.init, init_text=m.task_prompt.init_text,
            max_length=m.text.max_length,
            training=TrainConfig(max_epochs=t.max_epochs, patience=t.patience, batch_size=t.batch_size, lr=t.lr,
                                 head_lr=t.head_lr, seed=t.seed),
        )
    return TextTask(dataset=ds, sensitive=sensitive, y=ds.y, splits=splits, threshold=m.threshold,
                    batch_size=m.batch_size, texts=texts, text_info=text_info, settings=settings, backbone=backbone,
                    max_length=m.text.max_length, split_seed=m.splits.seed, training_seed=m.training.seed,
                    counterfactual=counterfactual_task(spec, text_info, [texts[i] for i in splits.test]))


def _keyword_names(function: Callable[..., Any]) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _image_data(spec: Spec, progress: Progress | None) -> tuple[datasets.Dataset, np.ndarray, Any]:
    """(Dataset, uint8 images, generator data or None) for a frozen_image spec."""
    d = spec.data
    assert d is not None
    if d.images is None:
        if d.dataset != "colored_digits":
            raise FairpromptError(f"a frozen_image model needs images: use dataset colored_digits, or give data.images "
                                  f"for the table {d.dataset!r}")
        from fairprompt.datasets import colored_digits

        known = set(_keyword_names(colored_digits.generate))
        for key in d.options:
            if key not in known:
                raise FairpromptError(f"unknown option {key!r} for generated data set 'colored_digits'"
                                      f"{did_you_mean(key, known)}")
        generated = colored_digits.generate(**d.options)
        return generated.as_dataset(), generated.images, generated
    from fairprompt.datasets.images import load_image_folder

    i = d.images
    root = None if i.root is None else _input_file(spec, i.root, key="data.images.root")
    table = load_image_folder(metadata=_dataset_path(spec, d.dataset), root=root, path_column=i.path_column,
                              label_column=d.label or "label", sensitive=d.sensitive or spec.audit.sensitive or (),
                              favourable_label=d.positive_label,
                              image_size=i.image_size, progress=progress)
    ds = datasets.Dataset(name=table.name or "images", frame=table.frame, label=table.label,
                          favourable_label=table.favourable_label, sensitive=table.sensitive, source=table.source,
                          sha256=table.sha256, description=f"images listed in {table.source}")
    return ds, table.images(), None


def _image_task(spec: Spec, m: FrozenImageSpec, progress: Progress | None) -> ImageTask:
    ds, images, generated = _image_data(spec, progress)
    sensitive = _sensitive(spec, ds, name=ds.source)
    backbone = _backbone_path(spec, m.backbone, kind=m.kind)
    return ImageTask(dataset=ds, sensitive=sensitive, y=ds.y, splits=_splits(m.splits, ds), threshold=m.threshold,
                     batch_size=m.batch_size, images=images, generated=generated, backbone=backbone, epochs=m.epochs,
                     seed=m.seed, data_seed=int(spec.data.options.get("seed", 0)) if spec.data else 0)


Task = PredictionsTask | BaselineTask | TextTask | ImageTask | DecisionTask


def load_task(spec: Spec, *, progress: Progress | None = None) -> Task:
    """The spec's task, with its data loaded and checked (columns, reference groups, splits) before any model is
    built or anything is written.  Relative input paths (``predictions.path``, a ``data.dataset`` file,
    ``data.images.root``, a local ``model.backbone``) start from the spec file's folder."""
    if spec.predictions is not None:
        p = spec.predictions
        return PredictionsTask(path=_input_file(spec, p.path, key="predictions.path"), label=p.label,
                               prediction=p.prediction, score=p.score, weight=p.weight, positive_label=p.positive_label,
                               score_threshold=p.score_threshold, sensitive=list(spec.audit.sensitive or []),
                               drop_missing=p.drop_missing, score_scale=p.score_scale, exact_rows=p.exact_rows,
                               engine=p.engine, spark_master=p.spark_master)
    m = spec.model
    assert m is not None
    if m.kind == "frozen_text":
        return _text_task(spec, m)
    if m.kind == "frozen_image":
        return _image_task(spec, m, progress)
    if m.kind == "causal_lm":
        from fairprompt.models.causal_lm_source import SMOLLM2_ALIASES

        backbone = None if m.backbone.lower() in SMOLLM2_ALIASES else _backbone_path(spec, m.backbone, kind=m.kind)
        return decision_task(spec, m, backbone=backbone)
    ds, sensitive = _load_data(spec)
    return BaselineTask(dataset=ds, sensitive=sensitive, features=m.features, include_sensitive=m.include_sensitive,
                        test_size=m.test_size, seed=m.seed, threshold=m.threshold)


# ------------------------------------------------------------------------------------------ repairs
@dataclass(frozen=True)
class Repair:
    """One of the spec's mitigations, resolved: its method, config, the sensitive column whose gap it repairs,
    and its settings as results.json records them."""

    method: RepairMethod
    config: Any
    group: str
    settings: dict[str, Any]
    seed: int

    @property
    def name(self) -> str:
        return self.method.name


def load_repairs(spec: Spec, task: ModelTask) -> list[Repair]:
    """The spec's mitigations against ``task``: each one's group (its ``group``, else the first sensitive column)
    and the method's checks on the data, before any model is built."""
    from fairprompt.mitigation.registry import method

    out = []
    for index, m in enumerate(spec.mitigations):
        group = m.group or task.sensitive[0]
        key = f"mitigations[{index}].{m.name}"
        if group not in task.sensitive:
            near = did_you_mean(group, task.sensitive)
            raise FairpromptError(f"{key}.group is {group!r}, not a sensitive column of {task.dataset.source} "
                                  f"({', '.join(task.sensitive)}){near}")
        repair = method(m.name)
        config = m.config()
        repair.check_data(task, group=group, config=config, key=key)
        out.append(Repair(method=repair, config=config, group=group, seed=m.seed,
                          settings={k: v for k, v in m.model_dump(mode="json").items() if k != "name"}))
    return out


__all__ = ["AuditInputs", "BaselineTask", "ImageTask", "ModelTask", "PredictionsTask", "Repair", "Task", "TextTask",
           "load_repairs", "load_task", "model_texts"]
