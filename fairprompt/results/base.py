"""What every part of the results record shares: the strict base model, numbers, and JSON writing.

A record is parsed strictly (no coercion of ``"1"`` to 1, no unknown keys) and written back exactly as it
was read: keys in their declared order, a key that was absent stays absent (``exclude_unset``), an int stays
an int. NaN and infinities are written as ``null``; a ``null`` metric means *undefined*, never 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from pydantic import BaseModel, ConfigDict

Real: TypeAlias = float | int
"""A number as written: an int stays an int (``ideal: 1``), a float a float; NaN is read back as ``null``."""

VOLATILE_KEYS = frozenset({"created", "seconds", "epoch_seconds", "before_audit", "timings", "time_s", "load_time_s"})
"""Keys, at any depth, whose values are wall-clock times or durations (or name one, as ``before_audit``
names the reused file's creation time); everything else is a function of the spec, the data and the seeds."""


class Record(BaseModel):
    """Base of every part of results.json: strict types, unknown keys refused, written back as read."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, protected_namespaces=(),
                              validate_default=False)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready mapping of this record: declared key order, absent keys left out, NaN as None."""
        return to_jsonable(self.model_dump(mode="python", by_alias=True, exclude_unset=True))


def to_jsonable(value: Any) -> Any:
    """Recursively convert numpy values, tuples, paths and non-finite floats (to None) for strict JSON."""
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="python", by_alias=True, exclude_unset=True))
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


def dumps(results: Any) -> str:
    """Strict JSON text (no NaN), two-space indented, key order kept."""
    return json.dumps(to_jsonable(results), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def stable(value: Any) -> Any:
    """``value`` without the :data:`VOLATILE_KEYS` and the keys ending in ``_seconds``, at any depth."""
    if isinstance(value, Mapping):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE_KEYS and not str(k).endswith("_seconds")}
    if isinstance(value, (list, tuple)):
        return [stable(v) for v in value]
    return value


def stable_dumps(results: Any) -> str:
    """:func:`dumps` of :func:`stable` ``(results)``: equal for two runs with the same spec, data and seeds."""
    return dumps(stable(to_jsonable(results)))
