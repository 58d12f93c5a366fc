"""A finished FairIJ repair as a shipped artifact (:mod:`fairprompt.mitigation.shipped`), and back.

``fairij_result.json`` holds the :class:`FairIJResult` facts its record shows (curve, choice, influence summary,
append training, verification, the original timings); ``fairij_tensors.safetensors`` the per-row arrays
(row ids, ``I_F``, ``I_U``, alphas: influence.csv and the flagged tables), the repaired task prompt and head,
and in mode ij the one-step task prompt and head at every k of the grid; mode append adds the appended
prompt (``fairij_prompt.safetensors`` + ``.json``).  Nothing is unpickled.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.fairij_method.result import FairIJResult, FairIJVerification
from fairprompt.mitigation.shipped import read_json, read_tensors, write_json, write_tensors

if TYPE_CHECKING:
    from fairprompt.models.text import FrozenTextClassifier

RESULT_FILE = "fairij_result.json"
TENSORS_FILE = "fairij_tensors.safetensors"
PROMPT_STEM = "fairij_prompt"
FACTS: tuple[str, ...] = ("mode", "measure", "selection", "rule", "weighting", "graded", "utility_budget",
                          "max_accuracy_drop", "max_fraction",
                          "seed", "chosen_k", "curve", "before", "after", "influence", "timings", "append",
                          "warnings")
ARRAYS: tuple[str, ...] = ("row_ids", "influence_fairness", "influence_utility", "alphas")


def save_result(result: FairIJResult, directory: Path) -> None:
    """Write what :func:`load_result` rebuilds ``result`` from into ``directory``."""
    from fairprompt.prompts import save_prompt

    tensors = {name: torch.from_numpy(np.array(getattr(result, name))) for name in ARRAYS}
    repaired = result.repaired_model.task_parameters()
    tensors |= {f"repaired.{i}": p for i, p in enumerate(repaired)}
    for k, parameters in result.grid_parameters.items():
        tensors |= {f"grid.{k}.{i}": t for i, t in enumerate(parameters)}
    sha256 = write_tensors(directory / TENSORS_FILE, tensors)
    if result.mode == "append":
        if result.prompt is None:
            raise RuntimeError("a FairIJ repair in mode append has no appended prompt to ship")
        save_prompt(result.prompt, directory / PROMPT_STEM)
    facts = {name: getattr(result, name) for name in FACTS}
    facts["verification"] = None if result.verification is None else asdict(result.verification)
    write_json(directory / RESULT_FILE, {"format": "fairprompt.fairij_result", "format_version": 1, "facts": facts,
                                         "tensors_sha256": sha256, "task_parameters": len(repaired),
                                         "grid_k": sorted(int(k) for k in result.grid_parameters)})


def load_result(directory: Path, *, model: FrozenTextClassifier) -> FairIJResult:
    """The :class:`FairIJResult` shipped in ``directory``, its models built on ``model`` (which is not changed)."""
    from fairprompt.mitigation.fairij_method.selection import set_task_parameters
    from fairprompt.prompts import load_prompt

    record = read_json(directory / RESULT_FILE)
    tensors = read_tensors(directory / TENSORS_FILE, sha256=str(record.get("tensors_sha256")))
    facts, count = record["facts"], int(record["task_parameters"])
    if count != len(model.task_parameters()):
        raise FairpromptError(f"shipped FairIJ repair '{directory}' holds {count} task-prompt tensors but the model has "
                              f"{len(model.task_parameters())}; delete the folder or rebuild it (make repair-artifacts)")
    repaired = model.adapter_copy()
    prompt = None
    if facts["mode"] == "ij":
        set_task_parameters(repaired, [tensors[f"repaired.{i}"] for i in range(count)])
    else:
        for parameter in [*repaired.task_parameters(), *repaired.prompts.parameters()]:
            parameter.requires_grad_(False)
        prompt = load_prompt(directory / PROMPT_STEM)
        prompt.requires_grad_(False)
        repaired.prompts.append(prompt)
    verification = facts.pop("verification")
    arrays: dict[str, Any] = {name: tensors[name].numpy() for name in ARRAYS}
    return FairIJResult(
        **facts, **arrays, repaired_model=repaired, prompt=prompt,
        verification=None if verification is None else FairIJVerification(**verification),
        grid_parameters={k: [tensors[f"grid.{k}.{i}"] for i in range(count)] for k in record["grid_k"]},
    )


__all__ = ["PROMPT_STEM", "RESULT_FILE", "TENSORS_FILE", "load_result", "save_result"]
