"""results.json: the one record of a run that every report is rendered from.

Schema ``fairprompt.results`` version 1 (documented in ``docs/results-schema.md``)::

    {
      "schema": "fairprompt.results", "schema_version": 1,
      "name": str,                      # the audit's name (reports/NAME/)
      "title": str,                     # a human title for the report
      "created": ISO-8601 str,          # when it was written (volatile, see VOLATILE_KEYS)
      "fairprompt_version": str,
      "command": [str, ...] | null,     # the command line that produced it
      "packages": {name: version},
      "inputs": [{"role": str, "path": str, "sha256": str, "rows": int}],
      "data": {"source": str, "label": str, "positive_label": str, "prediction": str,
               "score": str | null, "sensitive": [str], "rows_audited": int, "split": str | null},
      "model": {...} | null,            # what produced the predictions, when fairprompt did (kinds in the docs)
      "spec": {...} | null,             # the validated spec, when run from one
      "seeds": {"bootstrap": int, ...},
      "audit": Audit.to_dict(),         # see fairprompt.metrics.audit
      "mitigations": [{...}],           # optional: only when the run had mitigations (fairij), in spec order
    }

NaN and infinities are written as ``null``; keys keep insertion order so that two
runs with the same seeds give byte-identical files apart from the times and durations named in
:data:`VOLATILE_KEYS` (:func:`stable_dumps` writes a file without them, for comparing runs).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from fairprompt import __version__
from fairprompt.atomic import write_text
from fairprompt.errors import FairpromptError

SCHEMA = "fairprompt.results"
SCHEMA_VERSION = 1
RECORDED_PACKAGES = ("fairprompt", "numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "jinja2", "pydantic",
                     "torch", "transformers", "peft", "fairlearn", "aif360")


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that can change a result (None if absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy values and non-finite floats (to None) for strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


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
) -> dict[str, Any]:
    """Assemble a results dictionary (JSON-ready) from its parts (``mitigations`` only when given)."""
    results = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "title": title or name,
        "created": created or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
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
    return to_jsonable(results)


VOLATILE_KEYS = frozenset({"created", "seconds", "epoch_seconds", "before_audit", "timings", "time_s", "load_time_s"})
"""Keys, at any depth, whose values are wall-clock times or durations (or name one, as ``before_audit``
names the reused file's creation time); everything else is a function of the spec, the data and the seeds."""


def stable(value: Any) -> Any:
    """``value`` without the :data:`VOLATILE_KEYS` and the keys ending in ``_seconds``, at any depth."""
    if isinstance(value, Mapping):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE_KEYS and not str(k).endswith("_seconds")}
    if isinstance(value, (list, tuple)):
        return [stable(v) for v in value]
    return value


def stable_dumps(results: Mapping[str, Any]) -> str:
    """:func:`dumps` of :func:`stable` ``(results)``: equal for two runs with the same spec, data and seeds."""
    return dumps(stable(to_jsonable(results)))


def dumps(results: Mapping[str, Any]) -> str:
    """Strict JSON text (no NaN), two-space indented, key order kept."""
    return json.dumps(to_jsonable(results), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_results(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write results.json atomically."""
    return write_text(path, dumps(results))


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and check a results.json (a directory means DIR/results.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FairpromptError(f"{path} does not exist; run `fairprompt audit` first or give the directory that holds results.json")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FairpromptError(f"{path} is not valid JSON ({exc}); re-run the audit to regenerate it") from None
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise FairpromptError(f"{path} is not a fairprompt results file (no 'schema': {SCHEMA!r}); give a results.json written by fairprompt")
    if results.get("schema_version", 0) > SCHEMA_VERSION:
        raise FairpromptError(
            f"{path} has schema version {results.get('schema_version')}, newer than this fairprompt understands "
            f"({SCHEMA_VERSION}); upgrade fairprompt"
        )
    return results
