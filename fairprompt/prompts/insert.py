"""Insert learned token embeddings into a batch of input embeddings.

One mechanism serves every text prompt: the task prompt (prepended), repair
tokens and fairness triggers (appended), and on a causal language model's
left-padded prompts the task prompt and the trigger at given columns (``at``).  Everything is index arithmetic and a
single ``gather``, so there is no Python loop over rows and gradients flow
into the inserted tokens.

Insertion rule
--------------
``prepend``
    The ``n`` tokens become positions ``0..n-1`` of every row (mask 1, token
    type 0); works with any padding side.
``append``
    Batches must be RIGHT-padded (``[1, ..., 1, 0, ..., 0]`` masks; rows
    without padding are fine).  With ``before_last=True`` (the default, for
    tokenizers that close a sequence with a special token such as BERT's
    ``[SEP]``) row ``b`` of length ``len_b`` receives the tokens at positions
    ``len_b - 1 .. len_b + n - 2``, so the closing token moves to
    ``len_b + n - 1``; with ``before_last=False`` they go right after the last
    real token.  Padding stays at the end, masked.  Left-padded (or holed)
    masks are refused with a :class:`~fairprompt.errors.FairpromptError`:
    re-tokenize with ``tokenizer.padding_side = "right"``.  Inserted tokens
    take the token type id of the real token just before them.
``at``
    Row ``b`` receives the tokens at columns ``at[b] .. at[b] + n - 1``; the
    columns from ``at[b]`` on move right by ``n``.  Any padding side works; the
    caller names the column (for a causal LM: the first real column, where the
    task prompt goes, or the end of the user's turn, where a trigger goes).
    Each ``at[b]`` must lie in ``0 .. L``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from fairprompt.errors import FairpromptError

#: Where a prompt module (soft prompt, conditional prompt) sits.
Position = Literal["prepend", "append"]
POSITIONS: tuple[str, ...] = ("prepend", "append")
#: What :func:`insert_tokens` accepts: those, or explicit columns.
INSERT_POSITIONS: tuple[str, ...] = (*POSITIONS, "at")


@dataclass(frozen=True)
class InsertedInputs:
    """A batch after insertion; every tensor is ``n`` positions longer than before.

    ``token_positions`` [B, n] holds the index of each inserted token in its row.
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor | None
    token_positions: Tensor


def _check_shapes(inputs_embeds: Tensor, attention_mask: Tensor, tokens: Tensor, token_type_ids: Tensor | None) -> Tensor:
    if inputs_embeds.dim() != 3:
        raise FairpromptError(
            f"inputs_embeds must have shape [batch, length, dim] but has shape {tuple(inputs_embeds.shape)}; "
            "pass the output of the backbone's embedding layer"
        )
    batch, length, dim = inputs_embeds.shape
    if tuple(attention_mask.shape) != (batch, length):
        raise FairpromptError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but inputs_embeds is [{batch}, {length}, {dim}]; "
            "pass the mask that came with these inputs"
        )
    if token_type_ids is not None and tuple(token_type_ids.shape) != (batch, length):
        raise FairpromptError(
            f"token_type_ids has shape {tuple(token_type_ids.shape)} but inputs_embeds is [{batch}, {length}, {dim}]; "
            "pass the token_type_ids that came with these inputs or None"
        )
    if tokens.dim() == 2:
        tokens = tokens.unsqueeze(0)
    if tokens.dim() != 3 or tokens.shape[0] not in (1, batch) or tokens.shape[2] != dim:
        raise FairpromptError(
            f"prompt tokens have shape {tuple(tokens.shape)} but the inputs need [{batch} or 1, n, {dim}]; "
            "use a prompt trained for this backbone's embedding size"
        )
    return tokens


def insert_tokens(
    *,
    inputs_embeds: Tensor,
    attention_mask: Tensor,
    tokens: Tensor,
    position: Position | Literal["at"],
    token_type_ids: Tensor | None = None,
    before_last: bool = True,
    at: Tensor | None = None,
) -> InsertedInputs:
    """Insert ``tokens`` [B or 1, n, D] into ``inputs_embeds`` [B, L, D] (see the module docstring).

    Returns tensors of length ``L + n``; ``attention_mask`` keeps its dtype and
    ``token_type_ids`` (if given) is extended as described above.  ``at`` [B]
    (integers) is the insertion column of each row, for ``position="at"`` only.
    """
    if position not in INSERT_POSITIONS:
        raise FairpromptError(f"prompt position {position!r} is not known; use 'prepend', 'append' or 'at'")
    if (at is None) != (position != "at"):
        raise FairpromptError("give at= (one insertion column per row) with position='at', and only with it")
    tokens = _check_shapes(inputs_embeds, attention_mask, tokens, token_type_ids)
    batch, length, dim = inputs_embeds.shape
    n = tokens.shape[1]
    device = inputs_embeds.device
    tokens = tokens.to(device=device, dtype=inputs_embeds.dtype).expand(batch, n, dim)

    real = attention_mask != 0
    if position == "prepend":
        start = torch.zeros(batch, dtype=torch.long, device=device)
    elif position == "at":
        start = torch.as_tensor(at, dtype=torch.long, device=device).reshape(-1)
        if start.numel() != batch or bool(((start < 0) | (start > length)).any()):
            raise FairpromptError(f"at= needs one column in 0..{length} for each of the {batch} rows, got "
                                  f"{start.tolist()}")
    else:
        if length > 1 and bool((real[:, 1:] & ~real[:, :-1]).any()):
            raise FairpromptError(
                "attention_mask is left-padded (or has gaps) but appended prompt tokens need right padding; "
                "tokenize with tokenizer.padding_side = 'right'"
            )
        lengths = real.sum(dim=1)
        start = (lengths - 1).clamp(min=0) if before_last else lengths

    # Output column j takes: input j (j < start), token j - start (start <= j < start + n),
    # input j - n (j >= start + n).  Tokens live at columns L.. of the concatenation below.
    cols = torch.arange(length + n, device=device).unsqueeze(0)
    start_ = start.unsqueeze(1)
    in_prompt = (cols >= start_) & (cols < start_ + n)
    after = cols >= start_ + n
    source = torch.where(in_prompt, length + cols - start_, torch.where(after, cols - n, cols))

    combined = torch.cat([inputs_embeds, tokens], dim=1)
    new_embeds = torch.gather(combined, 1, source.unsqueeze(-1).expand(batch, length + n, dim))

    ones = torch.ones(batch, n, dtype=attention_mask.dtype, device=attention_mask.device)
    new_mask = torch.gather(torch.cat([attention_mask, ones], dim=1), 1, source.to(attention_mask.device))

    new_types: Tensor | None = None
    if token_type_ids is not None:
        if position == "prepend" or length == 0:
            fill = torch.zeros(batch, 1, dtype=token_type_ids.dtype, device=token_type_ids.device)
        else:
            neighbour = (start - 1).clamp(min=0).to(token_type_ids.device).unsqueeze(1)
            fill = torch.gather(token_type_ids, 1, neighbour)
        types = torch.cat([token_type_ids, fill.expand(batch, n)], dim=1)
        new_types = torch.gather(types, 1, source.to(token_type_ids.device))

    token_positions = start_ + torch.arange(n, device=device).unsqueeze(0)
    return InsertedInputs(
        inputs_embeds=new_embeds,
        attention_mask=new_mask,
        token_type_ids=new_types,
        token_positions=token_positions,
    )
