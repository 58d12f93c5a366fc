"""Where trained prompts and fixture models are cached, and how cache keys are made.

The cache lives in a user cache directory, never inside ``reports/``:
``$FAIRPROMPT_CACHE`` if set, else ``$XDG_CACHE_HOME/fairprompt``, else
``~/.cache/fairprompt``.  A cache key is the sha256 of a canonical JSON of
everything that determines the cached artifact (spec block, data hash,
backbone hash, code version of the trainer), so a change to any of them misses.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_VAR = "FAIRPROMPT_CACHE"


def cache_dir(*parts: str) -> Path:
    """The cache root (or a sub-directory of it); not created here."""
    root = os.environ.get(ENV_VAR)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "fairprompt"
    return base.joinpath(*parts)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(dict(parts)).encode("utf-8")).hexdigest()
