"""FairReprogram's files: the chosen trigger (``trigger.safetensors`` + ``trigger.json``) and ``reprogram.json``
in ``reprogram/``, written atomically; :func:`load_trigger` puts a saved trigger in front of a frozen model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairprompt.atomic import replace_dir, write_text
from fairprompt.results import to_jsonable

if TYPE_CHECKING:
    from fairprompt.mitigation.reprogram_method.result import ReprogramResult

TRIGGER_STEM = "trigger"
RECORD_FILE = "reprogram.json"
REPROGRAM_DIR = "reprogram"


def save_trigger(result: ReprogramResult, directory: str | Path) -> dict[str, str]:
    """Write the chosen trigger (``trigger.safetensors`` + ``trigger.json``) into ``directory``; returns and records
    the paths in ``result.artifacts``."""
    from fairprompt.prompts import save_prompt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result.artifacts["trigger"] = str(save_prompt(result.trigger, directory / TRIGGER_STEM))
    return dict(result.artifacts)


def write_artifact(result: ReprogramResult, *, settings: Mapping[str, Any], group: str, target: Path,
                   training: Mapping[str, Any], model: Any, write: bool = True) -> dict[str, str]:
    """Write ``target/reprogram/`` (the trigger, and reprogram.json: what was trained, with which settings, on
    which model, and how to load it) atomically; returns its files, relative to ``target`` (``write=False``:
    only the names)."""
    files = {"trigger": f"{REPROGRAM_DIR}/{TRIGGER_STEM}.json",
             "trigger_tensors": f"{REPROGRAM_DIR}/{TRIGGER_STEM}.safetensors",
             "record": f"{REPROGRAM_DIR}/{RECORD_FILE}"}
    if not write:
        return files
    backbone = getattr(model, "backbone", None)
    record = {
        "format": "fairprompt.reprogram", "format_version": 1, "trigger_kind": result.trigger_kind, "group": group,
        "measure": settings.get("measure"), "objective": settings.get("objective"),
        "chosen_lambda": result.chosen_lambda, "config": dict(settings),
        "trigger": {k: v for k, v in result.trigger_description.items() if k != "image_png"},
        "model": {"backbone": backbone if isinstance(backbone, str)
                  else (training.get("architecture") or getattr(model, "architecture", None)),
                  "backbone_sha256": model.backbone_sha256,
                  "task_prompt": {k: training.get(k) for k in ("source", "cache_key", "path")}},
        "files": {k: v.removeprefix(f"{REPROGRAM_DIR}/") for k, v in files.items()},
        "load": "fairprompt.mitigation.load_trigger(model, 'reprogram/trigger.json') returns the frozen model with the "
                "trigger in front (the model itself is not changed)",
    }

    def fill(staging: Path) -> None:
        save_trigger(result, staging)
        write_text(staging / RECORD_FILE, json.dumps(to_jsonable(record), indent=2) + "\n")

    replace_dir(target, REPROGRAM_DIR, fill)
    result.artifacts = dict(files)
    return files


def load_trigger(model: Any, path: str | Path) -> Any:
    """The frozen ``model`` with a saved trigger attached for inference (a copy; ``model`` is unchanged)."""
    from fairprompt.mitigation.reprogram_method.triggers import model_modality
    from fairprompt.prompts import check_fits, load_prompt

    trigger = load_prompt(path)
    trigger.requires_grad_(False)
    if model_modality(model) == "text":
        check_fits(trigger, dim=int(model.encoder.config.hidden_size))
        triggered = model.adapter_copy()
        triggered.prompts.append(trigger)
        return triggered
    check_fits(trigger, image_size=int(model.input_size[0]), channels=3)
    return model.with_prompts([*model.prompts, trigger])


__all__ = ["RECORD_FILE", "REPROGRAM_DIR", "TRIGGER_STEM", "load_trigger", "save_trigger", "write_artifact"]
