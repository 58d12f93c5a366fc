"""Scores with a trainable trigger, the part of each prompt before the trigger run once without gradients.

The trigger sits at the end of the user's turn (:mod:`fairprompt.models.causal_lm`), and a causal model's states
before it do not depend on it.  So a training step runs the template's start, the input and the question (about 190
of the 220 tokens of a discrim-eval prompt) once under ``no_grad`` into a key-value cache, then only the trigger and
the shared tail (end of turn, assistant header, assistant prefix) with gradients: a step costs a little more than an
inference pass instead of a forward and a backward pass through the whole prompt.  The un-repaired score of the same
rows comes from the same cache (the tail without the trigger).  :meth:`TriggerScorer.score` equals
:meth:`FrozenCausalLM.score_tensor` with the same trigger (tests check it to 1e-4); it needs single-token answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fairprompt.errors import FairpromptError
from fairprompt.models.causal_lm import FrozenCausalLM


@dataclass
class Heads:
    """The cached states of a batch's prompts up to the trigger."""

    cache: Any
    mask: torch.Tensor      # [B, W] the heads' attention mask (left padding, task prompt included)
    lengths: torch.Tensor   # [B] real columns of each head


class TriggerScorer:
    """Score rows of a :class:`FrozenCausalLM` with and without a trigger, reusing the heads (module docstring)."""

    def __init__(self, lm: FrozenCausalLM) -> None:
        if not lm.single_token_answers():
            raise FairpromptError("the trigger trainer reads the answer at one position, but a verbalizer answer has "
                                  "several tokens; use one-token answers such as yes / no")
        self.lm = lm
        self.tail = torch.tensor(lm.tail_ids, dtype=torch.long)

    def heads(self, heads: Sequence[Sequence[int]]) -> Heads:
        """Run the prompts' heads (token ids up to the trigger) into a cache, without gradients."""
        lm = self.lm
        with torch.no_grad():
            embeds, mask = lm.embed_rows(heads, trigger=False)
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            out = lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
        return Heads(cache=out.past_key_values, mask=mask, lengths=mask.sum(dim=1))

    def score(self, heads: Heads, trigger: torch.Tensor | None) -> torch.Tensor:
        """The verbalizer's log-odds of every row with ``trigger`` (None: without one) between head and tail;
        differentiable in ``trigger``.  The cache is cut back to the heads afterwards, for the next call."""
        lm = self.lm
        batch, width = heads.mask.shape
        device = heads.mask.device
        tail = lm.model.get_input_embeddings()(self.tail.to(device)).unsqueeze(0).expand(batch, -1, -1)
        if trigger is not None:
            soft = trigger.to(device=device, dtype=tail.dtype).unsqueeze(0).expand(batch, -1, -1)
            tail = torch.cat([soft, tail], dim=1)
        steps = tail.shape[1]
        mask = torch.cat([heads.mask, torch.ones(batch, steps, dtype=heads.mask.dtype, device=device)], dim=1)
        positions = heads.lengths.unsqueeze(1) + torch.arange(steps, device=device).unsqueeze(0)
        try:
            out = lm.model(inputs_embeds=tail, attention_mask=mask, position_ids=positions,
                           past_key_values=heads.cache, use_cache=True)
        finally:
            heads.cache.crop(-steps)
        return lm.verbalize(torch.log_softmax(out.logits[:, -1, :].float(), dim=-1))


__all__ = ["Heads", "TriggerScorer"]
