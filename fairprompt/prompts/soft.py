"""SoftPrompt: ``n`` trainable token embeddings inserted into a text backbone's input.

Modelled on peft's prompt tuning (``PromptTuningConfig`` / ``PromptEmbedding``):
one config dataclass validated in ``__post_init__``, one small module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from fairprompt.errors import FairpromptError
from fairprompt.prompts.base import PromptModule, check_choice, check_int, check_positive
from fairprompt.prompts.insert import POSITIONS, InsertedInputs, Position, insert_tokens

SoftInit = Literal["random", "vocab", "text"]
SOFT_INITS: tuple[str, ...] = ("random", "vocab", "text")


@dataclass
class SoftPromptConfig:
    """Configuration of a :class:`SoftPrompt`."""

    n_tokens: int = field(metadata={"help": "Number of learned tokens (>= 1)."})
    dim: int = field(metadata={"help": "Embedding size of the backbone the tokens are fed to."})
    position: Position = field(
        default="append",
        metadata={"help": "'prepend' (first tokens) or 'append' (after the last real token, before the closing one)."},
    )
    init: SoftInit = field(
        default="random",
        metadata={
            "help": "'random': seeded normal(0, init_std); 'vocab': n seeded rows of the embedding matrix; "
            "'text': the embeddings of init_text's tokens, repeated or truncated to n_tokens."
        },
    )
    init_text: str | None = field(default=None, metadata={"help": "Text for init='text'; ignored otherwise."})
    seed: int = field(default=0, metadata={"help": "Seed of the random or vocab initialisation."})
    init_std: float = field(default=0.02, metadata={"help": "Standard deviation of init='random'."})

    def __post_init__(self) -> None:
        owner = "SoftPromptConfig"
        check_int(owner, "n_tokens", self.n_tokens, minimum=1)
        check_int(owner, "dim", self.dim, minimum=1)
        check_choice(owner, "position", self.position, POSITIONS)
        check_choice(owner, "init", self.init, SOFT_INITS)
        check_int(owner, "seed", self.seed, minimum=0)
        check_positive(owner, "init_std", self.init_std)
        if self.init_text is not None and not isinstance(self.init_text, str):
            raise FairpromptError(f"SoftPromptConfig.init_text must be a string but is {self.init_text!r}; "
                                  "set it to text or None")
        if self.init == "text" and not (self.init_text or "").strip():
            raise FairpromptError("SoftPromptConfig.init is 'text' but init_text is empty; set init_text or use init='random'")


def _embedding_matrix(embeddings: Tensor | nn.Embedding, config: SoftPromptConfig) -> Tensor:
    weight = embeddings.weight if isinstance(embeddings, nn.Embedding) else embeddings
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise FairpromptError(
            "SoftPrompt.initialise needs embeddings as a [vocab, dim] matrix or an nn.Embedding; "
            "pass backbone.get_input_embeddings()"
        )
    if weight.shape[1] != config.dim:
        raise FairpromptError(
            f"SoftPromptConfig.dim is {config.dim} but the embeddings are {weight.shape[1]}-dim; "
            "set dim to the backbone's hidden size"
        )
    return weight.detach()


class SoftPrompt(PromptModule):
    """``n_tokens`` learned embeddings, held as one parameter ``weight`` [n_tokens, dim].

    Build it with :meth:`initialise`; ``SoftPrompt(config)`` alone works for
    ``init='random'``.  ``forward(batch_size)`` returns an expanded view
    [B, n, dim] (no copy); :meth:`insert` puts the tokens into a batch.
    """

    kind: ClassVar[str] = "soft_prompt"
    config_class: ClassVar[type] = SoftPromptConfig

    def __init__(self, config: SoftPromptConfig, *, weight: Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(config, SoftPromptConfig):
            raise FairpromptError(f"SoftPrompt needs a SoftPromptConfig but got {type(config).__name__}; build one first")
        self.config = config
        shape = (config.n_tokens, config.dim)
        if weight is None:
            if config.init != "random":
                raise FairpromptError(
                    f"SoftPromptConfig.init is {config.init!r}, which needs the backbone's embeddings; "
                    "use SoftPrompt.initialise(config, embeddings=..., tokenizer=...)"
                )
            generator = torch.Generator().manual_seed(config.seed)
            weight = torch.randn(shape, generator=generator) * config.init_std
        elif tuple(weight.shape) != shape:
            raise FairpromptError(
                f"soft prompt weight has shape {tuple(weight.shape)} but the config needs {shape}; "
                "pass a weight that fits n_tokens and dim"
            )
        self.weight = nn.Parameter(weight.detach().clone())

    @classmethod
    def initialise(
        cls,
        config: SoftPromptConfig,
        *,
        embeddings: Tensor | nn.Embedding | None = None,
        tokenizer: Any = None,
    ) -> SoftPrompt:
        """A new prompt initialised as ``config.init`` says (float32, detached from ``embeddings``)."""
        if config.init == "random":
            return cls(config)
        if embeddings is None:
            raise FairpromptError(
                f"SoftPromptConfig.init is {config.init!r} but no embeddings were given; "
                "pass embeddings=backbone.get_input_embeddings() or use init='random'"
            )
        matrix = _embedding_matrix(embeddings, config)
        vocab = matrix.shape[0]
        if config.init == "vocab":
            generator = torch.Generator().manual_seed(config.seed)
            if config.n_tokens <= vocab:
                ids = torch.randperm(vocab, generator=generator)[: config.n_tokens]
            else:
                ids = torch.randint(0, vocab, (config.n_tokens,), generator=generator)
        else:
            ids = cls.text_token_ids(config, tokenizer=tokenizer)
            if int(ids.max()) >= vocab:
                raise FairpromptError(
                    f"the tokenizer gives token id {int(ids.max())} but the embeddings have {vocab} rows; "
                    "pass the tokenizer that belongs to this backbone"
                )
        weight = matrix[ids.to(matrix.device)].to(device="cpu", dtype=torch.float32)
        return cls(config, weight=weight)

    @staticmethod
    def text_token_ids(config: SoftPromptConfig, *, tokenizer: Any) -> Tensor:
        """Ids of ``config.init_text`` without special tokens, repeated or truncated to ``n_tokens``."""
        if tokenizer is None:
            raise FairpromptError(
                "SoftPromptConfig.init is 'text' but no tokenizer was given; pass tokenizer=AutoTokenizer.from_pretrained(...)"
            )
        ids = list(tokenizer(config.init_text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise FairpromptError(
                f"SoftPromptConfig.init_text {config.init_text!r} gives no tokens; set init_text to some words"
            )
        ids = (ids * math.ceil(config.n_tokens / len(ids)))[: config.n_tokens]
        return torch.tensor(ids, dtype=torch.long)

    @classmethod
    def expected_shapes(cls, config: SoftPromptConfig) -> dict[str, tuple[int, ...]]:
        return {"weight": (config.n_tokens, config.dim)}

    @classmethod
    def from_tensors(cls, config: SoftPromptConfig, tensors: Mapping[str, Tensor]) -> SoftPrompt:
        return cls(config, weight=tensors["weight"])

    @property
    def n_tokens(self) -> int:
        return self.config.n_tokens

    @property
    def dim(self) -> int:
        return self.config.dim

    def forward(self, batch_size: int) -> Tensor:
        """The tokens as [batch_size, n_tokens, dim], an expanded view of ``weight``."""
        return self.weight.unsqueeze(0).expand(batch_size, -1, -1)

    def insert(
        self,
        *,
        inputs_embeds: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        before_last: bool = True,
    ) -> InsertedInputs:
        """Insert these tokens into a batch at ``config.position`` (see :func:`insert_tokens`)."""
        return insert_tokens(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            tokens=self.weight.unsqueeze(0),
            position=self.config.position,
            token_type_ids=token_type_ids,
            before_last=before_last,
        )

    def extra_repr(self) -> str:
        return f"n_tokens={self.config.n_tokens}, dim={self.config.dim}, position={self.config.position!r}"
