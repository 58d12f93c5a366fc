"""What :func:`~fairprompt.mitigation.reprogram_method.repair.reprogram` trained and chose."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn


@dataclass
class ReprogramResult:
    """What :func:`reprogram` trained and chose; ``to_dict`` is results.json-ready."""

    trigger_kind: str
    modality: str
    config: dict[str, Any]
    rule: str
    rule_met: bool
    chosen_lambda: float
    points: list[dict[str, Any]]          # per lambda: selection metrics, pareto, chosen, history, diverged
    before: dict[str, float]              # the untriggered model on the selection rows
    tuning: dict[str, Any]                # rows used to train and to select, and how they were drawn
    parameters: dict[str, Any]            # trainable counts and shares
    trigger_description: dict[str, Any]   # words (hard), image (border/patch), shape
    warnings: list[str]
    seconds: float
    triggered_model: nn.Module = field(repr=False)
    trigger: nn.Module = field(repr=False)   # the saved form: SoftPrompt, PixelBorder or PixelPatch
    artifacts: dict[str, str] = field(default_factory=dict)
    triggered_models: list[nn.Module] = field(default_factory=list, repr=False)  # per point (the control too)

    @property
    def chosen(self) -> dict[str, Any]:
        return next(p for p in self.points if p["chosen"])

    def pareto_front(self) -> list[dict[str, Any]]:
        return [p for p in self.points if p["pareto"]]

    def save(self, directory: str | Path) -> dict[str, str]:
        """Write the chosen trigger (``trigger.safetensors`` + ``trigger.json``,
        :func:`~fairprompt.mitigation.reprogram_method.artifact.save_trigger`); returns the paths."""
        from fairprompt.mitigation.reprogram_method.artifact import save_trigger

        return save_trigger(self, directory)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts (:func:`~fairprompt.mitigation.reprogram_method.record.result_record`)."""
        from fairprompt.mitigation.reprogram_method.record import result_record

        return result_record(self)


__all__ = ["ReprogramResult"]
