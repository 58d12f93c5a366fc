"""Plain JSON values for the records the repairs return (no numpy, no NaN, no paths)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """A numpy scalar unwrapped; anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, tuples as lists, non-finite floats as None, paths as
    text (and any other object as its ``str``)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


__all__ = ["jsonable", "plain"]
