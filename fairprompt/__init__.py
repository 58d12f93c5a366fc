"""fairprompt: audit frozen models for group unfairness and repair them with prompts only."""

from __future__ import annotations

from fairprompt.errors import FairpromptError

__version__ = "0.1.0"

__all__ = ["FairpromptError", "__version__"]
