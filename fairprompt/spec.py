"""The YAML audit spec: the one place that knows spec keys.

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
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fairprompt.errors import FairpromptError, did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictionsSpec(_Strict):
    """A file of predictions to audit as it is."""

    path: str = Field(description="CSV or Parquet file with one row per decision")
    label: str = Field(description="column of true outcomes")
    prediction: str | None = Field(None, description="column of predicted outcomes (or give score + score_threshold)")
    score: str | None = Field(None, description="column of scores or probabilities (enables AUC, calibration, scoring rate)")
    weight: str | None = Field(None, description="column of sample weights")
    positive_label: str | int | float | bool | None = Field(None, description="value of label/prediction that is the favourable outcome")
    score_threshold: float | None = Field(None, description="predict positive where score >= threshold (when no prediction column)")

    @model_validator(mode="after")
    def _prediction_source(self) -> PredictionsSpec:
        if self.prediction is None and (self.score is None or self.score_threshold is None):
            raise ValueError("give a prediction column, or a score column together with score_threshold")
        return self


class DataSpec(_Strict):
    """A data set for a model to predict on: an embedded name or a CSV/Parquet path."""

    dataset: str = Field(description="embedded data set name (adult, compas, compas_violent, german) or a file path")
    label: str | None = Field(None, description="label column (embedded data sets know theirs)")
    positive_label: str | int | float | bool | None = Field(None, description="favourable label value")
    sensitive: list[str] | None = Field(None, description="sensitive columns (embedded data sets know theirs)")


class ModelSpec(_Strict):
    """A model that fairprompt trains and audits (later issues add frozen text and image models)."""

    kind: Literal["logistic_regression"] = Field("logistic_regression", description="scikit-learn baseline trained on the data")
    features: list[str] | None = Field(None, description="feature columns; default all but label and sensitive columns")
    include_sensitive: bool = Field(False, description="also use the sensitive columns as features")
    test_size: float = Field(0.3, gt=0.0, lt=1.0, description="share of rows held out and audited")
    seed: int = Field(0, description="seed of the split and the model")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="predict positive where P(favourable) >= threshold")


class AuditSpec(_Strict):
    """How to audit."""

    sensitive: list[str] | None = Field(None, description="sensitive columns; several give intersections too")
    reference: dict[str, str] = Field(default_factory=dict, description="reference group per column for to_reference disparities")
    impact_threshold: float = Field(0.8, gt=0.0, le=1.0, description="four-fifths rule threshold")
    n_boot: int = Field(1000, ge=0, description="bootstrap resamples (0: no CIs)")
    ci_level: float = Field(0.95, gt=0.0, lt=1.0, description="confidence level")
    seed: int = Field(0, description="seed of every bootstrap draw")
    min_group_size: int = Field(30, ge=1, description="groups with fewer rows are flagged")
    bootstrap: Literal["counts", "rows"] = Field("counts", description="count-table (fast) or row-level resampling")

    @field_validator("reference", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value


class Spec(_Strict):
    """A whole audit spec."""

    name: str = Field(description="name of the audit; the report goes to reports/NAME/")
    title: str | None = Field(None, description="title shown on the report")
    predictions: PredictionsSpec | None = None
    data: DataSpec | None = None
    model: ModelSpec | None = None
    audit: AuditSpec = Field(default_factory=AuditSpec)
    output: str | None = Field(None, description="output directory (default reports/NAME)")

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
        if self.predictions is not None and not self.audit.sensitive:
            raise ValueError("a predictions audit needs 'audit.sensitive', the columns to group by")
        return self

    def output_dir(self, override: str | Path | None = None, *, root: Path = Path("reports")) -> Path:
        """Where this spec writes: ``override``, else ``output``, else ``reports/NAME``."""
        if override is not None:
            return Path(override)
        return Path(self.output) if self.output else root / self.name


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) if loc else "(top level)"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return []
        current = candidates[0]
    return list(getattr(current, "model_fields", {}))


def parse_spec(raw: Any, *, source: str = "spec", default_name: str | None = None) -> Spec:
    """Validate a spec mapping; raise one FairpromptError naming the first bad key."""
    if raw is None:
        raise FairpromptError(f"{source} is empty; write a YAML mapping with at least 'name', and 'predictions' or 'data' + 'model'")
    if not isinstance(raw, dict):
        raise FairpromptError(f"{source} must be a YAML mapping of keys to values, not a {type(raw).__name__}")
    if "name" not in raw and default_name is not None:
        raw = {"name": default_name, **raw}
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error.get("loc", ()))
        where = _location(loc)
        if error["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), _allowed_keys(Spec, loc))
            raise FairpromptError(f"{source}: unknown key {where!r}{hint}") from None
        if error["type"] == "missing":
            raise FairpromptError(f"{source}: required key {where!r} is missing; add it") from None
        message = error["msg"].removeprefix("Value error, ")
        shown = f" (got {error['input']!r})" if error["type"] != "value_error" and not isinstance(error.get("input"), dict) else ""
        target = f"key {where!r}: " if loc else ""
        raise FairpromptError(f"{source}: {target}{message}{shown}") from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file."""
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
    return parse_spec(raw, source=str(path), default_name=path.stem)
