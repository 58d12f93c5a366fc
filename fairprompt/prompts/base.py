"""What every prompt kind shares: the module base class and config validation helpers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor, nn

from fairprompt.errors import FairpromptError, did_you_mean


def check_int(owner: str, key: str, value: Any, *, minimum: int) -> None:
    """Refuse ``value`` unless it is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FairpromptError(f"{owner}.{key} must be an integer >= {minimum} but is {value!r}; set {key} to such a value")


def check_choice(owner: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of ``choices``."""
    if value not in choices:
        raise FairpromptError(f"{owner}.{key} is {value!r}, which is not a known option{did_you_mean(str(value), choices)}")


def check_positive(owner: str, key: str, value: Any) -> None:
    """Refuse ``value`` unless it is a finite real number > 0."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise FairpromptError(f"{owner}.{key} must be a finite number > 0 but is {value!r}; set {key} to such a value")


class PromptModule(nn.Module):
    """Base class of the trainable prompt kinds (soft prompt, pixel border, pixel patch).

    Subclasses set ``kind`` (the name written to artifacts) and ``config_class``
    and implement ``expected_shapes`` and ``from_tensors``; ``save`` and
    :func:`fairprompt.prompts.artifact.load_prompt` do the rest.
    """

    kind: ClassVar[str]
    config_class: ClassVar[type]
    config: Any
    source: Path | None = None  # the JSON file it was loaded from, if any

    @classmethod
    def expected_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the tensors a prompt with ``config`` holds."""
        raise NotImplementedError

    @classmethod
    def from_tensors(cls, config: Any, tensors: Mapping[str, Tensor]) -> PromptModule:
        """Build the module around ``tensors`` (already checked against ``expected_shapes``)."""
        raise NotImplementedError

    def config_dict(self) -> dict[str, Any]:
        """The config as a plain JSON-able dict."""
        return dataclasses.asdict(self.config)

    def label(self) -> str:
        """How messages name this prompt: its file if it was loaded, else its kind."""
        return f"prompt {self.source.name!r}" if self.source is not None else f"{self.kind} prompt"

    def save(self, path_stem: str | Path) -> Path:
        """Write ``<stem>.safetensors`` and ``<stem>.json`` atomically; return the JSON path."""
        from fairprompt.prompts.artifact import save_prompt

        return save_prompt(self, path_stem)


def config_from_dict(config_class: type, data: Mapping[str, Any], *, where: str) -> Any:
    """Build ``config_class`` from ``data``, naming ``where`` in any error."""
    names = {f.name for f in dataclasses.fields(config_class)}
    for key in data:
        if key not in names:
            raise FairpromptError(
                f"{where} has an unknown config key {key!r}{did_you_mean(str(key), sorted(names))}"
            )
    try:
        return config_class(**dict(data))
    except FairpromptError as error:
        raise FairpromptError(f"{where} has an invalid config ({error}); re-save the prompt with fairprompt") from None
    except TypeError as error:  # a required key is missing
        raise FairpromptError(f"{where} has an incomplete config ({error}); re-save the prompt with fairprompt") from None
