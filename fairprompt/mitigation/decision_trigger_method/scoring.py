"""Score a set of rows under every repair: the un-repaired model, each hand-written intervention, each trigger.

The un-repaired scores and every trigger's share one pass over the prompts' heads (:mod:`.scorer`): a trigger changes
only the columns from the end of the user's turn on, so each extra trigger costs a pass over the short tail.  An
intervention changes the user's turn itself and costs a whole pass.  Triggers' scores equal
``FrozenCausalLM.scores`` with the trigger set (to about 1e-5; a test checks it).
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
    triggers = dict(triggers or {})
    out: dict[str, np.ndarray] = {}
    tail = len(lm.tail_ids)
    longest = max((int(t.shape[0]) for t in triggers.values()), default=0)
    if longest:
        lm.trigger = next(t for t in triggers.values() if int(t.shape[0]) == longest)  # the context check
    try:
        encoded = lm.encode(texts)
    finally:
        lm.trigger = None
    heads = [r[:-tail] for r in encoded] if longest else [r[:-tail] for r in encoded]
    if not longest:  # no trigger: the plain path
        out[UNREPAIRED] = lm.scores(texts, batch_size=batch_size, progress=progress)
    else:
        scorer = TriggerScorer(lm)
        names = [UNREPAIRED, *triggers]
        for name in names:
            out[name] = np.empty(len(texts))
        order = np.argsort([len(h) for h in heads], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                state = scorer.heads([heads[i] for i in chunk])
                for name in names:
                    out[name][chunk] = scorer.score(state, triggers.get(name)).double().numpy()
                if progress:
                    progress("scoring the triggers", min(start + batch_size, len(order)), len(order))
    for item in interventions:
        out[item.name] = with_intervention(lm, item).scores(texts, batch_size=batch_size, progress=progress)
    return out


__all__ = ["UNREPAIRED", "score_repairs"]
