"""The YAML audit spec: the one place that knows spec keys (with :mod:`fairprompt.spec_language`, its blocks for
language-model decisions and counterfactual audits).

A spec names where predictions come from (a predictions file, or a data set
plus a model that fairprompt trains or runs), how to audit them, and where the
report goes.  It is validated as a whole, before any work starts; an unknown
key or a wrong type is a one-line :class:`~fairprompt.errors.FairpromptError`
naming the file and the key.

Example (``audits/adult_baseline.yaml``)::

    name: adult_baseline
    data: {dataset: adult}
    model: {kind: logistic_regression}
    audit: {sensitive: [sex, race], n_boot: 1000, seed: 0}

Mitigations run after the audit (``fairprompt audit SPEC`` runs them; ``fairprompt
mitigate fairij SPEC`` runs one on its own)::

    mitigations:
      - fairij                                    # every setting at its default, or:
      - fairij: {measure: equal_opportunity, mode: ij, group: sex}
      - reprogram: {trigger: soft, measure: equalized_odds, lambdas: [0, 1, 4, 16]}
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from fairprompt.errors import FairpromptError, closest, did_you_mean
from fairprompt.metrics.bootstrap import MAX_N_BOOT
from fairprompt.mitigation.registry import methods
from fairprompt.results.model import MODEL_KINDS
from fairprompt.spec_language import CausalLMSpec, CounterfactualSpec, StrictBlock
from fairprompt.spec_predictions import PredictionsSpec


class ImagesSpec(StrictBlock):
    """Users' images: the data set file is a metadata table with one row per image."""

    root: str | None = Field(None, description="folder that relative image paths start from (default: the table's folder)")
    path_column: str = Field("path", description="column of image paths")
    image_size: int = Field(32, ge=8, le=1024, description="images are resized to this square size")


class DataSpec(StrictBlock):
    """A data set for a model to predict on: an embedded or generated name, or a CSV/Parquet path."""

    dataset: str = Field(description="embedded data set name (adult, compas, compas_violent, german), a generated one "
                                     "(identity_toxicity, colored_digits) or a file path")
    label: str | None = Field(None, description="label column (embedded data sets know theirs)")
    positive_label: str | int | float | bool | None = Field(None, description="favourable label value")
    sensitive: list[str] | None = Field(None, description="sensitive columns (embedded data sets know theirs)")
    options: dict[str, Any] = Field(default_factory=dict, description="generator options of a generated data set")
    images: ImagesSpec | None = Field(None, description="the data set file lists images (for a frozen_image model)")


class LogisticRegressionSpec(StrictBlock):
    """A scikit-learn baseline trained on the data (the tabular reference model)."""

    kind: Literal["logistic_regression"] = "logistic_regression"
    features: list[str] | None = Field(None, description="feature columns; default all but label and sensitive columns")
    include_sensitive: bool = Field(False, description="also use the sensitive columns as features")
    test_size: float = Field(0.3, gt=0.0, lt=1.0, description="share of rows held out and audited")
    seed: int = Field(0, description="seed of the split and the model")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="predict positive where P(favourable) >= threshold")


class SplitSpec(StrictBlock):
    """Train / validation / test rows: from a split column, or a seeded stratified draw of the given sizes."""

    column: str | None = Field(None, description="column whose values train/validation/test say where each row goes")
    train: int = Field(2000, ge=10, description="training rows (drawn at random, stratified by label)")
    validation: int = Field(1000, ge=10, description="validation rows (early stopping; never audited)")
    test: int | None = Field(6000, ge=10, description="test rows that are audited (null: all remaining rows)")
    final: int = Field(0, ge=0, description="rows held out for the final judgement, drawn last from the rows no other "
                                            "split uses (never audited by a spec; benchmarks read them behind --final)")
    seed: int = Field(0, description="seed of the draw")


class TrainingSpec(StrictBlock):
    """How the task prompt and head are trained (the backbone never is)."""

    max_epochs: int = Field(20, ge=1, description="upper limit of epochs")
    patience: int = Field(3, ge=1, description="stop when validation loss has not improved for this many epochs")
    batch_size: int = Field(32, ge=1, description="training batch size")
    lr: float = Field(0.03, gt=0.0, description="learning rate of the prompt")
    head_lr: float = Field(0.003, gt=0.0, description="learning rate of the classification head")
    seed: int = Field(0, description="seed of initialisation and batch order")


