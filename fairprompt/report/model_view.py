"""The Model section: a frozen model's title, facts, held-out scores beside the reference's, and its training curve,
from the typed ``model`` record alone (text and image models; the tabular baseline is shown as key/value pairs)."""

from __future__ import annotations

from dataclasses import dataclass

from fairprompt.report.format import (
    DASH,
    Fact,
    as_text,
    fmt_int,
    fmt_num,
    fmt_seconds,
    fmt_share,
    fmt_signed,
    plural,
    short_hash,
    source_text,
)
from fairprompt.results.model import (
    ImageModel,
    ImageTraining,
    TextModel,
    TextTraining,
    TrainHistoryRecord,
    model_in_words,
    prompt_in_words,
)

STOPPED_BY: dict[str, str] = {
    "max_epochs": "the epoch limit",
    "patience": "early stopping (validation loss stopped improving)",
    "early_stopping": "early stopping (validation loss stopped improving)",
}


@dataclass(frozen=True)
class Score:
    """Held-out performance of one model: this one or the reference trained on the same rows."""

    name: str
    note: str
    train_rows: int | None
    test_rows: int | None
    accuracy: float | None
    auc: float | None

    @property
    def accuracy_text(self) -> str:
        return fmt_num(self.accuracy)

    @property
    def auc_text(self) -> str:
        return fmt_num(self.auc)


@dataclass(frozen=True)
class TrainingCurve:
    """Per-epoch series of a training run (``None`` where an epoch lacks a value)."""

    epochs: tuple[int, ...]
    train_loss: tuple[float | None, ...]
    val_loss: tuple[float | None, ...]
    train_accuracy: tuple[float | None, ...]
    val_accuracy: tuple[float | None, ...]
    best_epoch: int | None

    @property
    def has_loss(self) -> bool:
        return any(v is not None for v in self.train_loss + self.val_loss)

    @property
    def has_accuracy(self) -> bool:
        return any(v is not None for v in self.train_accuracy + self.val_accuracy)


@dataclass(frozen=True)
class ModelView:
    """The model section: a title line, facts, held-out scores beside the reference's, and the training curve."""

    kind: str
    title: str
    facts: tuple[Fact, ...]
    scores: tuple[Score, ...]
    curve: TrainingCurve | None
    raw: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()
    """What a reviewer should know before trusting the model: training that ended in a constant predictor, an
    accuracy clearly below the yardstick's."""

    @property
    def reference(self) -> Score | None:
        return self.scores[1] if len(self.scores) > 1 else None

    @property
    def difference(self) -> tuple[str, str] | None:
        """This model minus the reference, accuracy and AUC, signed (``−0.040``); None without a reference."""
        if len(self.scores) < 2:
            return None
        this, ref = self.scores[0], self.scores[1]
        return fmt_signed(this.accuracy, ref.accuracy), fmt_signed(this.auc, ref.auc)


def history_curve(history: TrainHistoryRecord | None) -> TrainingCurve | None:
    """The curve of a prompt's training history (task prompt, or FairIJ's appended tokens), or None."""
    if history is None or not history.epochs:
        return None
    rows = history.epochs
    curve = TrainingCurve(epochs=tuple(p.epoch for p in rows), train_loss=tuple(p.train_loss for p in rows),
                          val_loss=tuple(p.val_loss for p in rows), train_accuracy=tuple(None for _ in rows),
                          val_accuracy=tuple(p.val_accuracy for p in rows), best_epoch=history.best_epoch)
    return curve if curve.has_loss or curve.has_accuracy else None


def _image_curve(training: ImageTraining) -> TrainingCurve | None:
    rows = training.curve
    if not rows:
        return None
    curve = TrainingCurve(epochs=tuple(p.epoch for p in rows), train_loss=tuple(p.loss for p in rows),
                          val_loss=tuple(None for _ in rows), train_accuracy=tuple(p.train_accuracy for p in rows),
                          val_accuracy=tuple(p.validation_accuracy for p in rows), best_epoch=None)
    return curve if curve.has_loss or curve.has_accuracy else None


def image_source(training: ImageTraining) -> str | None:
    """Where an image classifier's weights came from: ``source``, or the fixture's ``from_cache``."""
    if training.source is not None:
        return training.source
    if training.from_cache is not None:
        return "cache" if training.from_cache else "trained in this run"
    return None


def _parameter_facts(frozen: int | None, trainable: int | None, *, task: int | None, extra: int | None,
                     share: float | None) -> list[Fact]:
    facts = []
    if frozen is not None:
        facts.append(Fact("Backbone parameters", fmt_int(frozen)))
    if trainable is not None:
        total = (frozen or 0) + trainable
        if share is None and total:
            share = trainable / total
        value = fmt_int(trainable) + (f" of {fmt_int(total)} ({fmt_share(share)})" if frozen is not None else "")
        parts = []
        if task is not None:
            parts.append(f"task prompt and head {fmt_int(task)}")
        if extra:
            parts.append(f"fairness prompts {fmt_int(extra)}")
        facts.append(Fact("Trainable parameters", value, note="; ".join(parts), summary=True))
    return facts


