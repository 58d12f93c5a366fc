"""A finished FairReprogram repair as a shipped artifact (:mod:`fairprompt.mitigation.shipped`), and back.

``reprogram_result.json`` holds the :class:`ReprogramResult` facts its record shows (every lambda's point with
its training history, the rule and choice, tuning rows, parameter counts, the trigger's description, warnings,
the original training time); ``trigger_I.safetensors`` + ``trigger_I.json`` the trigger of the I-th lambda of
the grid in its saved form (:func:`fairprompt.prompts.save_prompt`; a hard trigger as its words).  Nothing is
unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.reprogram_method.result import ReprogramResult
from fairprompt.mitigation.shipped import read_json, write_json

RESULT_FILE = "reprogram_result.json"
TRIGGER_STEM = "trigger_{index}"
FACTS: tuple[str, ...] = ("trigger_kind", "modality", "config", "rule", "rule_met", "chosen_lambda", "points", "before",
                          "tuning", "parameters", "trigger_description", "warnings", "seconds")


def save_result(result: ReprogramResult, directory: Path, *, model: Any) -> None:
    """Write what :func:`load_result` rebuilds ``result`` from into ``directory`` (``model``: the frozen model the
    triggers were trained on)."""
    from fairprompt.mitigation.reprogram_method.triggers import deployed_trigger
    from fairprompt.prompts import save_prompt

    for index, triggered in enumerate(result.triggered_models):
        save_prompt(deployed_trigger(triggered, model=model), directory / TRIGGER_STEM.format(index=index))
    chosen = [i for i, point in enumerate(result.points) if point.get("chosen")]
    write_json(directory / RESULT_FILE, {"format": "fairprompt.reprogram_result", "format_version": 1,
                                         "facts": {name: getattr(result, name) for name in FACTS},
                                         "triggers": len(result.triggered_models), "chosen_index": chosen[0]})


def load_result(directory: Path, *, model: Any) -> ReprogramResult:
    """The :class:`ReprogramResult` shipped in ``directory``, its triggers in front of copies of ``model`` (which is
    not changed)."""
    from fairprompt.mitigation.reprogram_method.artifact import load_trigger

    record = read_json(directory / RESULT_FILE)
    facts, count, chosen = record["facts"], int(record["triggers"]), int(record["chosen_index"])
    if count != len(facts["points"]) or not 0 <= chosen < count:
        raise FairpromptError(f"shipped FairReprogram repair '{directory / RESULT_FILE}' names {count} triggers for "
                              f"{len(facts['points'])} lambdas; delete the folder or rebuild it (make repair-artifacts)")
    triggered = [load_trigger(model, directory / f"{TRIGGER_STEM.format(index=i)}.json").eval() for i in range(count)]
    return ReprogramResult(**facts, triggered_model=triggered[chosen], trigger=triggered[chosen].prompts[-1],
                           triggered_models=triggered)


__all__ = ["RESULT_FILE", "TRIGGER_STEM", "load_result", "save_result"]