class TaskPromptSpec(StrictBlock):
    """The PEFT prompt-tuning task prompt."""

    tokens: int = Field(8, ge=1, le=64, description="virtual tokens (8-32 is usual)")
    init: Literal["text", "random"] = Field("random", description="initialise from init_text's embeddings, or at random")
    init_text: str | None = Field(None, description="text whose token embeddings initialise the prompt (init: text)")

    @model_validator(mode="after")
    def _text(self) -> TaskPromptSpec:
        if self.init == "text" and not self.init_text:
            raise ValueError("init 'text' needs init_text")
        return self


class TextSpec(StrictBlock):
    """What the language model reads: a text column, or table rows written as sentences."""

    column: str | None = Field(None, description="a column of text; if absent, rows become 'name: value.' sentences")
    columns: list[str] | None = Field(None, description="columns written as text (default: all but label, sensitive and exclude)")
    exclude: list[str] = Field(default_factory=list, description="columns never written as text")
    include_sensitive: bool = Field(False, description="also write the sensitive columns into the text")
    max_length: int = Field(128, ge=8, le=512, description="truncate longer inputs to this many tokens")


class FrozenTextSpec(StrictBlock):
    """A frozen Hugging Face text encoder adapted by a PEFT soft prompt (or a trained classifier as it is)."""

    kind: Literal["frozen_text"]
    backbone: str = Field("all-MiniLM-L6-v2", description="local model directory or hub id (default: the embedded MiniLM)")
    task_prompt: TaskPromptSpec | Literal["none"] = Field(default_factory=TaskPromptSpec,
                                                          description="the task prompt, or none for a trained classifier")
    text: TextSpec = Field(default_factory=TextSpec)
    splits: SplitSpec = Field(default_factory=SplitSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    batch_size: int = Field(64, ge=1, description="prediction batch size")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="predict favourable where P(favourable) >= threshold")

    @field_validator("task_prompt", mode="before")
    @classmethod
    def _none_or_mapping(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "none":
            raise ValueError(f"task_prompt is a mapping (tokens, init, init_text) or 'none', not {value!r}")
        return value


class FrozenImageSpec(StrictBlock):
    """A frozen torchvision image classifier (the colored_digits fixture, or a user's trained model)."""

    kind: Literal["frozen_image"]
    backbone: str = Field("fixture", description="'fixture' (trained once on the train split, then frozen), or a "
                                                 "directory written by fairprompt.models.image.save_classifier")
    epochs: int = Field(8, ge=1, description="epochs of the fixture's one-off training")
    splits: SplitSpec = Field(default_factory=lambda: SplitSpec(column="split"))
    batch_size: int = Field(256, ge=1, description="prediction batch size")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="predict favourable where P(favourable) >= threshold")
    seed: int = Field(0, description="seed of the fixture's training")


ModelSpec = Annotated[LogisticRegressionSpec | FrozenTextSpec | FrozenImageSpec | CausalLMSpec,
                      Field(discriminator="kind")]


