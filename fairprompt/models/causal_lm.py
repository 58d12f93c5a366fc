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
Learned tokens enter through :func:`fairprompt.prompts.insert.insert_tokens` at given columns: a task prompt right
after each row's padding (it counts from position 0, like a prefix), a fairness trigger at the end of the user's
turn, after the input and the question and before the chat template's end of turn, the assistant header and the
assistant prefix (:attr:`FrozenCausalLM.tail_ids`, the same for every row).  There the trigger's tokens attend to the
whole input, and every position that leads to the answer attends to them, while the template the instruct model was
tuned on stays intact.

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
from fairprompt.prompts.insert import insert_tokens


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
        self.trigger: torch.Tensor | None = None      # soft tokens (n x hidden) at the end of the user's turn
        self.tail_ids: list[int] = self._tail_ids()

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
    def prompt_parts(self, text: str) -> tuple[str, str]:
        """One input's prompt as the model reads it, cut at the end of the user's turn: (the template's start, the
        instruction, the input and the suffix; the template's end of turn and assistant start, the assistant prefix)."""
        p = self.prompt
        turn = f"{p.instruction}{text}{p.suffix}"
        if not p.chat_template:
            return turn, p.assistant_prefix
        full = self.tokenizer.apply_chat_template([{"role": "user", "content": turn}], tokenize=False,
                                                  add_generation_prompt=True)
        for written in (turn, turn.strip()):  # some templates trim the turn
            at = full.rfind(written)
            if written and at >= 0:
                return full[:at + len(written)], full[at + len(written):] + p.assistant_prefix
        return full, p.assistant_prefix  # a template that rewrites the turn: the cut falls before the prefix

    def prompt_text(self, text: str) -> str:
        """The full prompt of one input, as the model reads it."""
        return "".join(self.prompt_parts(text))

    def _tail_ids(self) -> list[int]:
        return list(self.tokenizer.encode(self.prompt_parts("x")[1], add_special_tokens=False))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each input's prompt; a prompt longer than the context window is refused.  With a trigger the
        two parts of :meth:`prompt_parts` are tokenised apart, so every row ends with :attr:`tail_ids` and the
        trigger goes right before them (for a chat template both ways give the same ids: its end of turn is a
        special token)."""
        out = []
        longest = max(len(a) for a in (*self.favourable_ids, *self.unfavourable_ids)) - 1  # teacher-forced tokens
        longest += 0 if self.task_prompt is None else int(self.task_prompt.shape[0])
        trigger = 0 if self.trigger is None else int(self.trigger.shape[0])
        for i, text in enumerate(texts):
            if self.trigger is None:
                ids = self.tokenizer.encode(self.prompt_text(str(text)), add_special_tokens=False)
            else:
                head, _ = self.prompt_parts(str(text))
                ids = list(self.tokenizer.encode(head, add_special_tokens=False)) + self.tail_ids
            if self.context and len(ids) + longest > self.context:
                raise FairpromptError(f"row {i}: its prompt has {len(ids):,} tokens, more than the model's context "
                                      f"window of {self.context:,}; shorten the text, the instruction or the "
                                      "intervention")
            if self.context and len(ids) + longest + trigger > self.context:
                raise FairpromptError(f"row {i}: the trigger's {trigger:,} tokens push its prompt ({len(ids):,} "
                                      f"tokens) past the model's context window of {self.context:,}; use a shorter "
                                      "trigger")
            out.append(list(ids))
        return out

    # ------------------------------------------------------------------------------------------------ scoring
    def embed_rows(self, rows: Sequence[Sequence[int]], *, after: int = 0,
                   trigger: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded embeddings and attention mask of ``rows`` (every row ends at the last column) with the task
        prompt right after each row's padding and the trigger ``after`` + ``len(tail_ids)`` columns before its end
        (``after``: columns appended to every row after its prompt, such as teacher-forced answer tokens;
        ``trigger=False``: rows that stop where the trigger would start, as the trigger's trainer reads them)."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
            mask[j, width - len(r):] = 1
        device = next(self.model.parameters()).device
        ids, mask = ids.to(device), mask.to(device)
        embeds = self.model.get_input_embeddings()(ids)
        if self.task_prompt is not None:
            starts = torch.tensor([width - len(r) for r in rows], device=device)
            inserted = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=self.task_prompt,
                                     position="at", at=starts)
            embeds, mask = inserted.inputs_embeds, inserted.attention_mask
        if self.trigger is not None and trigger:
            column = embeds.shape[1] - len(self.tail_ids) - after
            inserted = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=self.trigger, position="at",
                                     at=torch.full((len(rows),), column, device=device))
            embeds, mask = inserted.inputs_embeds, inserted.attention_mask
        return embeds, mask

    def _logits(self, rows: Sequence[Sequence[int]], *, after: int = 0) -> tuple[torch.Tensor, int]:
        """The model's logits for left-padded ``rows`` (:meth:`embed_rows`), and the width."""
        embeds, mask = self.embed_rows(rows, after=after)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits.float(), \
            embeds.shape[1]

    def _next_token(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """log p(token | row) at the next position, for every token of the vocabulary."""
        logits, _ = self._logits(rows)
        return torch.log_softmax(logits[:, -1, :], dim=-1).cpu()  # on the CPU: differentiable all the same

    def _log_probs(self, rows: Sequence[Sequence[int]], continuation: Sequence[int]) -> torch.Tensor:
        """log p(continuation | row) for each row: the sum over the continuation's tokens (teacher-forced)."""
        n = len(continuation)
        logits, width = self._logits([list(r) + list(continuation[:-1]) for r in rows], after=n - 1)
        steps = torch.log_softmax(logits[:, width - n:, :], dim=-1)   # the positions that predict each token
        target = torch.as_tensor(list(continuation), device=steps.device).expand(len(rows), n)
        return steps.gather(2, target.unsqueeze(-1)).squeeze(-1).sum(dim=1).cpu()

    def single_token_answers(self) -> bool:
        """Whether every answer of the verbalizer is one token (the score is then read at one position)."""
        return all(len(a) == 1 for side in (self.favourable_ids, self.unfavourable_ids) for a in side)

    def verbalize(self, log_probs: torch.Tensor) -> torch.Tensor:
        """The log-odds from next-token log-probabilities [B, vocab], for single-token answers."""
        favourable = sorted({a[0] for a in self.favourable_ids})
        unfavourable = sorted({a[0] for a in self.unfavourable_ids})
        return torch.logsumexp(log_probs[:, favourable], dim=1) - torch.logsumexp(log_probs[:, unfavourable], dim=1)

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

    def with_trigger(self, trigger: torch.Tensor | None) -> FrozenCausalLM:
        """The same frozen model (shared, not copied) with ``trigger`` at the end of the user's turn (None: none)."""
        other = self.with_prompt(self.prompt)
        other.trigger = trigger
        return other

    def with_prompt(self, prompt: DecisionPrompt) -> FrozenCausalLM:
        """The same frozen model (shared, not copied) deciding through another prompt."""
        other = FrozenCausalLM(model=self.model, tokenizer=self.tokenizer, source=self.source,
                               verbalizer=self.verbalizer, prompt=prompt)
        other.task_prompt, other.trigger = self.task_prompt, self.trigger
        return other

    def describe(self) -> dict[str, Any]:
        return {"kind": "causal_lm", "backbone": self.source.title, "path": self.source.path, "gguf": self.source.gguf,
                "parameters": int(sum(p.numel() for p in self.model.parameters())),
                "verbalizer": {"favourable": list(self.verbalizer.favourable),
                               "unfavourable": list(self.verbalizer.unfavourable)},
                "task_prompt_tokens": None if self.task_prompt is None else int(self.task_prompt.shape[0]),
                "trigger_tokens": None if self.trigger is None else int(self.trigger.shape[0]),
                "prompt": {"instruction": self.prompt.instruction, "suffix": self.prompt.suffix,
                           "assistant_prefix": self.prompt.assistant_prefix, "chat_template": self.prompt.chat_template}}


__all__ = ["DecisionPrompt", "FrozenCausalLM", "Verbalizer"]
