"""Shipped repair artifacts: a finished repair saved once, found by its key, loaded instead of training.

A repair artifact is a folder ``KEY/`` under :func:`repairs_root` (``fairprompt/artifacts/repairs``, or
``$FAIRPROMPT_REPAIR_ARTIFACTS``) holding what the method's run object is rebuilt from (its whole grid and the
facts its record and files show, written by :meth:`~fairprompt.mitigation.registry.RepairRun.ship` as
safetensors + JSON, never pickle) and ``shipped.json`` (the spec, how, where and when it was trained, its test
metrics).  KEY (:func:`repair_key`) is the sha256 of everything that determines the repair's outcome: the
task prompt's cache key and the model's parameters (backbone, task prompt and head, input prompts), the method
and its version, its full config (the spec's settings with the defaults), the repaired group, the training
and validation rows it reads (inputs, labels, groups), the decision threshold, and the trainer and library
versions.  :func:`find_for` returns the matching folder when loading is allowed (:func:`may_load`): the
context allows it (``RepairContext.use_shipped``) and the model itself was loaded, not trained in this run (a
``--fresh`` run trains its repairs too).  ``python -m fairprompt.shipped_repairs`` builds and checks them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fairprompt.atomic import write_bytes, write_text
from fairprompt.cache import cache_key
from fairprompt.errors import FairpromptError

if TYPE_CHECKING:
    import torch

    from fairprompt.mitigation.registry import RepairContext, RepairMethod

ENV_VAR = "FAIRPROMPT_REPAIR_ARTIFACTS"
SHIPPED_REPAIRS = Path(str(resources.files("fairprompt") / "artifacts" / "repairs"))
MANIFEST = "shipped.json"
FORMAT = "fairprompt.shipped_repair"
FORMAT_VERSION = 1
KEY_VERSION = 1
"""Bump when what goes into :func:`repair_key` changes."""


def repairs_root() -> Path:
    """Where shipped repair artifacts are looked for: ``$FAIRPROMPT_REPAIR_ARTIFACTS`` if set, else the ones
    shipped with fairprompt."""
    root = os.environ.get(ENV_VAR)
    return Path(root).expanduser() if root else SHIPPED_REPAIRS


def _text(value: Any) -> str:
    return "\x00" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def rows_digest(task: Any, positions: np.ndarray, group: str) -> str:
    """sha256 of data-set rows ``positions`` as a repair reads them: positions, inputs (texts or image bytes),
    labels and the ``group`` column."""
    digest = hashlib.sha256()
    positions = np.asarray(positions, dtype=np.int64)
    digest.update(positions.tobytes())
    digest.update(np.asarray(task.y[positions], dtype=np.int64).tobytes())
    for value in task.dataset.frame[group].iloc[positions].tolist():
        digest.update(_text(value).encode("utf-8") + b"\x1e")
    if hasattr(task, "pick"):  # a text task
        for text in task.pick(positions):
            digest.update(text.encode("utf-8") + b"\x1e")
    else:
        digest.update(np.ascontiguousarray(task.images[positions]).tobytes())
    return digest.hexdigest()


def model_fingerprint(model: Any) -> dict[str, str | None]:
    """sha256 of the frozen backbone, of the task prompt and head, and of the input prompts already in front."""
    from fairprompt.models.frozen import adapter_sha256, state_sha256

    prompts = getattr(model, "prompts", None)
    return {"backbone": model.backbone_sha256, "adapter": adapter_sha256(model),
            "prompts": state_sha256(prompts) if prompts is not None and len(prompts) else None}


def _key_config(config: Any) -> dict[str, Any]:
    """The config as the key sees it: options a config class added after repairs were shipped
    (``KEY_OMITS_AT_DEFAULT``) are left out while at their defaults, so the artifacts shipped before keep their keys."""
    values = asdict(config)
    defaults = {f.name: f.default for f in fields(config)}
    for name in getattr(config, "KEY_OMITS_AT_DEFAULT", ()):
        if name in values and values[name] == defaults.get(name):
            del values[name]
    return values


def repair_key(context: RepairContext, *, method: RepairMethod, config: Any, group: str) -> str:
    """The key of the repair ``method`` with ``config`` makes of ``context.model`` for the gap of ``group``."""
    from fairprompt.models.adapt import TRAINER_VERSION, library_versions
    from fairprompt.results import to_jsonable

    task, splits = context.task, context.task.splits
    return cache_key({
        "key_version": KEY_VERSION,
        "task_prompt": context.training.get("cache_key"),
        "model": model_fingerprint(context.model),
        "method": method.name, "method_version": method.version,
        "config": to_jsonable(_key_config(config)),
        "group": group,
        "train": rows_digest(task, splits.train, group),
        "validation": rows_digest(task, splits.validation, group),
        "threshold": float(task.threshold),
        "trainer": TRAINER_VERSION,
        "versions": library_versions(),
    })


def model_was_loaded(training: Mapping[str, Any]) -> bool:
    """Whether the model was loaded (from the cache, the shipped prompts or a folder), not trained in this run."""
    return training.get("source") != "trained in this run" and training.get("from_cache") is not False


def may_load(context: RepairContext) -> bool:
    """Whether a repair on ``context`` may be loaded from a shipped artifact (module docstring)."""
    return context.use_shipped and model_was_loaded(context.training)


def find(key: str) -> Path | None:
    """The artifact folder with key ``key`` under :func:`repairs_root`, or None."""
    candidate = repairs_root() / key
    return candidate if (candidate / MANIFEST).is_file() else None


def find_for(context: RepairContext, *, method: RepairMethod, config: Any, group: str) -> Path | None:
    """The shipped artifact of this repair, when loading is allowed and one matches; else None."""
    if not may_load(context):
        return None
    root = repairs_root()
    if not root.is_dir() or not any(root.iterdir()):
        return None
    return find(repair_key(context, method=method, config=config, group=group))


def read_manifest(directory: Path) -> dict[str, Any]:
    """``directory/shipped.json``, checked."""
    manifest = read_json(directory / MANIFEST)
    if manifest.get("format") != FORMAT or manifest.get("key") != directory.name:
        raise FairpromptError(f"shipped repair '{directory / MANIFEST}' is not a {FORMAT} record for key "
                              f"{directory.name[:12]}; delete '{directory}' or rebuild it (make repair-artifacts)")
    return manifest


def loaded_record(directory: Path) -> dict[str, Any]:
    """The repair record's ``shipped`` block of a repair loaded from ``directory``."""
    manifest = read_manifest(directory)
    trained = manifest.get("trained") or {}
    return {"loaded": True, "key": directory.name, "spec": manifest.get("spec"),
            "trained_at": trained.get("at"), "trained_by": trained.get("command"), "machine": trained.get("machine"),
            "seconds": trained.get("seconds")}


