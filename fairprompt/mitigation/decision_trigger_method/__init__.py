"""Repairs of a causal language model's decisions with prompts: hand-written interventions and a learned soft
trigger at the end of the user's turn (docs/llm_repair.md)."""

from fairprompt.mitigation.decision_trigger_method.interventions import INTERVENTIONS, Intervention, with_intervention

__all__ = ["INTERVENTIONS", "Intervention", "with_intervention"]
