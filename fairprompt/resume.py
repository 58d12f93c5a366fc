"""Reusing what a run already wrote into its output directory.

Running a frozen-model spec again into the same directory resumes: the before-audit in ``results.json`` is
reused when the spec (mitigations aside), the data's sha256, the model (task-prompt cache key, or backbone
sha256) and the fairprompt version match, and so is every repair whose record is ``ok`` with the same
settings and group and whose files are still there.  In a folder with a ``manifest.json``
(:mod:`fairprompt.run_folder`) only what matches it is reused: a stale ``results.json`` or
``metrics_by_group.csv`` (a run stopped while writing) means the whole run is done again, a repair's stale
file means that repair runs again.  A folder without a manifest (an older fairprompt's) is reused as before.
These functions decide what can be reused; the pipeline runs the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairprompt import __version__
from fairprompt.errors import FairpromptError
from fairprompt.repairs import not_run
from fairprompt.results import load_results, to_jsonable
from fairprompt.run_folder import Verification, verify
from fairprompt.tasks import ModelTask, Repair, TextTask


def single_process() -> bool:
    """True unless this is one of several processes of a torch.distributed run."""
    return int(os.environ.get("WORLD_SIZE", "1")) == 1


def spec_key(spec: Any) -> Any:
    """What of a dumped spec must match for its before-audit to be reused: all but the mitigations."""
    return {k: v for k, v in spec.items() if k != "mitigations"} if isinstance(spec, dict) else None


def reusable_results(target: Path, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record in ``target/results.json`` if it holds a before-audit written by this fairprompt version for the
    spec dumped as ``spec`` (mitigations aside); the data and the model are compared by :func:`same_model` once
    they are loaded."""
    path = target / "results.json"
    if not path.is_file():
        return None
    check = verify(target)
    if check.is_stale(path.name) or check.is_stale("metrics_by_group.csv"):
        return None  # a run into the folder stopped while writing: its files do not belong together
    try:
        previous = load_results(path).to_json()
    except FairpromptError:
        return None
    if not isinstance(previous.get("audit"), dict) or not isinstance(previous.get("model"), dict):
        return None
    if spec_key(previous.get("spec")) != spec_key(to_jsonable(dict(spec))):
        return None
    if previous.get("fairprompt_version") != __version__:
        return None
    return previous


def same_model(previous: Mapping[str, Any], task: ModelTask, model: Any) -> bool:
    """Whether the before-audit in ``previous`` was made with this data and this model (task prompt or backbone)."""
    data_hashes = [i.get("sha256") for i in previous.get("inputs") or [] if isinstance(i, dict) and i.get("role") == "data"]
    if data_hashes != [task.dataset.sha256]:
        return False
    described = previous.get("model") or {}
    if isinstance(task, TextTask) and task.settings is not None:
        return (described.get("training") or {}).get("cache_key") == task.task_prompt_key()
    return described.get("backbone_sha256") == model.backbone_sha256  # an image backbone, or task_prompt: none


def output_paths(outputs: Any) -> list[str]:
    """Every relative path named in a record's ``outputs`` (nested mappings included)."""
    if isinstance(outputs, str):
        return [outputs]
    if isinstance(outputs, dict):
        return [p for v in outputs.values() for p in output_paths(v)]
    return []


def reusable_record(record: Any, repair: Repair, target: Path, *, check: Verification | None = None) -> bool:
    """A finished repair record made with these settings, whose files are still on disk and match the folder's
    manifest (``check``, else read now; each mitigation name appears at most once in a spec, so its files are its
    own)."""
    if not isinstance(record, dict) or record.get("status") != "ok" or record.get("name") != repair.name:
        return False
    if record.get("group") != repair.group or record.get("config") != to_jsonable(repair.settings):
        return False
    check = check or verify(target)
    paths = output_paths(record.get("outputs"))
    return all((target / path).exists() and not check.is_stale(path) for path in paths)


@dataclass(frozen=True)
class Resumed:
    """The results to rewrite, the positions of the repairs still to run, and what was reused."""

    results: dict[str, Any]
    todo: list[int]
    reused: list[str]


def resume_results(previous: Mapping[str, Any], *, spec: Mapping[str, Any], seeds: Mapping[str, int],
                   repairs: Sequence[Repair], target: Path) -> Resumed:
    """Keep the before-audit in ``previous`` and every finished repair made with the same settings; the others
    become ``not_run`` slots to run (``spec``: the dumped spec; ``seeds``: the repairs' seeds)."""
    results = dict(previous)
    results["spec"] = dict(spec)
    results["seeds"] = {k: v for k, v in (results.get("seeds") or {}).items() if not k.startswith("mitigation_")} \
        | dict(seeds)
    old = [r for r in previous.get("mitigations") or [] if isinstance(r, dict)]
    check = verify(target)
    slots: list[dict[str, Any]] = []
    todo: list[int] = []
    for index, repair in enumerate(repairs):
        match = next((r for r in old if reusable_record(r, repair, target, check=check)), None)
        if match is None:
            todo.append(index)
            match = not_run(repair)
        else:
            old.remove(match)
        slots.append(match)
    if slots:
        results["mitigations"] = slots
    else:
        results.pop("mitigations", None)
    reused = ["before-audit", *[repairs[i].name for i in range(len(slots)) if i not in todo]]
    return Resumed(results=results, todo=todo, reused=reused)


__all__ = ["Resumed", "output_paths", "resume_results", "reusable_record", "reusable_results", "same_model",
           "single_process", "spec_key"]
