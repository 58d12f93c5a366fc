"""The one exception type for user mistakes.

A :class:`FairpromptError` carries a single sentence that names the file,
column or key at fault and what would fix it.  The CLI prints it and exits
with status 2, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FairpromptError(Exception):
    """A user-facing error: one sentence naming the culprit and the fix."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name`` (for 'did you mean' hints), or None."""
    options = [str(c) for c in candidates]
    lowered = {c.lower(): c for c in options}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    if not match:
        match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
        match = [lowered[m] for m in match]
    return match[0] if match else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix, or a list of the choices when nothing is close."""
    options = [str(c) for c in candidates]
    best = closest(name, options)
    if best is not None:
        return f"; did you mean {best!r}?"
    shown = ", ".join(repr(c) for c in options[:12])
    more = "" if len(options) <= 12 else f" and {len(options) - 12} more"
    return f"; available: {shown}{more}"
