"""Models that produce the predictions an audit examines; no fairness logic lives here.

Every model fairprompt runs is a **prompted model**: a frozen backbone plus an
ordered ``prompts`` list of small trainable input-side modules.  Two kinds
implement it, :class:`~fairprompt.models.text.FrozenTextClassifier` (a Hugging
Face encoder whose task adapter is a PEFT soft prompt and a head; extra
``SoftPrompt`` tokens are inserted at the embedding level) and
:class:`~fairprompt.models.image.FrozenImageClassifier` (a torchvision network
with ``PixelBorder`` / ``PixelPatch`` prompts in front).  :class:`PromptedModel`
states what both guarantee.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class PromptedModel(Protocol):
    """A frozen backbone with trainable prompts in front of it.

    - ``prompts``: the input-side prompt modules, applied in order;
    - ``backbone_sha256``: the sha256 of the frozen backbone's state_dict, which
      no training entry point may change;
    - ``forward(...) -> logits``; ``train()`` never puts the backbone in
      training mode (no dropout, no batch-norm updates).
    """

    prompts: nn.ModuleList

    @property
    def backbone_sha256(self) -> str: ...

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor: ...


__all__ = ["PromptedModel"]
