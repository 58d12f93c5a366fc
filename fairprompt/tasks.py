"""Where the audited predictions come from: a predictions file, or a data set and a model.

Each ``prepare_*`` function checks its inputs, gets the model's predictions on
the test rows (training or loading the model as the spec says) and returns an
:class:`AuditInputs`, a plain value that :mod:`fairprompt.pipeline` audits.
Nothing here writes a report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairprompt import datasets
from fairprompt.errors import FairpromptError, did_you_mean
from fairprompt.metrics.audit import check_reference
from fairprompt.metrics.inputs import binarize, scores_array
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
    check_reference(ds.frame[sensitive], spec.audit.reference)  # before any training, not after
    return ds, sensitive


def _data_block(ds, sensitive: list[str], *, prediction: str, split: str) -> dict[str, Any]:
    return {"source": ds.source, "name": ds.name, "label": ds.label, "positive_label": str(ds.favourable_label),
            "prediction": prediction, "score": f"P({ds.label} = {ds.favourable_label})", "weight": None,
            "sensitive": sensitive, "rows": int(len(ds.frame)), "split": split}


def prepare_model(spec: Spec, *, progress: Progress | None = None, use_cache: bool = True,
                  use_shipped: bool = True) -> AuditInputs:
    """Load the data set, get the spec's model (train or load it), predict the test rows."""
    assert spec.model is not None
    if spec.model.kind == "frozen_text":
        return prepare_frozen_text(spec, progress=progress, use_cache=use_cache, use_shipped=use_shipped)
    if spec.model.kind == "frozen_image":
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


@dataclass(frozen=True)
class TextTask:
    """A frozen_text spec resolved against its data: texts, labels, splits and task-prompt settings."""

    dataset: Any
    sensitive: list[str]
    texts: list[str]
    text_info: dict[str, Any]
    y: np.ndarray
    splits: Any
    settings: Any  # TaskPromptSettings, or None for task_prompt: none

    def pick(self, rows: np.ndarray) -> list[str]:
        return [self.texts[i] for i in rows]

    def task_prompt_key(self) -> str:
        """The cache key of the task prompt this spec trains (no training happens here)."""
        from fairprompt.models.adapt import task_prompt_key

        s = self.splits
        return task_prompt_key(settings=self.settings, train_texts=self.pick(s.train), train_labels=self.y[s.train],
                               validation_texts=self.pick(s.validation), validation_labels=self.y[s.validation])


def text_task(spec: Spec) -> TextTask:
    """Load and check everything a frozen_text spec needs before any model is built."""
    from fairprompt.datasets.splits import make_splits
    from fairprompt.models.adapt import TaskPromptSettings
    from fairprompt.models.training import TrainConfig

    m = spec.model
    assert m is not None and m.kind == "frozen_text"
    ds, sensitive = _load_data(spec)
    y = ds.y
    texts, text_info = model_texts(spec, ds, sensitive)
    s = m.splits
    splits = make_splits(frame=ds.frame, y=y, column=s.column, train=s.train, validation=s.validation, test=s.test,
                         seed=s.seed, source=ds.source)
    settings = None
    if m.task_prompt != "none":
        t = m.training
        settings = TaskPromptSettings(
            backbone=m.backbone, tokens=m.task_prompt.tokens, init=m.task_prompt.init, init_text=m.task_prompt.init_text,
            max_length=m.text.max_length,
            training=TrainConfig(max_epochs=t.max_epochs, patience=t.patience, batch_size=t.batch_size, lr=t.lr,
                                 head_lr=t.head_lr, seed=t.seed),
        )
    return TextTask(dataset=ds, sensitive=sensitive, texts=texts, text_info=text_info, y=y, splits=splits, settings=settings)


