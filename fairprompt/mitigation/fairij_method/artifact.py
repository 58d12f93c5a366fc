"""FairIJ's files: the repaired prompt or adapter (safetensors + JSON) with ``fairij.json`` in ``fairij/``, and
the per-row scores in ``influence.csv``; each written atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairprompt.atomic import replace_dir, write_text
from fairprompt.results import to_jsonable

if TYPE_CHECKING:
    import pandas as pd

    from fairprompt.mitigation.fairij_method.result import FairIJResult

PROMPT_STEM = "fairij_prompt"
ADAPTER_DIR = "fairij_adapter"
FAIRIJ_DIR = "fairij"
FAIRIJ_RECORD = "fairij.json"
INFLUENCE_CSV = "influence.csv"


def save_repair(result: FairIJResult, directory: str | Path) -> dict[str, str]:
    """Write the repaired artifact into ``directory``: the appended prompt (``fairij_prompt.safetensors`` +
    ``.json``, mode append) or the repaired task adapter (``fairij_adapter/``, mode ij); returns and records
    the paths in ``result.artifacts``."""
    from fairprompt.prompts import save_prompt

    directory = Path(directory)
    if result.mode == "append":
        assert result.prompt is not None
        result.artifacts["prompt"] = str(save_prompt(result.prompt, directory / PROMPT_STEM))
    else:
        result.artifacts["adapter"] = str(result.repaired_model.save(directory / ADAPTER_DIR))
    return dict(result.artifacts)


def artifact_files(mode: str) -> dict[str, str]:
    """The files of ``fairij/``, relative to the report directory."""
    if mode == "append":
        files = {"prompt": f"{FAIRIJ_DIR}/{PROMPT_STEM}.json", "prompt_tensors": f"{FAIRIJ_DIR}/{PROMPT_STEM}.safetensors"}
    else:
        files = {"adapter": f"{FAIRIJ_DIR}/{ADAPTER_DIR}"}
    files["record"] = f"{FAIRIJ_DIR}/{FAIRIJ_RECORD}"
    return files


def write_artifact(result: FairIJResult, *, settings: Mapping[str, Any], group: str, target: Path,
                   training: Mapping[str, Any], model: Any, write: bool = True) -> dict[str, str]:
    """Write ``target/fairij/`` (the repaired prompt or adapter, and fairij.json: what was repaired, with which
    settings, on which task prompt and backbone, and how to load it) atomically; returns its files, relative to
    ``target`` (``write=False``: only the names, as in the non-main processes of a distributed run)."""
    files = artifact_files(result.mode)
    if not write:
        return files
    if result.mode == "append":
        how = ("FrozenTextClassifier.load(task prompt at task_prompt.path or the cache key), then "
               "model.prompts.append(fairprompt.prompts.load_prompt('fairij/fairij_prompt.json'))")
    else:
        how = "FrozenTextClassifier.load('fairij/fairij_adapter') (the repaired task prompt and head)"
    record = {
        "format": "fairprompt.fairij", "format_version": 1, "mode": result.mode, "measure": result.measure,
        "group": group, "config": dict(settings), "chosen_k": result.chosen_k, "n_train": int(result.row_ids.size),
        "task_prompt": {k: training.get(k) for k in ("source", "cache_key", "path")},
        "backbone": model.backbone, "backbone_sha256": model.backbone_sha256,
        "files": {k: v.removeprefix(f"{FAIRIJ_DIR}/") for k, v in files.items()}, "load": how,
    }

    def fill(staging: Path) -> None:
        save_repair(result, staging)
        write_text(staging / FAIRIJ_RECORD, json.dumps(to_jsonable(record), indent=2) + "\n")

    replace_dir(target, FAIRIJ_DIR, fill)
    result.artifacts = dict(files)
    return files


def write_influence(frame: pd.DataFrame, target: Path) -> str:
    """Write ``target/influence.csv`` atomically; returns its name, relative to ``target``."""
    write_text(target / INFLUENCE_CSV, frame.to_csv(index=False))
    return INFLUENCE_CSV


__all__ = ["ADAPTER_DIR", "FAIRIJ_DIR", "FAIRIJ_RECORD", "INFLUENCE_CSV", "PROMPT_STEM", "artifact_files",
           "save_repair", "write_artifact", "write_influence"]