def _splits_fact(model: TextModel | ImageModel) -> list[Fact]:
    s = model.splits
    if s is None:
        return []
    parts = [f"{fmt_int(n)} {k}" for k, n in (("train", s.train), ("validation", s.validation), ("test", s.test))
             if n is not None]
    return [Fact("Splits", " · ".join(parts) or DASH, note=s.rule or "", summary=True)]


def _history_facts(history: TrainHistoryRecord | None, curve: TrainingCurve | None) -> list[Fact]:
    facts = []
    if history is not None and history.stopping_rule is not None:
        facts.append(Fact("Stopping rule", history.stopping_rule))
    if history is not None and history.stopped_by is not None:
        stopped = history.stopped_by
        facts.append(Fact("Stopped by", STOPPED_BY.get(stopped, stopped.replace("_", " ")),
                          note=f"({stopped})" if stopped in STOPPED_BY else ""))
    if curve is not None:
        facts.append(Fact("Epochs run", fmt_int(len(curve.epochs))))
    if history is not None and history.best_epoch is not None:
        loss = history.best_val_loss
        facts.append(Fact("Best epoch", str(history.best_epoch),
                          note=(f"validation loss {fmt_num(loss, 4)}; " if loss is not None else "") + "its parameters are kept"))
    if history is not None and history.final_mean_gradient_norm is not None:
        facts.append(Fact("Final mean gradient norm", f"{history.final_mean_gradient_norm:.3g}",
                          note="norm of the mean training-loss gradient at the kept parameters (0 at an exact optimum)"))
    return facts


def _time_fact(seconds: float | None, *, world: int | None, source: str | None) -> list[Fact]:
    if seconds is None:
        return []
    notes = ([plural(world, "process")] if world else []) + (["measured when it was trained"] if source == "cache" else [])
    return [Fact("Training time", fmt_seconds(seconds), note="; ".join(notes), summary=True)]


def _source_fact(kind: str, source: str | None, key: str | None, path: str | None) -> list[Fact]:
    if source is None:
        return []
    return [Fact("Task prompt from" if kind == "frozen_text" else "Trained weights from", source_text(source),
                 note=f"cache key {short_hash(key)}" if key else "", title=path or key or None, summary=True)]


def _scores(model: TextModel | ImageModel, train_rows: int | None) -> tuple[Score, ...]:
    if model.test_accuracy is None and model.test_auc is None:
        return ()
    splits = model.splits
    train_rows = train_rows if train_rows is not None else splits.train if splits else None
    scores = [Score(name="This model", note="the predictions audited here", train_rows=train_rows,
                    test_rows=splits.test if splits else None, accuracy=model.test_accuracy, auc=model.test_auc)]
    ref = model.reference if isinstance(model, TextModel) else None
    if ref is not None:
        scores.append(Score(name="Reference", note=ref.kind or "logistic regression", train_rows=ref.train_rows,
                            test_rows=ref.test_rows, accuracy=ref.test_accuracy, auc=ref.test_auc))
    return tuple(scores)


YARDSTICK_MARGIN = 0.02
"""A model more than this far below the yardstick's accuracy, with the paired interval above 0, gets a note."""


def yardstick_note(m: TextModel) -> str | None:
    """A note when the model is clearly less accurate than the logistic regression on the same rows and columns."""
    ref = m.reference
    if ref is None or ref.accuracy_gap is None or ref.accuracy_gap_ci_low is None:
        return None
    if ref.accuracy_gap <= YARDSTICK_MARGIN or ref.accuracy_gap_ci_low <= 0:
        return None
    return (f"This model's test accuracy is {100 * ref.accuracy_gap:.1f} points below the logistic-regression yardstick's "
            f"on the same rows and columns (paired 95% interval of the gap [{100 * ref.accuracy_gap_ci_low:.1f}, "
            f"{100 * (ref.accuracy_gap_ci_high or ref.accuracy_gap):.1f}] points): the task prompt may be under-trained "
            "(more rows or epochs, another learning rate), and its fairness findings describe a weaker model than the "
            "data allow.")