def repair_groups(spec: Spec, task: Any) -> list[str]:
    """The sensitive column each of the spec's mitigations repairs (its ``group``, else the first sensitive
    column), checked against the data before any model is built."""
    out = []
    for index, m in enumerate(spec.mitigations):
        group = m.group or task.sensitive[0]
        if group not in task.sensitive:
            near = did_you_mean(group, task.sensitive)
            raise FairpromptError(f"mitigations[{index}].{m.name}.group is {group!r}, not a sensitive column of "
                                  f"{task.dataset.source} ({', '.join(task.sensitive)}){near}")
        _check_validation_groups(task, group, measure=m.measure, key=f"mitigations[{index}].{m.name}")
        if m.name == "reprogram":
            _check_tuning_groups(task, group, tuning_split=m.tuning_split, key=f"mitigations[{index}].{m.name}")
        out.append(group)
    return out


def _check_tuning_groups(task: Any, group: str, *, tuning_split: str, key: str) -> None:
    """Every group of the validation and test splits must have members among the rows a trigger trains on."""
    frame, splits = task.dataset.frame, task.splits
    tuning = splits.train if tuning_split == "train" else splits.validation
    have = set(frame[group].iloc[tuning].dropna().astype(str))
    for name, rows in (("validation", splits.validation), ("test", splits.test)):
        for value in sorted(set(frame[group].iloc[rows].dropna().astype(str))):
            if value not in have:
                raise FairpromptError(
                    f"{group!r} group {value!r} (in the {name} split) has no members in the tuning split "
                    f"({tuning_split}, {tuning.size} rows) of {task.dataset.source}, so {key} cannot learn about it; "
                    "use another tuning_split or group, or larger splits")


def _check_validation_groups(task: TextTask, group: str, *, measure: str, key: str) -> None:
    """The validation rows must give the fairness gap a meaning: no missing group, two groups or more,
    and (equal opportunity, equalized odds) every group with favourable (and unfavourable) rows."""
    values = task.dataset.frame[group].iloc[task.splits.validation]
    where = f"the validation split ({values.size} rows) of {task.dataset.source}"
    if values.isna().any():
        raise FairpromptError(f"sensitive column {group!r} has {int(values.isna().sum())} missing values in {where}; "
                              f"{key} needs a group for every validation row: fill them, or choose another group")
    present = pd.unique(values.astype(str))
    if present.size < 2:
        raise FairpromptError(f"{where} has a single {group!r} group ({present[0]!r}); {key} needs two groups or more: "
                              "use a larger validation split, or another group")
    labels = task.y[task.splits.validation]
    needed = {"demographic_parity": (), "equal_opportunity": (1,), "equalized_odds": (1, 0)}[measure]
    for label in needed:
        have = set(values[labels == label].astype(str))
        lacking = [g for g in present if g not in have]
        if lacking:
            what = "favourable" if label == 1 else "unfavourable"
            raise FairpromptError(f"{group!r} group {lacking[0]!r} has no {what} rows in {where}, so {measure} is "
                                  f"undefined for {key}; use a larger validation split or measure demographic_parity")


def text_model(spec: Spec, task: TextTask, *, progress: Progress | None = None, use_cache: bool = True,
               use_shipped: bool = True) -> tuple[Any, dict[str, Any]]:
    """The spec's frozen text classifier (task prompt tuned once and cached, or a trained classifier) and its
    training record."""
    from fairprompt.models.adapt import task_text_classifier
    from fairprompt.models.text import FrozenTextClassifier

    m = spec.model
    assert m is not None and m.kind == "frozen_text"
    splits, y = task.splits, task.y
    if task.settings is None:
        model = FrozenTextClassifier.from_trained_classifier(path=m.backbone, max_length=m.text.max_length)
        training: dict[str, Any] = {"source": "trained classifier used as it is (task_prompt: none)"}
    else:
        model, training = task_text_classifier(
            settings=task.settings, train_texts=task.pick(splits.train), train_labels=y[splits.train],
            validation_texts=task.pick(splits.validation), validation_labels=y[splits.validation],
            use_cache=use_cache, use_shipped=use_shipped, progress=progress,
        )
    if model.num_labels != 2:
        raise FairpromptError(f"classifier {m.backbone!r} has {model.num_labels} labels; fairprompt audits binary classifiers")
    return model, training


