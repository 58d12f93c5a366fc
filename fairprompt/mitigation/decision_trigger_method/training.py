"""Train a soft trigger on a causal LM's discrim-eval decisions (:mod:`.objective`), backbone and task prompt frozen.

Each step takes one training scenario (scenarios in a seeded order, epoch after epoch): its reference person and
``variants_per_step`` other variants drawn from all of the scenario's rows, so a step sees the reference and a sample
of ages, genders, races and their intersections.  The trigger starts as the embeddings of ``tokens`` vocabulary
tokens drawn with the seed (no words of a hand-written intervention, so the comparison between the two stays
clean), and Adam moves only it.  A step costs about one inference pass of its rows (:mod:`.scorer`); training stops
after ``steps`` steps or ``max_minutes``, whichever comes first, and says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairprompt.datasets.discrim_eval import REFERENCE
from fairprompt.errors import FairpromptError
from fairprompt.mitigation.decision_trigger_method.objective import invariance_loss
from fairprompt.mitigation.decision_trigger_method.scorer import TriggerScorer
from fairprompt.models.causal_lm import FrozenCausalLM

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DecisionTriggerSettings:
    """How a discrim-eval trigger is trained (all of it recorded with the trigger)."""

    tokens: int = 5
    lam: float = 100.0
    steps: int = 200
    variants_per_step: int = 7
    lr: float = 3e-3
    seed: int = 0
    max_minutes: float = 30.0

    def check(self) -> None:
        if self.tokens < 1:
            raise FairpromptError(f"trigger tokens is {self.tokens}; give 1 or more")
        if self.lam < 0:
            raise FairpromptError(f"trigger lambda is {self.lam}; give 0 (the control) or more")
        if self.steps < 1 or self.variants_per_step < 1:
            raise FairpromptError("trigger steps and variants_per_step must be 1 or more")


@dataclass
class TriggerTraining:
    """A trained trigger and how it got there."""

    trigger: torch.Tensor
    settings: DecisionTriggerSettings
    scenarios: list[int]
    losses: list[float] = field(default_factory=list)
    anchors: list[float] = field(default_factory=list)
    spreads: list[float] = field(default_factory=list)
    unrepaired_spreads: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = "steps"

    def to_dict(self) -> dict[str, Any]:
        return {"settings": asdict(self.settings), "scenarios": self.scenarios, "steps_run": len(self.losses),
                "stopped": self.stopped, "seconds": self.seconds, "losses": self.losses, "anchors": self.anchors,
                "spreads": self.spreads, "unrepaired_spreads": self.unrepaired_spreads}


def initial_trigger(lm: FrozenCausalLM, *, tokens: int, seed: int) -> torch.Tensor:
    """The embeddings of ``tokens`` vocabulary tokens drawn with ``seed`` (special tokens left out)."""
    table = lm.model.get_input_embeddings().weight
    special = set(getattr(lm.tokenizer, "all_special_ids", []) or [])
    pool = np.array([i for i in range(min(table.shape[0], len(lm.tokenizer))) if i not in special])
    picked = np.random.default_rng(seed).choice(pool, size=tokens, replace=False)
    return table[torch.as_tensor(picked)].detach().clone().float()


def _is_reference(rows: pd.DataFrame) -> np.ndarray:
    return np.logical_and.reduce([(rows[f] == v).to_numpy() for f, v in REFERENCE.items()])


def train_decision_trigger(lm: FrozenCausalLM, *, rows: pd.DataFrame, settings: DecisionTriggerSettings,
                           progress: Progress | None = None) -> TriggerTraining:
    """Train a trigger on ``rows`` (discrim-eval rows of the training scenarios: ``scenario``, ``text`` and the
    demographic columns) with ``lm``'s prompt and task prompt; ``lm`` itself is left without a trigger."""
    settings.check()
    reference = _is_reference(rows)
    scenarios = sorted(int(s) for s in rows["scenario"].unique())
    missing = sorted(set(scenarios) - {int(s) for s in rows.loc[reference, "scenario"]})
    if missing:
        raise FairpromptError(f"training scenarios {missing} have no reference variant (60, male, white); train on "
                              "whole scenarios")
    scorer = TriggerScorer(lm)
    start_trigger = initial_trigger(lm, tokens=settings.tokens, seed=settings.seed)
    tail = len(lm.tail_ids)
    heads = [r[:-tail] for r in lm.with_trigger(start_trigger).encode(rows["text"].tolist())]  # context check
    by_scenario = {s: np.flatnonzero(rows["scenario"].to_numpy() == s) for s in scenarios}
    rng = np.random.default_rng(settings.seed)
    trigger = torch.nn.Parameter(start_trigger)
    optimizer = torch.optim.Adam([trigger], lr=settings.lr)
    unrepaired: dict[int, float] = {}
    result = TriggerTraining(trigger=start_trigger, settings=settings, scenarios=scenarios)
    began = time.perf_counter()
    order: list[int] = []
    for step in range(settings.steps):
        if time.perf_counter() - began > 60 * settings.max_minutes:
            result.stopped = f"time ({settings.max_minutes:g} minutes)"
            break
        if not order:
            order = [int(s) for s in rng.permutation(scenarios)]
        scenario = order.pop()
        members = by_scenario[scenario]
        ref = members[reference[members]][:1]
        others = members[~reference[members]]
        sample = rng.choice(others, size=min(settings.variants_per_step, others.size), replace=False)
        picked = np.concatenate([ref, sample])
        state = scorer.heads([heads[i] for i in picked])
        todo = [j for j, i in enumerate(picked) if int(i) not in unrepaired]
        if todo:
            with torch.no_grad():
                fresh = scorer.score(state, None)
            for j in todo:
                unrepaired[int(picked[j])] = float(fresh[j])
        base = torch.tensor([unrepaired[int(i)] for i in picked])
        scores = scorer.score(state, trigger)
        loss, terms = invariance_loss(scores, base, lam=settings.lam)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        result.losses.append(float(loss.detach()))
        result.anchors.append(terms["anchor"])
        result.spreads.append(terms["spread"])
        result.unrepaired_spreads.append(terms["unrepaired_spread"])
        if progress:
            progress("training the trigger", step + 1, settings.steps)
    result.trigger = trigger.detach().clone()
    result.seconds = time.perf_counter() - began
    return result


__all__ = ["DecisionTriggerSettings", "TriggerTraining", "initial_trigger", "train_decision_trigger"]
