"""A frozen causal language model deciding through a verbalizer.

A row's prompt is a chat-templated user turn (an instruction, a hard prompt, followed by the input) and an
assistant prefix the model continues.  The score is the log-odds of the favourable answer against the unfavourable
one at the next position, each answer's probability summed over its variants ("yes" / "Yes"): ``log sum p(fav) -
log sum p(unfav)``, the logit of the normalised ``p(fav) / (p(fav) + p(unfav))``.  An answer of several tokens
scores the sum of its tokens' log-probabilities (teacher-forced after the prompt).  Decision: score above the
threshold (default 0).

Batches are left-padded, and the model is called on ``inputs_embeds`` built here, with position ids counted from
the attention mask, so a row scores the same alone and in a mixed batch: PEFT's ``PeftModelForCausalLM.forward``
drops ``position_ids`` for prompt tuning and puts virtual tokens before left pads, so this path does not use it.

The backbone is frozen at load (``requires_grad=False``, eval mode); scoring runs under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.models.causal_lm_source import CausalLMSource, resolve_causal_lm
from fairprompt.models.frozen import freeze


@dataclass(frozen=True)
class Verbalizer:
    """The answers that mean the favourable and the unfavourable decision, each with its variants."""

    favourable: tuple[str, ...] = ("yes", "Yes")
    unfavourable: tuple[str, ...] = ("no", "No")

    def token_ids(self, tokenizer: Any) -> tuple[list[list[int]], list[list[int]]]:
        """Each answer's token ids (no special tokens); refuses an answer that tokenises to nothing and a favourable
        and an unfavourable answer that tokenise alike."""
        out: list[list[list[int]]] = []
        for side, answers in (("favourable", self.favourable), ("unfavourable", self.unfavourable)):
            if not answers:
                raise FairpromptError(f"verbalizer.{side} is empty; give one answer or more, e.g. [yes, Yes]")
            ids = []
            for answer in answers:
                tokens = tokenizer.encode(answer, add_special_tokens=False) if isinstance(answer, str) else []
                if not tokens:
                    raise FairpromptError(f"verbalizer.{side} answer {answer!r} tokenises to nothing; give a "
                                          "non-empty word")
                ids.append(list(tokens))
            out.append(ids)
        favourable, unfavourable = out
        for a, ids in zip(self.favourable, favourable, strict=True):
            for b, other in zip(self.unfavourable, unfavourable, strict=True):
                if ids == other:
                    raise FairpromptError(f"verbalizer answers {a!r} (favourable) and {b!r} (unfavourable) tokenise "
                                          f"identically ({ids}); give answers the model can tell apart")
        return favourable, unfavourable


@dataclass(frozen=True)
class DecisionPrompt:
    """How a row becomes a prompt: the user turn is ``instruction`` + the input + ``suffix``, then the chat
    template's assistant start and ``assistant_prefix``.  ``chat_template=False`` writes the turn as plain text."""

    instruction: str = ""
    suffix: str = ""
    assistant_prefix: str = ""
    chat_template: bool = True


