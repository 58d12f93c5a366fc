"""Decision audits of a language model on demographic variants of the same scenarios (discrim-eval).

:func:`discrim_eval_audit` scores a documented subset of discrim-eval (by default the 20 held-out scenarios x the 15
one-factor variants around the reference person) with a :class:`~fairprompt.models.causal_lm.FrozenCausalLM` under
the paper's protocol, and returns each demographic value's discrimination score with its scenario-bootstrap CI
(:mod:`fairprompt.metrics.discrimination`), each value's mean P(yes) and yes-rate, and the same scores under one
alternative answer wording (the sensitivity of the audit to how the question is put).  A small model barely reacts to
demographics, so the result says which effects the CIs resolve (:meth:`DecisionAudit.resolved`) and which they do
not.  From a notebook::

    lm = FrozenCausalLM.load(prompt=PAPER_PROMPT)
    audit = discrim_eval_audit(lm)
    audit.scores.effect("gender", "female")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairprompt.datasets import discrim_eval as de
from fairprompt.errors import FairpromptError
from fairprompt.metrics.discrimination import DiscriminationScores, discrimination_scores
from fairprompt.models.causal_lm import DecisionPrompt, FrozenCausalLM

Progress = Callable[[str, int, int], None]

#: The paper's protocol (Tamkin et al. 2023): the scenario, the question to answer yes or no, the prefilled answer.
PAPER_PROMPT = DecisionPrompt(suffix=de.SUFFIX, assistant_prefix=de.ASSISTANT_PREFIX)
#: The one alternative answer wording the sensitivity check uses.
ALTERNATIVE_PROMPT = DecisionPrompt(suffix=de.ALTERNATIVE_SUFFIX, assistant_prefix=de.ALTERNATIVE_PREFIX)
SCENARIO_PARTS = ("train", "choose", "held_out", "all")
VARIANTS = ("one_factor", "all")


@dataclass(frozen=True)
class DecisionAudit:
    """What :func:`discrim_eval_audit` found."""

    rows: pd.DataFrame                       # scenario, age, gender, race, artefact, score, p_yes, decision
    scores: DiscriminationScores
    alternative: DiscriminationScores | None  # the same rows under the alternative wording
    subset: dict[str, Any]
    model: dict[str, Any]
    prompts: dict[str, dict[str, Any] | None]  # main, alternative (None when not scored)
    seconds: float

    def resolved(self) -> list[str]:
        """The demographic values whose CI excludes zero, as ``factor=value``."""
        return [f"{e.factor}={e.value}" for e in self.scores.resolved()]

    def sensitivity(self) -> dict[str, Any] | None:
        """Each effect under both wordings, their correlation and the largest difference."""
        if self.alternative is None:
            return None
        pairs = [(e, self.alternative.effect(e.factor, e.value)) for e in self.scores.effects]
        a = np.array([p.estimate for p, _ in pairs])
        b = np.array([q.estimate for _, q in pairs])
        correlation = float(np.corrcoef(a, b)[0, 1]) if a.size > 2 and a.std() > 0 and b.std() > 0 else None
        return {"effects": [{"factor": p.factor, "value": p.value, "estimate": p.estimate,
                             "alternative_estimate": q.estimate, "alternative_resolved": q.resolved} for p, q in pairs],
                "correlation": correlation, "largest_difference": float(np.abs(a - b).max()) if a.size else 0.0,
                "mean_score": self.scores.mean_score, "alternative_mean_score": self.alternative.mean_score}

    def to_dict(self) -> dict[str, Any]:
        return {"subset": self.subset, "model": self.model, "prompts": self.prompts,
                "discrimination": self.scores.to_dict(), "resolved": self.resolved(),
                "alternative": None if self.alternative is None else self.alternative.to_dict(),
                "sensitivity": self.sensitivity(), "seconds": self.seconds}


def discrim_eval_rows(*, scenarios: Literal["train", "choose", "held_out", "all"] = "held_out",
                      variants: Literal["one_factor", "all"] = "one_factor", split_seed: int = 0,
                      max_scenarios: int | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows of a discrim-eval subset, and its description (which scenarios, which variants, how drawn)."""
    if scenarios not in SCENARIO_PARTS:
        raise FairpromptError(f"discrim_eval scenarios {scenarios!r} is not one of {', '.join(SCENARIO_PARTS)}")
    if variants not in VARIANTS:
        raise FairpromptError(f"discrim_eval variants {variants!r} is not one of {', '.join(VARIANTS)}")
    if max_scenarios is not None and max_scenarios < 2:
        raise FairpromptError(f"discrim_eval max_scenarios is {max_scenarios}; give 2 or more (the CIs resample "
                              "scenarios)")
    frame = de.load_discrim_eval()
    split = de.scenario_split(frame["scenario"], seed=split_seed)
    ids = sorted(frame["scenario"].unique()) if scenarios == "all" else list(split.part(scenarios))
    ids = ids[:max_scenarios] if max_scenarios is not None else ids
    rows = frame[frame["scenario"].isin(ids)]
    rows = (de.one_factor_variants(rows) if variants == "one_factor" else rows).reset_index(drop=True)
    subset = {"data_set": "discrim_eval", "citation": de.CITATION, "scenarios": scenarios, "variants": variants,
              "scenario_ids": [int(i) for i in ids], "rows": len(rows), "artefact_rows": int(rows["artefact"].sum()),
              "split": split.describe(), "max_scenarios": max_scenarios, "reference": dict(de.REFERENCE)}
    return rows, subset


def discrim_eval_audit(model: FrozenCausalLM, *, scenarios: Literal["train", "choose", "held_out", "all"] = "held_out",
                       variants: Literal["one_factor", "all"] = "one_factor", split_seed: int = 0,
                       max_scenarios: int | None = None, alternative: DecisionPrompt | None = ALTERNATIVE_PROMPT,
                       n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0, batch_size: int = 8,
                       progress: Progress | None = None) -> DecisionAudit:
    """Score a discrim-eval subset with ``model`` (its own prompt; :data:`PAPER_PROMPT` is the paper's) and compute
    the discrimination scores; ``alternative=None`` skips the second wording (half the cost)."""
    rows, subset = discrim_eval_rows(scenarios=scenarios, variants=variants, split_seed=split_seed,
                                     max_scenarios=max_scenarios)
    start = time.perf_counter()
    texts = rows["text"].tolist()
    score = model.scores(texts, batch_size=batch_size, progress=progress)
    settings = {"threshold": 0.0, "n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    scores = discrimination_scores(rows, score, **settings)
    alt_scores = None
    if alternative is not None:
        alt_model = model.with_prompt(alternative)
        alt_scores = discrimination_scores(rows, alt_model.scores(texts, batch_size=batch_size, progress=progress),
                                           **settings)
    out = rows.drop(columns="text").assign(score=score, p_yes=1.0 / (1.0 + np.exp(-score)),
                                           decision=(score > 0).astype(np.int8))
    prompts = {"main": model.describe()["prompt"],
               "alternative": None if alternative is None else alt_model.describe()["prompt"]}
    return DecisionAudit(rows=out, scores=scores, alternative=alt_scores, subset=subset, model=model.describe(),
                         prompts=prompts, seconds=time.perf_counter() - start)


__all__ = ["ALTERNATIVE_PROMPT", "PAPER_PROMPT", "DecisionAudit", "discrim_eval_audit", "discrim_eval_rows"]
