"""The tasks of the audits beyond the count-table metrics, resolved from a spec (through
:func:`fairprompt.tasks.load_task`, the one entry point): a language model's decision audit on discrim-eval
(:class:`DecisionTask`) and the counterfactual audit of a text model's test texts (:class:`CounterfactualTask`).
Both are checked before any model is built."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError, did_you_mean

if TYPE_CHECKING:
    from fairprompt.spec import Spec
    from fairprompt.spec_language import CausalLMSpec


# ------------------------------------------------------------------------------------------ counterfactual
@dataclass(frozen=True)
class CounterfactualTask:
    """``audit.counterfactual`` resolved: the substitution lists (read and checked), the column and the bounds."""

    substitutions: Any  # fairprompt.counterfactual.Substitutions
    column: str | None
    max_rows: int
    n_boot: int
    confidence: float
    seed: int

    def run(self, *, texts: Sequence[str], score: Callable[[list[str]], np.ndarray], threshold: float,
            score_name: str) -> dict[str, Any]:
        """The counterfactual audit of ``texts`` scored by ``score``, as results.json records it."""
        from fairprompt.counterfactual import counterfactual_audit

        result = counterfactual_audit(texts=texts, score=score, threshold=threshold, substitutions=self.substitutions,
                                      max_rows=self.max_rows, n_boot=self.n_boot, seed=self.seed,
                                      confidence=self.confidence)
        return {"column": self.column, "score": score_name} | result.to_dict()


def counterfactual_task(spec: Spec, text_info: dict[str, Any], test_texts: list[str]) -> CounterfactualTask | None:
    """``audit.counterfactual`` checked before any model is built: the column, the lists, and that they match."""
    c = spec.audit.counterfactual
    if c is None:
        return None
    from fairprompt.counterfactual import Substitutions

    own = text_info.get("text_column")
    if c.column is not None and c.column != own:
        reads = f"the column {own!r}" if own else "text written from the columns " + ", ".join(
            text_info.get("text_columns") or [])
        raise FairpromptError(f"audit.counterfactual.column is {c.column!r}, but the model reads {reads}; swap what "
                              "the model reads (leave column out, or set model.text.column)")
    substitutions = (Substitutions.load(c.substitutions, base=spec.folder) if isinstance(c.substitutions, str)
                     else Substitutions.load(c.substitutions))
    from fairprompt.counterfactual.audit import sample_rows

    read = [test_texts[i] for i in sample_rows(len(test_texts), max_rows=c.max_rows, seed=spec.audit.seed)]
    if not substitutions.variants(read)[0]:
        raise FairpromptError(f"audit.counterfactual: substitutions {substitutions.origin} match none of the "
                              f"{len(read):,} test texts read; give lists whose terms occur in the texts, or a larger "
                              "max_rows")
    return CounterfactualTask(substitutions=substitutions, column=own, max_rows=c.max_rows, n_boot=spec.audit.n_boot,
                              confidence=spec.audit.ci_level, seed=spec.audit.seed)


# ------------------------------------------------------------------------------------ language-model decisions
DISCRIM_EVAL_OPTIONS = ("scenarios", "variants", "split_seed", "max_scenarios")


@dataclass(frozen=True)
class DecisionTask:
    """A causal_lm spec resolved: the discrim-eval subset's rows, the model's settings and the bootstrap's."""

    rows: pd.DataFrame
    subset: dict[str, Any]
    backbone: str | None
    prompt: Any              # fairprompt.models.causal_lm.DecisionPrompt
    alternative: Any | None  # the second wording, or None
    verbalizer: Any          # fairprompt.models.causal_lm.Verbalizer
    batch_size: int
    n_resamples: int
    confidence: float
    seed: int
    interventions: tuple[Any, ...] = ()  # fairprompt.mitigation.decision_trigger_method.Intervention
    trigger: Path | None = None          # a decision trigger's directory
    repairs: bool = False

    @property
    def seeds(self) -> dict[str, int]:
        return {"bootstrap": self.seed, "split": int(self.subset["split"]["seed"])}

    def load_model(self) -> Any:
        """The frozen causal LM deciding through the spec's prompt and verbalizer."""
        from fairprompt.models.causal_lm import FrozenCausalLM

        return FrozenCausalLM.load(self.backbone, verbalizer=self.verbalizer, prompt=self.prompt)