class FrozenCausalLM:
    """A frozen causal LM that scores yes/no decisions through a :class:`Verbalizer` (module docstring)."""

    def __init__(self, *, model: Any, tokenizer: Any, source: CausalLMSource,
                 verbalizer: Verbalizer = Verbalizer(), prompt: DecisionPrompt = DecisionPrompt()) -> None:
        self.model, self.tokenizer, self.source = freeze(model), tokenizer, source
        self.verbalizer, self.prompt = verbalizer, prompt
        self.favourable_ids, self.unfavourable_ids = verbalizer.token_ids(tokenizer)
        if prompt.chat_template and not getattr(tokenizer, "chat_template", None):
            raise FairpromptError(f"model {source.title} has no chat template, but the prompt asks for one; set "
                                  "chat_template: false or use an instruct model")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise FairpromptError(f"model {source.title} has neither a padding nor an end-of-text token to pad with")
        self.pad_id = int(pad)
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self.task_prompt: torch.Tensor | None = None  # soft tokens (n x hidden) after the padding, before the prompt

    @classmethod
    def load(cls, backbone: str | None = None, *, verbalizer: Verbalizer = Verbalizer(),
             prompt: DecisionPrompt = DecisionPrompt()) -> FrozenCausalLM:
        """The embedded SmolLM2 (None), a ``.gguf`` file, a local directory or a hub id."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from fairprompt.models.backbones import quiet_transformers

        quiet_transformers()
        source = resolve_causal_lm(backbone)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source.path)
            model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32)
        except (OSError, ValueError) as error:
            raise FairpromptError(f"causal LM {source.title!r} cannot be loaded from {source.path} "
                                  f"({str(error).splitlines()[0]}); give a directory written by save_pretrained") from None
        return cls(model=model, tokenizer=tokenizer, source=source, verbalizer=verbalizer, prompt=prompt)

    # ------------------------------------------------------------------------------------------------ prompts
    def prompt_text(self, text: str) -> str:
        """The full prompt of one input, as the model reads it."""
        p = self.prompt
        turn = f"{p.instruction}{text}{p.suffix}"
        if p.chat_template:
            head = self.tokenizer.apply_chat_template([{"role": "user", "content": turn}], tokenize=False,
                                                      add_generation_prompt=True)
        else:
            head = turn
        return head + p.assistant_prefix

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each input's prompt; a prompt longer than the context window is refused."""
        out = []
        longest = max(len(a) for a in (*self.favourable_ids, *self.unfavourable_ids)) - 1  # teacher-forced tokens
        longest += 0 if self.task_prompt is None else int(self.task_prompt.shape[0])
        for i, text in enumerate(texts):
            ids = self.tokenizer.encode(self.prompt_text(str(text)), add_special_tokens=False)
            if self.context and len(ids) + longest > self.context:
                raise FairpromptError(f"row {i}: its prompt has {len(ids):,} tokens, more than the model's context "
                                      f"window of {self.context:,}; shorten the text or the instruction")
            out.append(list(ids))
        return out

    # ------------------------------------------------------------------------------------------------ scoring
    def _logits(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, int]:
        """The model's logits for left-padded ``rows`` (every row ends at the last column), and the width.  A task
        prompt's soft tokens go right after each row's padding, so they count from position 0 like a prefix."""
        soft = self.task_prompt
        extra = 0 if soft is None else int(soft.shape[0])
        width = max(len(r) for r in rows) + extra
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
            mask[j, width - len(r) - extra:] = 1
        device = next(self.model.parameters()).device
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        embeds = self.model.get_input_embeddings()(ids)
        if soft is not None:
            starts = [width - len(r) - extra for r in rows]
            soft = soft.to(device=embeds.device, dtype=embeds.dtype)
            embeds = torch.stack([torch.cat([e[:s], soft, e[s + extra:]]) for e, s in zip(embeds, starts,
                                                                                                  strict=True)])
        return self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits.float(), width

    def _next_token(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """log p(token | row) at the next position, for every token of the vocabulary."""
        logits, _ = self._logits(rows)
        return torch.log_softmax(logits[:, -1, :], dim=-1).cpu()  # on the CPU: differentiable all the same

    def _log_probs(self, rows: Sequence[Sequence[int]], continuation: Sequence[int]) -> torch.Tensor:
        """log p(continuation | row) for each row: the sum over the continuation's tokens (teacher-forced)."""
        n = len(continuation)
        logits, width = self._logits([list(r) + list(continuation[:-1]) for r in rows])
        steps = torch.log_softmax(logits[:, width - n:, :], dim=-1)   # the positions that predict each token
        target = torch.as_tensor(list(continuation), device=steps.device).expand(len(rows), n)
        return steps.gather(2, target.unsqueeze(-1)).squeeze(-1).sum(dim=1).cpu()

    def score_tensor(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """The verbalizer's log-odds for prompts already encoded (one batch), differentiable (for training a task
        prompt); :meth:`score_ids` is the same under ``inference_mode``."""
        answers_both = (self.favourable_ids, self.unfavourable_ids)
        following = self._next_token(rows) if any(len(a) == 1 for side in answers_both for a in side) else None
        sides = []
        for answers in answers_both:
            single = sorted({a[0] for a in answers if len(a) == 1})
            parts = [following[:, single]] if following is not None and single else []
            parts += [self._log_probs(rows, a).unsqueeze(1) for a in answers if len(a) > 1]
            sides.append(torch.logsumexp(torch.cat(parts, dim=1), dim=1))
        return sides[0] - sides[1]

    def score_ids(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        """The verbalizer's log-odds for prompts already encoded (one batch)."""
        with torch.inference_mode():
            return self.score_tensor(rows).double().numpy()

    def scores(self, texts: Sequence[str], *, batch_size: int = 8,
               progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
        """The log-odds of every input, in order; batches group prompts of similar length."""
        encoded = self.encode(texts)
        order = np.argsort([len(r) for r in encoded], kind="stable")
        out = np.empty(len(encoded), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self.score_ids([encoded[i] for i in chunk])
            if progress:
                progress("scoring prompts", min(start + batch_size, len(order)), len(order))
        return out

    def with_prompt(self, prompt: DecisionPrompt) -> FrozenCausalLM:
        """The same frozen model (shared, not copied) deciding through another prompt."""
        other = FrozenCausalLM(model=self.model, tokenizer=self.tokenizer, source=self.source,
                               verbalizer=self.verbalizer, prompt=prompt)
        other.task_prompt = self.task_prompt
        return other

    def describe(self) -> dict[str, Any]:
        return {"kind": "causal_lm", "backbone": self.source.title, "path": self.source.path, "gguf": self.source.gguf,
                "parameters": int(sum(p.numel() for p in self.model.parameters())),
                "verbalizer": {"favourable": list(self.verbalizer.favourable),
                               "unfavourable": list(self.verbalizer.unfavourable)},
                "task_prompt_tokens": None if self.task_prompt is None else int(self.task_prompt.shape[0]),
                "prompt": {"instruction": self.prompt.instruction, "suffix": self.prompt.suffix,
                           "assistant_prefix": self.prompt.assistant_prefix, "chat_template": self.prompt.chat_template}}


__all__ = ["DecisionPrompt", "FrozenCausalLM", "Verbalizer"]