# ------------------------------------------------------------------------------ exact JSON and checked tensors
def _encode(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, np.ndarray):
        return _encode(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, Path):
        return str(value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value.keys() == {"$float"}:
            return float(value["$float"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as strict JSON that reads back exactly (non-finite floats as ``{"$float": "nan"}``)."""
    write_text(path, json.dumps(_encode(value), indent=1, allow_nan=False) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """Read a file written by :func:`write_json` (one-line error when it is missing or not JSON)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FairpromptError(f"shipped repair file '{path}' cannot be read ({type(error).__name__}); delete its "
                              "folder or rebuild it (make repair-artifacts)") from None
    if not isinstance(value, dict):
        raise FairpromptError(f"shipped repair file '{path}' does not hold a JSON object; delete its folder or "
                              "rebuild it (make repair-artifacts)")
    return _decode(value)


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> str:
    """Write ``tensors`` as one safetensors file; returns its sha256 (recorded in the JSON beside it)."""
    import safetensors.torch

    data = safetensors.torch.save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_tensors(path: Path, *, sha256: str) -> dict[str, torch.Tensor]:
    """The tensors of a file written by :func:`write_tensors`, after checking its sha256 (never unpickled)."""
    import safetensors.torch

    try:
        data = path.read_bytes()
    except OSError:
        raise FairpromptError(f"shipped repair tensors '{path}' are missing; delete the folder '{path.parent}' or "
                              "rebuild it (make repair-artifacts)") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FairpromptError(f"shipped repair tensors '{path}' do not match the sha256 recorded beside them; delete "
                              f"the folder '{path.parent}' or rebuild it (make repair-artifacts)")
    return safetensors.torch.load(data)


__all__ = ["ENV_VAR", "FORMAT", "FORMAT_VERSION", "MANIFEST", "SHIPPED_REPAIRS", "find", "find_for", "loaded_record",
           "may_load", "model_fingerprint", "model_was_loaded", "read_json", "read_manifest", "read_tensors",
           "repair_key", "repairs_root", "rows_digest", "write_json", "write_tensors"]
