"""The whole record of a run (``results.json``): build it, check it, read it, write it.

:class:`Results` is what every report renders from and what resuming reads back. A file is validated as a
whole before anything uses it: a value of the wrong type or an unknown key is one
:class:`~fairprompt.errors.FairpromptError` naming the key. ``schema_version`` is checked first: a newer file
asks for a newer fairprompt, an older one is brought up to date by the migrations in :data:`MIGRATIONS` (none
version 1 gains the degenerate-model check, see :func:`add_degenerate_check`), anything else is refused with the version it has.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from fairprompt import __version__
from fairprompt.atomic import write_text
from fairprompt.errors import FairpromptError
from fairprompt.results.audit import AuditRecord
from fairprompt.results.base import Record, dumps, to_jsonable
from fairprompt.results.counterfactual import CounterfactualRecord
from fairprompt.results.model import ModelRecord
from fairprompt.results.repairs import RepairRecord

SCHEMA = "fairprompt.results"
SCHEMA_VERSION = 4
RECORDED_PACKAGES = ("fairprompt", "numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "jinja2", "pydantic",
                     "torch", "transformers", "peft", "fairlearn", "aif360")

MIGRATION_NOTE = ("assessed when this file was migrated from schema version 1, from its count table alone: the "
                  "accuracy check uses the point estimate, not the paired-bootstrap bound; re-run the audit for the bound")


def _degenerate_from_counts(audit: Any) -> Any:
    if not isinstance(audit, dict) or "degenerate" in audit or not isinstance(audit.get("count_table"), dict):
        return audit
    from fairprompt.metrics.counts import CountTable
    from fairprompt.metrics.degenerate import assess_degeneracy

    table = audit["count_table"]
    try:
        k = np.asarray(table["k"], dtype=np.int64).reshape(-1, 4)
        w = np.asarray(table["w"], dtype=np.float64).reshape(-1, 4)
        counts = CountTable(columns=tuple(map(str, table["columns"])), groups=tuple(tuple(g) for g in table["groups"]),
                            k=k, w=w, w2=w)
        found = assess_degeneracy(counts)
    except (KeyError, TypeError, ValueError):
        return audit  # a malformed count table is reported by the validation that follows
    return {**audit, "degenerate": found.to_dict() | {"note": MIGRATION_NOTE}}


def add_degenerate_check(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: every audit (the before-audit and each repair's ``after``) gains ``degenerate``, computed from
    its count table (point estimates; see :data:`MIGRATION_NOTE`)."""
    out = dict(data, schema_version=2, audit=_degenerate_from_counts(data.get("audit")))
    if isinstance(data.get("mitigations"), list):
        out["mitigations"] = [dict(m, after=_degenerate_from_counts(m["after"])) if isinstance(m, dict) and "after" in m
                              else m for m in data["mitigations"]]
    return out


def allow_counterfactual(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 -> 3: version 3 adds the optional ``counterfactual`` block; a version 2 file has none and is
    otherwise unchanged."""
    return dict(data, schema_version=3)


def allow_score_histograms(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 -> 4: version 4 adds the optional ``score_histogram`` block of an audit and the ``auc_bound`` and
    ``scoring_rate_bound`` of its group rows (score metrics from merged histograms); a version 3 file has none."""
    return dict(data, schema_version=4)


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: add_degenerate_check, 2: allow_counterfactual, 3: allow_score_histograms}
"""``{version: upgrade}``: ``upgrade`` turns a file of that version into one of the next version. Whoever changes the
record bumps :data:`SCHEMA_VERSION` and adds the step from the old version here (or leaves older files refused)."""


class InputFile(Record):
    """A file the run read, with its hash."""

    role: str
    path: str
    sha256: str | None = None
    rows: int | None = None


class DataRecord(Record):
    """What was audited: the source, the label and prediction, the sensitive columns.  ``rows`` counts the rows
    read; with ``drop_missing`` (a predictions file), ``rows_dropped`` of them had a missing label, prediction,
    score or weight and were left out, and ``dropped_missing`` counts the rows missing each such column (a row
    missing two columns counts under both); both are absent otherwise."""

    source: str | None = None
    name: str | None = None
    label: str | None = None
    positive_label: str | None = None
    prediction: str | None = None
    score: str | None = None
    weight: str | None = None
    sensitive: list[str] = Field(default_factory=list)
    rows: int | None = None
    split: str | None = None
    rows_audited: int | None = None
    rows_dropped: int | None = None
    dropped_missing: dict[str, int] | None = None


class DecisionsExport(Record):
    """``predictions.parquet`` (:mod:`fairprompt.decisions`): every decision of the audited model and of each repair's
    grid point, and whether the final split was read (only with ``--final``)."""

    file: str
    rows: int
    methods: list[str] = Field(default_factory=list)
    splits: list[str] = Field(default_factory=list)
    final_read: bool = False


