"""ConditionalPrompt: soft tokens written per input by a small generator (an instance-dependent prompt).

A fixed soft prompt adds the same vectors to every input; what it does to a row can differ only through the
frozen backbone's attention.  A conditional prompt (in the spirit of IAPT, Zhu et al. 2024) reads the input's own
token embeddings and writes its tokens for that row:

    a = softmax_l(E_l . q / sqrt(d))           attention pooling over the input's embeddings E (padding masked)
    s = sum_l a_l E_l                          one vector per row
    h = tanh(W_down s + b_down)                the bottleneck (``bottleneck`` numbers)
    tokens = weight + reshape(W_up h)          [n_tokens, dim] per row

``W_up`` starts at zero and ``q`` at zero (uniform pooling), so a new conditional prompt is exactly the static soft
prompt ``weight``: training starts from the fixed trigger and adds per-row variation only where it pays.  The
generator sees the embeddings as they reach it (the input's words, and any prompt inserted before it); the
backbone, task prompt and head stay frozen.  Parameters: ``n d + d + r d + r + n d r`` (``r`` the bottleneck).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from fairprompt.errors import FairpromptError
from fairprompt.prompts.base import PromptModule, check_choice, check_int
from fairprompt.prompts.insert import POSITIONS, InsertedInputs, Position, insert_tokens


@dataclass
class ConditionalPromptConfig:
    """Configuration of a :class:`ConditionalPrompt`."""

    n_tokens: int = field(metadata={"help": "Number of tokens written per input (>= 1)."})
    dim: int = field(metadata={"help": "Embedding size of the backbone the tokens are fed to."})
    bottleneck: int = field(default=8, metadata={"help": "Width of the generator's bottleneck (>= 1)."})
    position: Position = field(default="append", metadata={"help": "'prepend' or 'append' (see insert_tokens)."})

    def __post_init__(self) -> None:
        owner = "ConditionalPromptConfig"
        check_int(owner, "n_tokens", self.n_tokens, minimum=1)
        check_int(owner, "dim", self.dim, minimum=1)
        check_int(owner, "bottleneck", self.bottleneck, minimum=1)
        check_choice(owner, "position", self.position, POSITIONS)


def conditional_parameters(*, n_tokens: int, dim: int, bottleneck: int) -> int:
    """How many numbers a conditional prompt of this shape trains."""
    return n_tokens * dim + dim + bottleneck * dim + bottleneck + n_tokens * dim * bottleneck


class ConditionalPrompt(PromptModule):
    """Per-input soft tokens from the static ``weight`` plus a bottlenecked generator (module docstring)."""

    kind: ClassVar[str] = "conditional_prompt"
    config_class: ClassVar[type] = ConditionalPromptConfig

    def __init__(self, config: ConditionalPromptConfig, *, weight: Tensor,
                 tensors: Mapping[str, Tensor] | None = None) -> None:
        super().__init__()
        if not isinstance(config, ConditionalPromptConfig):
            raise FairpromptError(f"ConditionalPrompt needs a ConditionalPromptConfig but got {type(config).__name__}")
        self.config = config
        n, d, r = config.n_tokens, config.dim, config.bottleneck
        if tuple(weight.shape) != (n, d):
            raise FairpromptError(f"conditional prompt weight has shape {tuple(weight.shape)} but the config needs "
                                  f"{(n, d)}; pass a weight that fits n_tokens and dim")
        given = dict(tensors or {})
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.query = nn.Parameter(given.get("query", torch.zeros(d)).detach().clone().float())
        down = given.get("down")
        if down is None:  # a seeded, small random projection: the bottleneck starts informative, the tokens unchanged
            generator = torch.Generator().manual_seed(0)
            down = torch.randn(r, d, generator=generator) / math.sqrt(d)
        self.down = nn.Parameter(down.detach().clone().float())
        self.down_bias = nn.Parameter(given.get("down_bias", torch.zeros(r)).detach().clone().float())
        self.up = nn.Parameter(given.get("up", torch.zeros(n * d, r)).detach().clone().float())

    @classmethod
    def expected_shapes(cls, config: ConditionalPromptConfig) -> dict[str, tuple[int, ...]]:
        n, d, r = config.n_tokens, config.dim, config.bottleneck
        return {"weight": (n, d), "query": (d,), "down": (r, d), "down_bias": (r,), "up": (n * d, r)}

    @classmethod
    def from_tensors(cls, config: ConditionalPromptConfig, tensors: Mapping[str, Tensor]) -> ConditionalPrompt:
        return cls(config, weight=tensors["weight"], tensors=tensors)

    @property
    def n_tokens(self) -> int:
        return self.config.n_tokens

    @property
    def dim(self) -> int:
        return self.config.dim

    def tokens(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor:
        """The tokens written for each row of the batch, [B, n_tokens, dim]."""
        embeds = inputs_embeds.to(self.weight.dtype)
        scores = embeds @ self.query / math.sqrt(self.config.dim)
        scores = scores.masked_fill(attention_mask == 0, float("-inf"))
        pooled = torch.einsum("bl,bld->bd", torch.softmax(scores, dim=1), embeds)
        hidden = torch.tanh(pooled @ self.down.T + self.down_bias)
        shift = (hidden @ self.up.T).view(-1, self.config.n_tokens, self.config.dim)
        return self.weight.unsqueeze(0) + shift

    def insert(self, *, inputs_embeds: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
               before_last: bool = True) -> InsertedInputs:
        """Write this batch's tokens and insert them at ``config.position`` (see :func:`insert_tokens`)."""
        return insert_tokens(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                             tokens=self.tokens(inputs_embeds, attention_mask).to(inputs_embeds.dtype),
                             position=self.config.position, token_type_ids=token_type_ids, before_last=before_last)

    def extra_repr(self) -> str:
        c = self.config
        return f"n_tokens={c.n_tokens}, dim={c.dim}, bottleneck={c.bottleneck}, position={c.position!r}"


__all__ = ["ConditionalPrompt", "ConditionalPromptConfig", "conditional_parameters"]
