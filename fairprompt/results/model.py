"""The ``model`` part of the record: what produced the audited predictions, one record type per model kind.

``kind`` tells them apart: ``frozen_text`` (a frozen text encoder adapted by a soft prompt and a head, or a
trained classifier used as it is), ``frozen_image`` (a frozen image classifier) and ``logistic_regression``
(the scikit-learn baseline on a table). :data:`MODEL_KINDS` is the one list of kinds (the spec's ``model.kind``
takes the same), and :func:`model_in_words` the one way a report names a model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import Field

from fairprompt.results.base import Real, Record


class TextInput(Record):
    """What a text model reads: a text column as it is, or table columns written as text."""

    text_column: str | None = None
    text_columns: list[str] | None = None
    sensitive_in_text: bool | None = None
    example: str | None = None


class SplitSizes(Record):
    """Rows per split, and the draw in words."""

    train: int | None = None
    validation: int | None = None
    test: int | None = None
    final: int | None = None
    rule: str | None = None
    seed: int | None = None


class EpochRecord(Record):
    """One epoch of prompt training."""

    epoch: int
    train_loss: Real | None = None
    val_loss: Real | None = None
    val_accuracy: Real | None = None
    val_positive_share: Real | None = None
    mean_batch_grad_norm: Real | None = None
    seconds: Real | None = None


class TrainHistoryRecord(Record):
    """How a prompt (and head) was trained (:class:`fairprompt.models.training.TrainHistory`)."""

    epochs: list[EpochRecord] = Field(default_factory=list)
    stopped_by: str | None = None
    stopping_rule: str | None = None
    best_epoch: int | None = None
    best_val_loss: Real | None = None
    final_mean_gradient_norm: Real | None = None
    seconds: Real | None = None
    train_rows: int | None = None
    validation_rows: int | None = None
    world_size: int | None = None
    warnings: list[str] = Field(default_factory=list)


class TextTraining(Record):
    """Where a text model's task prompt came from (``source``: trained in this run, the cache, or shipped with
    fairprompt), and how it was trained; a trained classifier used as it is has only ``source``."""

    history: TrainHistoryRecord | None = None
    trained_rows: int | None = None
    validation_rows: int | None = None
    source: str | None = None
    cache_key: str | None = None
    path: str | None = None


class ImageEpoch(Record):
    """One epoch of the image fixture's training."""

    epoch: int
    loss: Real | None = None
    train_accuracy: Real | None = None
    validation_accuracy: Real | None = None


class ImageTraining(Record):
    """How a frozen image classifier was made: the colored-digits fixture (trained once, cached), or a saved
    classifier loaded from a folder (``source`` only)."""

    source: str | None = None
    architecture: dict[str, Any] | None = None
    input_size: list[int] | None = None
    parameters: int | None = None
    epochs: int | None = None
    hyper_parameters: dict[str, Any] | None = None
    seed: int | None = None
    final_train_accuracy: Real | None = None
    final_validation_accuracy: Real | None = None
    curve: list[ImageEpoch] = Field(default_factory=list)
    time_s: Real | None = None
    cache_key: str | None = None
    data_sha256: str | None = None
    torch: str | None = None
    threads: int | None = None
    backbone_sha256: str | None = None
    from_cache: bool | None = None
    load_time_s: Real | None = None
    cache_path: str | None = None


class ReferenceScores(Record):
    """The yardstick beside a frozen model: a logistic regression on the same training rows and columns."""

    kind: str | None = None
    train_rows: int | None = None
    test_rows: int | None = None
    test_accuracy: Real | None = None
    test_auc: Real | None = None
    accuracy_gap: Real | None = None
    """The yardstick's test accuracy minus the model's, on the same rows."""
    accuracy_gap_ci_low: Real | None = None
    accuracy_gap_ci_high: Real | None = None
    accuracy_gap_ci: str | None = None
    """How the interval of ``accuracy_gap`` was computed."""


class TextModel(Record):
    """A frozen text encoder + soft task prompt and head (``task_prompt: peft``), or a trained sequence
    classifier used as it is (``task_prompt: none``)."""

    kind: Literal["frozen_text"]
    backbone: str | None = None
    backbone_sha256: str | None = None
    backbone_parameters: int | None = None
    task_prompt: Literal["peft", "none"] | None = None
    prompt_tokens: int | None = None
    task_adapter_parameters: int | None = None
    extra_prompt_parameters: int | None = None
    trainable_share: Real | None = None
    pooling: str | None = None
    max_length: int | None = None
    text: TextInput | None = None
    splits: SplitSizes | None = None
    training: TextTraining | None = None
    threshold: Real | None = None
    test_accuracy: Real | None = None
    test_auc: Real | None = None
    reference: ReferenceScores | None = None

    @property
    def trainable_parameters(self) -> int | None:
        if self.task_adapter_parameters is None and self.extra_prompt_parameters is None:
            return None
        return (self.task_adapter_parameters or 0) + (self.extra_prompt_parameters or 0)


class ImageModel(Record):
    """A frozen image classifier (the colored-digits fixture, or a saved torchvision classifier)."""

    kind: Literal["frozen_image"]
    backbone: str | None = None
    backbone_sha256: str | None = None
    architecture: dict[str, Any] | None = None
    backbone_parameters: int | None = None
    trainable_parameters: int | None = None
    input_size: list[int] | None = None
    splits: SplitSizes | None = None
    training: ImageTraining | None = None
    threshold: Real | None = None
    test_accuracy: Real | None = None
    test_auc: Real | None = None


class TabularModel(Record):
    """The scikit-learn logistic regression trained on a table (the baseline specs)."""

    kind: Literal["logistic_regression"]
    library: str | None = None
    features: list[str] = Field(default_factory=list)
    sensitive_in_features: bool | None = None
    train_rows: int | None = None
    test_rows: int | None = None
    threshold: Real | None = None
    seed: int | None = None
    train_accuracy: Real | None = None


ModelRecord: TypeAlias = Annotated[TextModel | ImageModel | TabularModel, Field(discriminator="kind")]
FrozenModel: TypeAlias = TextModel | ImageModel

MODEL_KINDS: tuple[str, ...] = (*(get_args(m.model_fields["kind"].annotation)[0]
                                   for m in (TabularModel, TextModel, ImageModel)), "causal_lm")
"""Every ``model.kind`` the spec takes; each but ``causal_lm`` is also a record's here (a causal LM's decision audit
writes its own record, :mod:`fairprompt.decision_audit`)."""


def prompt_in_words(model: TextModel) -> str | None:
    """What adapts a frozen text backbone, in words (``8-token soft prompt``), or None."""
    if model.task_prompt == "none" or not model.prompt_tokens:
        return None
    return f"{model.prompt_tokens}-token soft prompt"


def model_in_words(model: TextModel | ImageModel | TabularModel | None) -> str:
    """The model as every report names it: ``Frozen all-MiniLM-L6-v2 + 8-token soft prompt``,
    ``Frozen fixture-cnn classifier``, ``Logistic regression (scikit-learn)``."""
    if model is None:
        return "not recorded: the predictions were supplied, so fairprompt does not know the model"
    if isinstance(model, TextModel):
        adapter = prompt_in_words(model)
        title = f"Frozen {model.backbone or 'text encoder'}"
        if adapter:
            return f"{title} + {adapter}"
        return title + (" classifier, used as it is" if model.task_prompt == "none" else "")
    if isinstance(model, ImageModel):
        name = (model.architecture or {}).get("name") or model.backbone
        return f"Frozen {name or 'image'} classifier"
    return f"Logistic regression ({model.library or 'scikit-learn'})"