class Results(Record):
    """The one record of a run (schema ``fairprompt.results``, version :data:`SCHEMA_VERSION`)."""

    schema_: Literal["fairprompt.results"] = Field(alias="schema")
    schema_version: int
    name: str
    title: str | None = None
    created: str | None = None
    fairprompt_version: str | None = None
    command: list[str] | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    inputs: list[InputFile] = Field(default_factory=list)
    data: DataRecord | None = None
    model: ModelRecord | None = None
    spec: dict[str, Any] | None = None
    seeds: dict[str, int] = Field(default_factory=dict)
    audit: AuditRecord
    mitigations: list[RepairRecord] | None = None
    decisions: DecisionsExport | None = None
    counterfactual: CounterfactualRecord | None = None

    @property
    def repairs(self) -> list[Any]:
        """``mitigations``, or an empty list when the run had none."""
        return list(self.mitigations or [])


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that can change a result (None if absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_results(
    *,
    name: str,
    audit: Mapping[str, Any],
    data: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    seeds: Mapping[str, int],
    title: str | None = None,
    model: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
    created: str | None = None,
    mitigations: Sequence[Mapping[str, Any]] | None = None,
    counterfactual: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a results mapping (JSON-ready, checked against :class:`Results`) from its parts (``mitigations``
    only when given)."""
    results = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "title": title or name,
        "created": created or _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "fairprompt_version": __version__,
        "command": list(command) if command is not None else None,
        "packages": package_versions(),
        "inputs": list(inputs),
        "data": dict(data),
        "model": dict(model) if model is not None else None,
        "spec": dict(spec) if spec is not None else None,
        "seeds": dict(seeds),
        "audit": audit,
    }
    if mitigations is not None:
        results["mitigations"] = [dict(m) for m in mitigations]
    if counterfactual is not None:
        results["counterfactual"] = dict(counterfactual)
    return parse_results(to_jsonable(results), source="the results being built").to_json()


_TYPE_TAGS = frozenset({"float", "int", "str", "bool", "none", "list", "dict"})


def _location(loc: Sequence[Any]) -> str:
    """``('mitigations', 0, 'fairij', 'fairij', 'curve', 2, 'k')`` -> ``mitigations[0].fairij.curve[2].k``: list
    indices in brackets, the union tags pydantic inserts (a model kind, a repair kind) dropped."""
    tags = {"frozen_text", "frozen_image", "logistic_regression", "fairij", "reprogram", "failed", "not_run"}
    out: list[str] = []
    previous: Any = None
    for part in loc:
        if isinstance(part, int):
            out[-1:] = [f"{out[-1]}[{part}]"] if out else [f"[{part}]"]
        elif isinstance(part, str) and part in tags and (isinstance(previous, int) or previous == "model"):
            pass  # the tag of a union member, not a key of the file
        elif isinstance(part, str) and ("[" in part or part.startswith("function-") or part in _TYPE_TAGS):
            pass  # pydantic's name for a union member (``float`` of ``float | int``) or a validator
        else:
            out.append(str(part))
        previous = part
    return ".".join(out) or "(top level)"


_MISSING = object()


def _version_error(version: Any, source: str) -> FairpromptError | None:
    """The one-line error for a ``schema_version`` this fairprompt cannot read (None when it can): missing, not a
    whole number (a string, a bool, a float, null), below 1, newer than :data:`SCHEMA_VERSION`, or older without a
    migration."""
    written = f"give a results.json written by fairprompt (schema_version {SCHEMA_VERSION})"
    if version is _MISSING:
        return FairpromptError(f"{source}: required key 'schema_version' is missing; {written}")
    if not isinstance(version, int) or isinstance(version, bool):
        shown = "null" if version is None else repr(version)
        return FairpromptError(f"{source}: 'schema_version' is {shown}, not a whole number; {written}")
    if version < 1:
        return FairpromptError(f"{source}: 'schema_version' is {version}, not a version (they start at 1); {written}")
    if version > SCHEMA_VERSION:
        return FairpromptError(f"{source} has schema version {version}, newer than this fairprompt understands "
                               f"({SCHEMA_VERSION}); upgrade fairprompt")
    if version < SCHEMA_VERSION and version not in MIGRATIONS:
        migrates = f" and migrates {', '.join(map(str, sorted(MIGRATIONS)))}" if MIGRATIONS else ""
        return FairpromptError(f"{source} has schema version {version}, which fairprompt cannot read (it reads version "
                               f"{SCHEMA_VERSION}{migrates}); re-run the audit to write a current file")
    return None


def parse_results(raw: Any, *, source: str = "results") -> Results:
    """Check a results mapping as a whole (schema, version, every key and type) and return the typed record.

    Older versions are migrated (:data:`MIGRATIONS`); anything malformed is one :class:`FairpromptError` naming
    ``source`` and the first bad key.
    """
    if isinstance(raw, Results):
        return raw
    if not isinstance(raw, Mapping) or raw.get("schema") != SCHEMA:
        raise FairpromptError(f"{source} is not a fairprompt results file (no 'schema': {SCHEMA!r}); give a "
                              "results.json written by fairprompt")
    error = _version_error(raw.get("schema_version", _MISSING), source)
    if error is not None:
        raise error
    data = dict(raw)
    while data["schema_version"] < SCHEMA_VERSION:
        data = MIGRATIONS[data["schema_version"]](data)
    try:
        return Results.model_validate(to_jsonable(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(first.get("loc", ()))
        if first["type"] == "extra_forbidden":
            raise FairpromptError(f"{source}: unknown key {where!r}; it is not part of schema version "
                                  f"{SCHEMA_VERSION} (a hand edit, or a file from another program)") from None
        if first["type"] == "missing":
            raise FairpromptError(f"{source}: required key {where!r} is missing; re-run the audit to regenerate it") from None
        value = first.get("input")
        shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
        message = first["msg"].removeprefix("Value error, ")
        raise FairpromptError(f"{source}: key {where!r}: {message}{shown}") from None


def load_results(path: str | Path) -> Results:
    """Read and check a results.json (a directory means DIR/results.json); see :func:`parse_results`."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FairpromptError(f"{path} does not exist; run `fairprompt audit` first or give the directory that holds "
                              "results.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FairpromptError(f"{path} is not valid JSON ({exc}); re-run the audit to regenerate it") from None
    return parse_results(raw, source=str(path))


def write_results(results: Results | Mapping[str, Any], path: str | Path) -> Path:
    """Write results.json atomically (checked first)."""
    return write_text(path, dumps(parse_results(results).to_json()))
