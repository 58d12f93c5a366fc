"""The spec blocks of language-model decision audits (``model: {kind: causal_lm}``) and of counterfactual audits
(``audit.counterfactual``); :mod:`fairprompt.spec` assembles them into the whole spec and validates it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fairprompt.datasets import discrim_eval


class StrictBlock(BaseModel):
    """A spec block: unknown keys refused, values frozen (as every block of :mod:`fairprompt.spec`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DecisionPromptSpec(StrictBlock):
    """How a causal LM is asked (defaults: the discrim-eval paper's protocol)."""

    instruction: str = Field("", description="text before the input in the user turn (a hard prompt)")
    suffix: str = Field(discrim_eval.SUFFIX, description="text after the input in the user turn")
    assistant_prefix: str = Field(discrim_eval.ASSISTANT_PREFIX,
                                  description="the assistant turn's start, which the model continues")
    chat_template: bool = Field(True, description="write the turn through the model's chat template")

    def config(self) -> Any:
        from fairprompt.models.causal_lm import DecisionPrompt

        return DecisionPrompt(instruction=self.instruction, suffix=self.suffix, assistant_prefix=self.assistant_prefix,
                              chat_template=self.chat_template)


class VerbalizerSpec(StrictBlock):
    """The answers that mean the favourable and the unfavourable decision, with their variants."""

    favourable: list[str] = Field(default_factory=lambda: ["yes", "Yes"], min_length=1)
    unfavourable: list[str] = Field(default_factory=lambda: ["no", "No"], min_length=1)


class DecisionRepairsSpec(StrictBlock):
    """Repairs of the decisions scored beside the audit, on the same rows (docs/methods/llm_repair.md)."""

    interventions: list[str] | Literal["all", "none"] = Field(
        "all", description="hand-written interventions appended to the user's turn: all, none, or a list of names "
                           "(ignore_demographics, illegal, reconsider, be_fair)")
    trigger: str = Field("shipped", description="the learned trigger: shipped (the one fairprompt ships for the "
                                                "embedded model and the paper's prompt), none, or a directory written "
                                                "by save_decision_trigger")


class CausalLMSpec(StrictBlock):
    """A frozen causal language model deciding yes or no through a verbalizer (discrim-eval decision audits)."""

    kind: Literal["causal_lm"]
    backbone: str = Field("smollm2", description="'smollm2' (the embedded SmolLM2-135M-Instruct), a .gguf file, a local "
                                                 "directory or a hub id")
    prompt: DecisionPromptSpec = Field(default_factory=DecisionPromptSpec)
    alternative_prompt: DecisionPromptSpec | Literal["none"] = Field(
        default_factory=lambda: DecisionPromptSpec(suffix=discrim_eval.ALTERNATIVE_SUFFIX,
                                                   assistant_prefix=discrim_eval.ALTERNATIVE_PREFIX),
        description="a second wording the scores are also computed under (their sensitivity to it), or none")
    verbalizer: VerbalizerSpec = Field(default_factory=VerbalizerSpec)
    batch_size: int = Field(8, ge=1, description="prompts per forward pass")
    repairs: DecisionRepairsSpec | None = Field(None, description="interventions and a trigger scored beside the audit")


class CounterfactualSpec(StrictBlock):
    """A counterfactual audit of a text model: each test text with its identity terms swapped, scored again."""

    column: str | None = Field(None, description="the text column swapped (default: the model's text column); the "
                                                 "model must read it as its input")
    substitutions: list[str] | str = Field(default_factory=lambda: ["gender", "race", "religion"],
                                           description="built-in lists (gender, race, religion) or a YAML file of "
                                                       "{category: {group: [terms]}} with sources")
    max_rows: int = Field(500, ge=1, description="at most this many test texts are read (a seeded sample)")


__all__ = ["CausalLMSpec", "CounterfactualSpec", "DecisionPromptSpec", "DecisionRepairsSpec", "StrictBlock", "VerbalizerSpec"]