def _text_view(m: TextModel) -> ModelView:
    training = m.training or TextTraining()
    history = training.history
    curve = history_curve(history)
    adapter = prompt_in_words(m)
    facts: list[Fact] = []
    sha = m.backbone_sha256
    sha_note = f"weights sha256 {short_hash(sha)}" if sha else ""
    if m.backbone is not None:
        facts.append(Fact("Backbone", m.backbone, note=sha_note, title=sha, summary=True))
    elif sha:
        facts.append(Fact("Backbone weights", sha_note, title=sha))
    facts += _parameter_facts(m.backbone_parameters, m.trainable_parameters, task=m.task_adapter_parameters,
                              extra=m.extra_prompt_parameters, share=m.trainable_share)
    statement = ("Nothing is trained: the classifier is audited as it was given, and its weights never change."
                 if m.task_prompt == "none" else
                 "The backbone's weights never change; only the soft prompt and the classification head are trained.")
    facts.append(Fact("Frozen", statement, summary=True))
    if m.task_prompt is not None:
        facts.append(Fact("Task prompt", adapter or "none (trained classifier used as it is)",
                          note="prompt tuning (peft)" if m.task_prompt == "peft" else ""))
    if m.pooling is not None:
        facts.append(Fact("Pooling", m.pooling))
    if m.max_length is not None:
        facts.append(Fact("Input length", f"up to {fmt_int(m.max_length)} tokens", note="longer inputs are truncated"))
    text = m.text
    if text is not None and text.text_columns is not None:
        sensitive = text.sensitive_in_text
        note = ("" if sensitive is None else
                "sensitive columns included in the text" if sensitive else "sensitive columns left out of the text")
        facts.append(Fact("Text columns", plural(len(text.text_columns), "column"), note=note,
                          code=tuple(text.text_columns)))
    elif text is not None and text.text_column is not None:
        facts.append(Fact("Text column", "read as it is", code=(text.text_column,)))
    if text is not None and text.example is not None:
        facts.append(Fact("Example input", "first row of the data, as the model reads it", block=text.example))
    facts += _splits_fact(m)
    facts += _history_facts(history, curve)
    facts += _time_fact(history.seconds if history else None, world=history.world_size if history else None,
                        source=training.source)
    facts += _source_fact(m.kind, training.source, training.cache_key, training.path)
    if m.threshold is not None:
        facts.append(Fact("Decision threshold", f"{m.threshold:g}", note="predicted positive when the score is at least this"))
    train_rows = history.train_rows if history and history.train_rows is not None else training.trained_rows
    notes = [*(history.warnings if history else []), *filter(None, [yardstick_note(m)])]
    return ModelView(kind=m.kind, title=model_in_words(m), facts=tuple(facts), scores=_scores(m, train_rows),
                     curve=curve, raw=tuple((k, as_text(v)) for k, v in m.to_json().items()), notes=tuple(notes))


def _image_view(m: ImageModel) -> ModelView:
    training = m.training or ImageTraining()
    curve = _image_curve(training)
    facts: list[Fact] = []
    architecture = m.architecture or {}
    sha = m.backbone_sha256
    sha_note = f"weights sha256 {short_hash(sha)}" if sha else ""
    if m.backbone is not None:
        facts.append(Fact("Backbone", m.backbone, note=sha_note, title=sha, summary=True))
    elif sha:
        facts.append(Fact("Backbone weights", sha_note, title=sha))
    if architecture:
        details = ", ".join(f"{k} {as_text(v)}" for k, v in architecture.items() if k != "name")
        facts.append(Fact("Architecture", str(architecture.get("name") or m.kind), note=details, summary=m.backbone is None))
    trainable = m.trainable_parameters
    facts += _parameter_facts(m.backbone_parameters, trainable, task=None, extra=None, share=None)
    statement = ("The backbone's weights never change; only prompts (pixel borders or patches) are trained." if trainable
                 else "The classifier's weights never change: it was trained once, then frozen; nothing is trained for "
                      "this audit.")
    facts.append(Fact("Frozen", statement, summary=True))
    if m.input_size:
        facts.append(Fact("Input size", " × ".join(str(s) for s in m.input_size) + " pixels"))
    facts += _splits_fact(m)
    if curve is not None:
        facts.append(Fact("Epochs run", fmt_int(len(curve.epochs))))
    elif training.epochs is not None:
        facts.append(Fact("Epochs run", fmt_int(training.epochs)))
    if training.hyper_parameters:
        facts.append(Fact("Hyper-parameters", ", ".join(f"{k.replace('_', ' ')} {as_text(v)}"
                                                         for k, v in training.hyper_parameters.items())))
    source = image_source(training)
    facts += _time_fact(training.time_s, world=None, source=source)
    facts += _source_fact(m.kind, source, training.cache_key, training.cache_path)
    if m.threshold is not None:
        facts.append(Fact("Decision threshold", f"{m.threshold:g}", note="predicted positive when the score is at least this"))
    return ModelView(kind=m.kind, title=model_in_words(m), facts=tuple(facts), scores=_scores(m, None), curve=curve,
                     raw=tuple((k, as_text(v)) for k, v in m.to_json().items()))


def build_model_view(model: object) -> ModelView | None:
    """The Model section of a frozen text or image model, else None (the tabular baseline, or no model)."""
    if isinstance(model, TextModel):
        return _text_view(model)
    if isinstance(model, ImageModel):
        return _image_view(model)
    return None