def decision_task(spec: Spec, m: CausalLMSpec, *, backbone: str | None) -> DecisionTask:
    """A causal_lm spec's task; ``backbone`` as resolved by :func:`fairprompt.tasks.load_task` (None: the embedded
    model)."""
    from fairprompt.decision_audit import discrim_eval_rows
    from fairprompt.models.causal_lm import Verbalizer

    assert spec.data is not None
    options = dict(spec.data.options)
    unknown = sorted(set(options) - set(DISCRIM_EVAL_OPTIONS))
    if unknown:
        raise FairpromptError(f"data.options.{unknown[0]} is not an option of discrim_eval "
                              f"({', '.join(DISCRIM_EVAL_OPTIONS)}){did_you_mean(unknown[0], DISCRIM_EVAL_OPTIONS)}")
    for key in ("split_seed", "max_scenarios"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise FairpromptError(f"data.options.{key} is {value!r}; give a whole number of 0 or more")
    for key in ("scenarios", "variants"):
        if key in options and not isinstance(options[key], str):
            raise FairpromptError(f"data.options.{key} is {options[key]!r}; give one of its names")
    rows, subset = discrim_eval_rows(**options)
    interventions, trigger = _decision_repairs(m)
    return DecisionTask(
        rows=rows, subset=subset, backbone=backbone, prompt=m.prompt.config(),
        alternative=None if m.alternative_prompt == "none" else m.alternative_prompt.config(),
        verbalizer=Verbalizer(favourable=tuple(m.verbalizer.favourable), unfavourable=tuple(m.verbalizer.unfavourable)),
        batch_size=m.batch_size, n_resamples=spec.audit.n_boot, confidence=spec.audit.ci_level, seed=spec.audit.seed,
        interventions=interventions, trigger=trigger, repairs=m.repairs is not None,
    )


def _decision_repairs(m: CausalLMSpec) -> tuple[tuple[Any, ...], Path | None]:
    """The interventions and the trigger directory a causal_lm spec's ``model.repairs`` names (checked here, before
    the model loads)."""
    from fairprompt.mitigation.decision_trigger_method.artifact import read_record
    from fairprompt.mitigation.decision_trigger_method.interventions import INTERVENTIONS
    from fairprompt.mitigation.decision_trigger_method.shipped import shipped_trigger

    if m.repairs is None:
        return (), None
    names = m.repairs.interventions
    names = list(INTERVENTIONS) if names == "all" else [] if names == "none" else list(names)
    for name in names:
        if name not in INTERVENTIONS:
            raise FairpromptError(f"model.repairs.interventions: {name!r} is not known; use all, none or names from "
                                  f"{', '.join(INTERVENTIONS)}{did_you_mean(name, tuple(INTERVENTIONS))}")
    if len(set(names)) != len(names):
        raise FairpromptError("model.repairs.interventions lists a name twice; list each once")
    trigger: Path | None
    if m.repairs.trigger == "none":
        trigger = None
    elif m.repairs.trigger == "shipped":
        trigger = shipped_trigger("llm_decisions")
        if not (trigger / "decision_trigger.json").is_file():
            raise FairpromptError(f"model.repairs.trigger: shipped, but {trigger} holds no trigger; run make "
                                  "trigger-artifact-llm_decisions or set trigger: none")
    else:
        trigger = Path(m.repairs.trigger)
        read_record(trigger)  # a missing or foreign directory is named now
    if not names and trigger is None:
        raise FairpromptError("model.repairs names no intervention and no trigger; remove the block or name one")
    return tuple(INTERVENTIONS[n] for n in names), trigger


__all__ = ["DISCRIM_EVAL_OPTIONS", "CounterfactualTask", "DecisionTask", "counterfactual_task", "decision_task"]