class AuditSpec(StrictBlock):
    """How to audit."""

    sensitive: list[str] | None = Field(None, description="sensitive columns; several give intersections too")
    reference: dict[str, str] = Field(default_factory=dict, description="reference group per column for to_reference disparities")
    impact_threshold: float = Field(0.8, gt=0.0, le=1.0, description="four-fifths rule threshold")
    n_boot: int = Field(1000, ge=0, description=f"bootstrap resamples (0: no CIs; at most {MAX_N_BOOT:,})")
    ci_level: float = Field(0.95, gt=0.0, lt=1.0, description="confidence level")
    seed: int = Field(0, description="seed of every bootstrap draw")
    min_group_size: int = Field(30, ge=1, description="groups with fewer rows are flagged")
    bootstrap: Literal["counts", "rows"] = Field("counts", description="count-table (fast) or row-level resampling")
    counterfactual: CounterfactualSpec | None = Field(None, description="swap identity terms in the test texts and "
                                                                        "audit the change (frozen_text models)")

    @field_validator("n_boot")
    @classmethod
    def _at_most(cls, value: int) -> int:
        if value > MAX_N_BOOT:
            raise ValueError(f"n_boot is at most {MAX_N_BOOT:,} (time and memory grow with it; 1,000 to 10,000 "
                             f"resamples give stable 95% intervals), got {value:,}")
        return value

    @field_validator("reference", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value


class _ConfigBlock(StrictBlock):
    """A spec block derived from a config dataclass (:func:`config_block`); :meth:`config` builds that dataclass,
    whose ``__post_init__`` checks run when the spec is validated."""

    config_class: ClassVar[type]

    def config(self) -> Any:
        """The config dataclass these settings describe (nested blocks become nested dataclasses)."""
        values = {}
        for f in dataclasses.fields(self.config_class):
            if f.metadata.get("spec", True):
                value = getattr(self, f.name)
                values[f.name] = value.config() if isinstance(value, _ConfigBlock) else value
        return self.config_class(**values)

    @model_validator(mode="after")
    def _valid_config(self) -> _ConfigBlock:
        try:
            self.config()
        except FairpromptError as exc:
            raise ValueError(str(exc)) from None
        return self


def _checker(check: Callable[[Any], None]) -> Callable[[Any, Any], Any]:
    def validate(cls: Any, value: Any) -> Any:
        try:
            check(value)
        except FairpromptError as exc:
            raise ValueError(str(exc)) from None
        return value

    return validate


def config_block(config_class: type, *, name: str, doc: str | None = None,
                 extra: dict[str, tuple[Any, Any]] | None = None, before: dict[str, str] | None = None) -> type[_ConfigBlock]:
    """A strict spec block with the keys, types, defaults and help text of ``config_class``'s fields (those whose
    metadata does not say ``spec: False``), the bounds in their metadata (``ge``, ``gt``, ``le``, ``lt``) and
    their ``check`` functions, and nested dataclass fields as nested blocks.  ``extra`` adds spec-only keys (name
    -> (type, Field)), each placed before the field named in ``before`` (else first)."""
    namespace = vars(sys.modules[config_class.__module__])
    fields: dict[str, Any] = {}
    validators: dict[str, Any] = {}
    placed = {key: target for key, target in (before or {}).items()}
    for key in extra or {}:
        if key not in placed:
            fields[key] = extra[key]  # type: ignore[index]
    for f in dataclasses.fields(config_class):
        for key, target in placed.items():
            if target == f.name:
                fields[key] = extra[key]  # type: ignore[index]
        meta = f.metadata
        if meta.get("spec", True) is False:
            continue
        annotation = eval(f.type, namespace) if isinstance(f.type, str) else f.type  # noqa: S307 (own annotations)
        if dataclasses.is_dataclass(annotation):
            block = config_block(annotation, name=f"{annotation.__name__}Spec", doc=annotation.__doc__)
            fields[f.name] = (block, Field(default_factory=block, description=meta.get("help")))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        bounds = {k: meta[k] for k in ("ge", "gt", "le", "lt") if k in meta}
        fields[f.name] = (annotation, Field(default, description=meta.get("help"), **bounds))
        if "check" in meta:
            validators[f"_check_{f.name}"] = field_validator(f.name)(_checker(meta["check"]))
    for key, _target in placed.items():
        if key not in fields:
            fields[key] = extra[key]  # type: ignore[index]
    block = create_model(name, __base__=_ConfigBlock, __doc__=doc or config_class.__doc__, __validators__=validators,
                         **fields)
    block.config_class = config_class
    return block


def _repair_block(method: Any) -> type[_ConfigBlock]:
    """A repair method's spec block: its name, its config's keys, and the group it repairs."""
    extra = {
        "name": (Literal[method.name], Field(method.name, description="the mitigation (written by fairprompt, not by you)")),
        "group": (str | None, Field(None, description="sensitive column whose gap is repaired (default: the first "
                                                      "audit.sensitive column)")),
    }
    doc = f"{(method.__doc__ or method.title).strip()} (see fairprompt.mitigation.{method.name}_method)"
    name = f"{method.config_class.__name__.removesuffix('Config')}Spec"
    return config_block(method.config_class, name=name, doc=doc, extra=extra,
                        before={"group": method.group_before} if method.group_before else None)


REPAIR_METHODS = methods()
MITIGATIONS: tuple[str, ...] = tuple(REPAIR_METHODS)
"""Mitigation names a spec may give."""
REPAIR_BLOCKS: dict[str, type[_ConfigBlock]] = {name: _repair_block(m) for name, m in REPAIR_METHODS.items()}
FairIJSpec = REPAIR_BLOCKS["fairij"]
ReprogramSpec = REPAIR_BLOCKS["reprogram"]
AppendTrainingSpec = FairIJSpec.model_fields["append_training"].annotation

Mitigation = Annotated[Union[tuple(REPAIR_BLOCKS.values())], Field(discriminator="name")]  # noqa: UP007


def _normalise_mitigation(item: Any) -> Any:
    """``fairij`` or ``{fairij: {...}}`` (or a dumped ``{name: fairij, ...}``) -> ``{name: fairij, ...}``."""
    if isinstance(item, str):
        name, settings = item, {}
    elif isinstance(item, dict) and isinstance(item.get("name"), str) and item.get("name") in MITIGATIONS:
        name, settings = item["name"], {k: v for k, v in item.items() if k != "name"}
    elif isinstance(item, dict) and len(item) == 1:
        name, settings = next(iter(item.items()))
        name = str(name)
        if settings is None:
            settings = {}
    else:
        shown = ", ".join(map(str, item)) if isinstance(item, dict) else type(item).__name__
        raise ValueError(f"a mitigation is a name, or one name mapped to its settings like {{fairij: {{mode: ij}}}}; "
                         f"got {shown}")
    if name not in MITIGATIONS:
        raise ValueError(f"unknown mitigation {name!r}{did_you_mean(name, MITIGATIONS)}")
    if not isinstance(settings, dict):
        raise ValueError(f"the settings of {name} are a mapping like {{mode: ij, measure: equal_opportunity}}, "
                         f"not {settings!r}")
    if "name" in settings:
        raise ValueError(f"unknown key 'name' in the settings of {name}; the mitigation's name is the key above them")
    return {"name": name, **settings}


class Spec(StrictBlock):
    """A whole audit spec."""

    name: str = Field(description="name of the audit; the report goes to reports/NAME/")
    title: str | None = Field(None, description="title shown on the report")
    predictions: PredictionsSpec | None = None
    data: DataSpec | None = None
    model: ModelSpec | None = None
    audit: AuditSpec = Field(default_factory=AuditSpec)
    output: str | None = Field(None, description="output directory (default reports/NAME)")
    mitigations: list[Annotated[Mitigation, BeforeValidator(_normalise_mitigation)]] = Field(
        default_factory=list, description="repairs run after the audit, in order (fairij, reprogram)")
    _file: Path | None = PrivateAttr(None)

    @property
    def file(self) -> Path | None:
        """The YAML file this spec was read from (None: built on the command line or in code)."""
        return self._file

    @property
    def folder(self) -> Path | None:
        """The folder relative input paths start from: the spec file's (None: the current directory)."""
        return None if self._file is None else self._file.parent

    def input_path(self, value: str) -> str:
        """An input path the spec gives, as it is opened: a relative path starts from :attr:`folder` (``a.csv`` in
        ``audits/x.yaml`` is ``audits/a.csv``); absolute paths, ``~`` paths and paths of specs without a file stay
        as written.  Only what is read (predictions, data set files, image roots, backbones) goes through here;
        ``output`` starts from the current directory."""
        path = Path(value)
        if value.startswith("~"):
            return str(path.expanduser())
        if self.folder is None or path.is_absolute() or "://" in value:  # a URL (s3a://, hdfs://) stays as written
            return value
        return str(self.folder / path)

    @field_validator("mitigations", mode="before")
    @classmethod
    def _mitigation_items(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str | dict):
            value = [value]
        if not isinstance(value, list):
            raise ValueError(f"mitigations is a list such as [fairij], not {type(value).__name__}")
        return value

    @field_validator("model", mode="before")
    @classmethod
    def _default_kind(cls, value: Any) -> Any:
        if isinstance(value, dict) and "kind" not in value:
            return {"kind": "logistic_regression", **value}
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError("use letters, digits, '_', '-' and '.' only (it names a directory)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Spec:
        if (self.predictions is None) == (self.data is None):
            raise ValueError("give exactly one of 'predictions' (a file to audit) or 'data' (with a 'model')")
        if self.data is not None and self.model is None:
            raise ValueError("'data' needs a 'model' block that makes the predictions")
        if self.predictions is not None and self.model is not None:
            raise ValueError("'model' goes with 'data', not with 'predictions'")
        if self.data is not None and self.data.images is not None and (self.model is None or self.model.kind != "frozen_image"):
            raise ValueError("'data.images' goes with a model of kind frozen_image")
        if self.model is not None and self.model.kind == "causal_lm":
            self._check_causal_lm()
        if self.audit.counterfactual is not None and (self.model is None or self.model.kind != "frozen_text"):
            raise ValueError("audit.counterfactual swaps words in a text model's inputs; it needs a model of kind "
                             "frozen_text (a language model's decisions are audited on discrim-eval's variants)")
        if self.predictions is not None and not self.audit.sensitive:
            raise ValueError("a predictions audit needs 'audit.sensitive', the columns to group by")
        self._check_mitigations()
        return self

    def _check_causal_lm(self) -> None:
        assert self.data is not None
        if self.data.dataset != "discrim_eval":
            raise ValueError(f"a causal_lm model audits the discrim_eval data set (decision scenarios in demographic "
                             f"variants), not {self.data.dataset!r}; set data.dataset: discrim_eval")
        given = [k for k in ("label", "positive_label", "sensitive", "images") if getattr(self.data, k) is not None]
        if given:
            raise ValueError(f"data.{given[0]} does not apply to discrim_eval (no labels; its factors are age, gender "
                             f"and race); remove it")
        if self.mitigations:
            raise ValueError("mitigations of a causal_lm model's decisions are not available yet; remove "
                             "'mitigations' from the spec")

    def _check_mitigations(self) -> None:
        names = [m.name for m in self.mitigations]
        for name in set(names):
            if names.count(name) > 1:
                raise ValueError(f"'mitigations' lists {name} {names.count(name)} times; list each mitigation once "
                                 "(its outputs would overwrite each other)")
        kind = self.model.kind if self.model is not None else None
        task_prompt = kind == "frozen_text" and self.model.task_prompt != "none"  # type: ignore[union-attr]
        for index, m in enumerate(self.mitigations):
            key = f"mitigations[{index}].{m.name}"
            REPAIR_METHODS[m.name].check_spec(model_kind=kind, task_prompt=task_prompt, config=m.config(), key=key)
            if m.group is not None and self.audit.sensitive and m.group not in self.audit.sensitive:
                near = closest(m.group, self.audit.sensitive)
                hint = f"; did you mean {near!r}?" if near else ""
                raise ValueError(f"'{key}.group' is {m.group!r}, not one of the audit.sensitive columns "
                                 f"({', '.join(self.audit.sensitive)}){hint}")

    def output_dir(self, override: str | Path | None = None, *, root: Path = Path("reports")) -> Path:
        """Where this spec writes: ``override``, else ``output``, else ``reports/NAME``."""
        if override is not None:
            return Path(override)
        return Path(self.output) if self.output else root / self.name


def _candidates(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (unwrapping Optional, unions and Annotated)."""
    found: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        current = stack.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel):
            found.append(current)
        else:
            stack.extend(getattr(current, "__args__", ()) or ())
            stack.extend(getattr(current, "__metadata__", ()) and () or ())
            origin = getattr(current, "__origin__", None)
            if origin is not None and origin is not current and getattr(current, "__metadata__", None) is not None:
                stack.append(origin)
    return found


def _kind_of(model: type[BaseModel]) -> str | None:
    """The union tag of a spec model: its ``kind`` (models) or ``name`` (mitigations) literal."""
    field = model.model_fields.get("kind") or model.model_fields.get("name")
    args = getattr(field.annotation, "__args__", ()) if field is not None else ()
    return str(args[0]) if args else None


def _walk(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, tuple[str, ...]]:
    """Follow an error location through the spec models; drop union tags (``model.frozen_text.x`` -> ``model.x``)."""
    current: type[BaseModel] | None = Spec
    shown: list[str] = []
    parts = list(loc)
    listed = False  # the current field is a list: an index comes next
    candidates: list[type[BaseModel]] = []
    while parts:
        raw = parts.pop(0)
        if isinstance(raw, int) and shown:  # a list item: mitigations[0], then its name as the user wrote it
            shown[-1] = f"{shown[-1]}[{raw}]"
            if listed and parts and current is not None and "name" in current.model_fields:
                tags = {_kind_of(c) for c in candidates}
                if str(parts[0]) in tags:  # a discriminated union: the tag that follows names the item
                    tag = str(parts.pop(0))
                    current = next(c for c in candidates if _kind_of(c) == tag)
                name = current.model_fields["name"].default
                if isinstance(name, str):
                    shown.append(name)
            listed = False
            continue
        part = str(raw)
        if "[" in part:  # pydantic's name for a union member or validator, not a key
            continue
        shown.append(part)
        if current is None:
            continue
        field = current.model_fields.get(part)
        if field is None:
            current = None
            continue
        listed = getattr(field.annotation, "__origin__", None) is list
        candidates = _candidates(field.annotation)
        if len(candidates) > 1 and parts and any(_kind_of(c) == str(parts[0]) for c in candidates):
            tag = str(parts.pop(0))
            current = next(c for c in candidates if _kind_of(c) == tag)
        else:
            current = candidates[0] if candidates else None
    return current, tuple(shown)


def _location(loc: tuple[Any, ...]) -> str:
    shown = _walk(loc)[1]
    return ".".join(shown) if shown else "(top level)"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    parent = _walk(loc[:-1])[0] if len(loc) > 1 else Spec
    return list(parent.model_fields) if parent is not None else []


def parse_spec(raw: Any, *, source: str = "spec", default_name: str | None = None, file: str | Path | None = None) -> Spec:
    """Validate a spec mapping; raise one FairpromptError naming the first bad key.  ``file``: the YAML file it was
    read from, whose folder the spec's relative input paths start from (:meth:`Spec.input_path`)."""
    if raw is None:
        raise FairpromptError(f"{source} is empty; "
                              "write a YAML mapping with at least 'name', and 'predictions' or 'data' + 'model'")
    if not isinstance(raw, dict):
        raise FairpromptError(f"{source} must be a YAML mapping of keys to values, not a {type(raw).__name__}")
    if "name" not in raw and default_name is not None:
        raw = {"name": default_name, **raw}
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error.get("loc", ()))
        where = _location(loc)
        if error["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), _allowed_keys(loc))
            raise FairpromptError(f"{source}: unknown key {where!r}{hint}") from None
        if error["type"] == "union_tag_not_found":
            raise FairpromptError(f"{source}: key '{where}.kind' is missing; set it to one of {', '.join(MODEL_KINDS)}") from None
        if error["type"] == "union_tag_invalid":
            tag = str(error.get("ctx", {}).get("tag", ""))
            raise FairpromptError(f"{source}: unknown {where}.kind {tag!r}{did_you_mean(tag, MODEL_KINDS)}") from None
        if error["type"] == "missing":
            raise FairpromptError(f"{source}: required key {where!r} is missing; add it") from None
        message = error["msg"].removeprefix("Value error, ")
        shown = (f" (got {error['input']!r})" if error["type"] != "value_error" and not isinstance(error.get("input"), dict)
                 else "")
        target = f"key {where!r}: " if loc else ""
        raise FairpromptError(f"{source}: {target}{message}{shown}") from None
    spec._file = None if file is None else Path(file)
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file; its relative input paths start from the file's folder (:meth:`Spec.input_path`)."""
    path = Path(path)
    if not path.is_file():
        raise FairpromptError(f"spec {path} does not exist; give the path of a YAML spec such as audits/adult_baseline.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise FairpromptError(f"{path} is not valid YAML{where} ({problem}); fix the syntax there") from None
    except UnicodeDecodeError:
        raise FairpromptError(f"{path} is not UTF-8 text; save the spec as UTF-8 YAML") from None
    return parse_spec(raw, source=str(path), default_name=path.stem, file=path)