def prepare_frozen_text(spec: Spec, *, progress: Progress | None = None, use_cache: bool = True,
                        use_shipped: bool = True, task: TextTask | None = None,
                        loaded: tuple[Any, dict[str, Any]] | None = None) -> AuditInputs:
    """Frozen encoder + task prompt (tuned once, cached), predictions on the test split.

    ``task`` and ``loaded`` (the model and its training record from :func:`text_model`) are reused when
    given, so that a caller that needs the model afterwards (the mitigations) builds it once.
    """
    from fairprompt.models.tabular_baseline import reference_scores

    m = spec.model
    assert m is not None and m.kind == "frozen_text"
    task = task if task is not None else text_task(spec)
    ds, y, splits, sensitive, text_info = task.dataset, task.y, task.splits, task.sensitive, task.text_info
    model, training = loaded if loaded is not None else text_model(spec, task, progress=progress, use_cache=use_cache,
                                                                    use_shipped=use_shipped)
    test_rows = model.encode(task.pick(splits.test), labels=y[splits.test])
    score = model.predict_proba(test_rows, batch_size=m.batch_size, progress=progress)[:, 1]
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




class ImageRows:
    """uint8 images [N, H, W, C] with labels, as a ``BatchSource`` for Accelerate prediction."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def lengths(self) -> np.ndarray:
        return np.zeros(len(self), dtype=np.int64)

    def collate(self, indices: Sequence[int]) -> dict[str, Any]:
        import torch

        from fairprompt.models.image import images_to_tensor

        index = np.asarray(indices, dtype=np.int64)
        return {"images": images_to_tensor(self.images[index]), "labels": torch.as_tensor(self.labels[index]),
                "weights": torch.ones(index.size), "index": torch.as_tensor(index)}


def _image_data(spec: Spec, progress: Progress | None):
    """(Dataset, uint8 images, generator data or None) for a frozen_image spec."""
    d = spec.data
    assert d is not None
    if d.images is None:
        if d.dataset != "colored_digits":
            raise FairpromptError(
                f"a frozen_image model needs images: use dataset colored_digits, or give data.images for the table {d.dataset!r}"
            )
        from fairprompt.datasets import colored_digits

        known = set(_keyword_names(colored_digits.generate))
        for key in d.options:
            if key not in known:
                raise FairpromptError(f"unknown option {key!r} for generated data set 'colored_digits'{did_you_mean(key, known)}")
        generated = colored_digits.generate(**d.options)
        return generated.as_dataset(), generated.images, generated
    from fairprompt.datasets.images import load_image_folder

    i = d.images
    table = load_image_folder(metadata=d.dataset, root=i.root, path_column=i.path_column, label_column=d.label or "label",
                              sensitive=d.sensitive or spec.audit.sensitive or (), favourable_label=d.positive_label,
                              image_size=i.image_size, progress=progress)
    ds = datasets.Dataset(name=table.name or "images", frame=table.frame, label=table.label, favourable_label=table.favourable_label,
                          sensitive=table.sensitive, source=table.source, sha256=table.sha256,
                          description=f"images listed in {table.source}")
    return ds, table.images(), None


def _keyword_names(function: Callable[..., Any]) -> list[str]:
    import inspect

    return [p.name for p in inspect.signature(function).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


@dataclass(frozen=True)
class ImageTask:
    """A frozen_image spec resolved against its data: images, labels, groups and splits."""

    dataset: Any
    images: np.ndarray
    generated: Any  # the colored_digits generator output (for the fixture), or None
    sensitive: list[str]
    y: np.ndarray
    splits: Any

    def rows(self, positions: np.ndarray) -> ImageRows:
        return ImageRows(self.images[positions], self.y[positions])


def image_task(spec: Spec, *, progress: Progress | None = None) -> ImageTask:
    """Load and check everything a frozen_image spec needs before any model is built."""
    from fairprompt.datasets.splits import make_splits

    m = spec.model
    assert m is not None and m.kind == "frozen_image"
    ds, images, generated = _image_data(spec, progress)
    sensitive = list(spec.audit.sensitive or ds.sensitive)
    if not sensitive:
        raise FairpromptError(f"no sensitive columns for {ds.source}; set audit.sensitive in the spec")
    _require_columns(ds.frame, sensitive, source=ds.source, role="sensitive")
    check_reference(ds.frame[sensitive], spec.audit.reference)
    y = ds.y
    s = m.splits
    splits = make_splits(frame=ds.frame, y=y, column=s.column, train=s.train, validation=s.validation, test=s.test,
                         seed=s.seed, source=ds.source)
    return ImageTask(dataset=ds, images=images, generated=generated, sensitive=sensitive, y=y, splits=splits)


def image_model(spec: Spec, task: ImageTask, *, progress: Progress | None = None,
                use_cache: bool = True) -> tuple[Any, dict[str, Any]]:
    """The spec's frozen image classifier (the fixture, trained once and cached, or a saved one) and its record."""
    from fairprompt.models.image import fixture_classifier, load_classifier

    m = spec.model
    assert m is not None and m.kind == "frozen_image"
    if m.backbone == "fixture":
        if task.generated is None:
            raise FairpromptError("backbone 'fixture' is trained on colored_digits only; for your images give model.backbone, "
                                  "a directory written by fairprompt.models.image.save_classifier")
        return fixture_classifier(data=task.generated, seed=m.seed, epochs=m.epochs, cache=use_cache, progress=progress)
    from pathlib import Path

    if not Path(m.backbone).is_dir():
        raise FairpromptError(f"image backbone '{m.backbone}' is not a directory; give 'fixture' or a folder written by save_classifier")
    return load_classifier(directory=m.backbone), {"source": f"loaded from {m.backbone}"}


