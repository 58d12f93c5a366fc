"""Score a set of rows under every repair: the un-repaired model, each hand-written intervention, each trigger.

The un-repaired scores, every trigger's and every intervention's share one pass over the prompts' heads
(:mod:`.scorer`): a trigger, like an intervention's sentence, sits at the end of the user's turn, so it changes only
the columns from there on, and each repair costs a pass over the short tail.  An intervention's sentence enters as
the embeddings of its tokens, which is the model's own reading of the text when the prompt tokenises to the head's
tokens followed by the sentence's (checked for every row; otherwise that intervention is scored by a whole pass).
The scores equal ``FrozenCausalLM.scores`` with the trigger set or the intervention appended (to about 1e-5; tests
check both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from fairprompt.mitigation.decision_trigger_method.interventions import Intervention, with_intervention
from fairprompt.mitigation.decision_trigger_method.scorer import TriggerScorer
from fairprompt.models.causal_lm import FrozenCausalLM

Progress = Callable[[str, int, int], None]
UNREPAIRED = "unrepaired"


def score_repairs(lm: FrozenCausalLM, *, texts: Sequence[str], interventions: Sequence[Intervention] = (),
                  triggers: Mapping[str, torch.Tensor] | None = None, batch_size: int = 8,
                  progress: Progress | None = None) -> dict[str, np.ndarray]:
    """``{"unrepaired": scores, "<trigger name>": ..., "<intervention name>": ...}`` for ``texts``, in order."""
    soft = dict(triggers or {})
    tail = len(lm.tail_ids)
    longest = max((int(t.shape[0]) for t in soft.values()), default=0)
    longest_trigger = next((t for t in soft.values() if int(t.shape[0]) == longest), torch.zeros(0))
    heads = [r[:-tail] if tail else r for r in lm.with_trigger(longest_trigger).encode(texts)]  # context check
    whole = []
    table = lm.model.get_input_embeddings()
    for item in interventions:
        appended = with_intervention(lm, item)
        extra = list(lm.tokenizer.encode(appended.prompt.suffix[len(lm.prompt.suffix):], add_special_tokens=False))
        if appended.encode(texts) == [h + extra + lm.tail_ids for h in heads]:
            with torch.no_grad():
                soft[item.name] = table(torch.tensor(extra, dtype=torch.long)).float()
        else:
            whole.append(item)
    out: dict[str, np.ndarray] = {name: np.empty(len(texts)) for name in (UNREPAIRED, *soft)}
    if lm.single_token_answers():
        scorer = TriggerScorer(lm)
        order = np.argsort([len(h) for h in heads], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                state = scorer.heads([heads[i] for i in chunk])
                for name in out:
                    out[name][chunk] = scorer.score(state, soft.get(name)).double().numpy()
                if progress:
                    progress("scoring the repairs", min(start + batch_size, len(order)), len(order))
    else:  # answers of several tokens: whole passes, the trigger set on the model in turn
        out[UNREPAIRED] = lm.scores(texts, batch_size=batch_size, progress=progress)
        named = {i.name: i for i in interventions}
        for name, tokens in soft.items():
            if name in named:
                whole.append(named[name])
                continue
            out[name] = lm.with_trigger(tokens).scores(texts, batch_size=batch_size, progress=progress)
    for item in whole:
        out[item.name] = with_intervention(lm, item).scores(texts, batch_size=batch_size, progress=progress)
    return out


__all__ = ["UNREPAIRED", "score_repairs"]