def prepare_frozen_image(spec: Spec, *, progress: Progress | None = None, use_cache: bool = True,
                         task: ImageTask | None = None, loaded: tuple[Any, dict[str, Any]] | None = None) -> AuditInputs:
    """A frozen image classifier (the fixture, trained once and cached, or a saved one), predicting the test split.

    ``task`` and ``loaded`` (from :func:`image_task` and :func:`image_model`) are reused when given.
    """
    from fairprompt.models.training import predict_logits

    m = spec.model
    assert m is not None and m.kind == "frozen_image"
    task = task if task is not None else image_task(spec, progress=progress)
    ds, y, splits, sensitive = task.dataset, task.y, task.splits, task.sensitive
    model, training = loaded if loaded is not None else image_model(spec, task, progress=progress, use_cache=use_cache)
    test = splits.test
    logits = predict_logits(model=model, forward=lambda net, batch: net(batch["images"]),
                            data=task.rows(test), batch_size=m.batch_size, progress=progress,
                            description="predicting the test images")
    import torch

    score = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()[:, 1].astype(np.float64)
    y_test = y[test]
    y_pred = (score >= m.threshold).astype(np.int8)
    parameters = training.get("parameters") or sum(p.numel() for p in model.backbone.parameters())
    description = {
        "kind": "frozen_image", "backbone": m.backbone, "backbone_sha256": model.backbone_sha256,
        "architecture": training.get("architecture") or getattr(model, "architecture", None),
        "backbone_parameters": int(parameters), "trainable_parameters": 0, "input_size": training.get("input_size"),
        "splits": splits.describe(), "training": training, "threshold": m.threshold,
        "test_accuracy": float((y_pred == y_test).mean()), "test_auc": _auc(y_test, score),
    }
    test_frame = ds.frame.iloc[test].reset_index(drop=True)
    return AuditInputs(
        y_true=y_test, y_pred=y_pred, y_score=score, sample_weight=None, sensitive=test_frame[sensitive],
        data=_data_block(ds, sensitive, prediction=f"P({ds.label} = {ds.favourable_label}) >= {m.threshold}",
                         split=f"test split ({test.size:,} rows): {splits.rule}"),
        inputs=[{"role": "data", "path": ds.source, "sha256": ds.sha256, "rows": int(len(ds.frame))}],
        model=description,
    )
