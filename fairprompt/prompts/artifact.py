"""Saving and loading prompts: ``<stem>.safetensors`` (tensors) + ``<stem>.json`` (what they are).

The JSON records the kind, the config, the fairprompt version, the sha256 of
the safetensors file and every tensor's shape and dtype.  Both files are
written to temporaries first and renamed (tensors first, JSON last), so a
crash never leaves a half-written pair.  Loading never unpickles anything:
tensors are parsed by safetensors from the very bytes whose sha256 is checked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor

from fairprompt.atomic import atomic_open
from fairprompt.errors import FairpromptError, did_you_mean
from fairprompt.prompts.base import PromptModule, config_from_dict
from fairprompt.prompts.conditional import ConditionalPrompt
from fairprompt.prompts.pixel import PixelBorder, PixelPatch
from fairprompt.prompts.soft import SoftPrompt

FORMAT = "fairprompt.prompt"
FORMAT_VERSION = 1
PROMPT_KINDS: dict[str, type[PromptModule]] = {cls.kind: cls for cls in (SoftPrompt, ConditionalPrompt, PixelBorder,
                                                                          PixelPatch)}
REQUIRED_KEYS: tuple[str, ...] = ("kind", "config", "sha256", "tensors")


def prompt_paths(path: str | Path) -> tuple[Path, Path]:
    """(JSON path, safetensors path) for a stem, or for either file of the pair."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".json", ".safetensors") else p
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")


def _version() -> str:
    from fairprompt import __version__

    return __version__


def save_prompt(prompt: PromptModule, path_stem: str | Path) -> Path:
    """Write ``prompt`` as ``<stem>.safetensors`` + ``<stem>.json`` atomically; return the JSON path."""
    if not isinstance(prompt, PromptModule):
        raise FairpromptError("save_prompt needs a SoftPrompt, ConditionalPrompt, PixelBorder or PixelPatch but got "
                              f"{type(prompt).__name__}")
    json_path, tensor_path = prompt_paths(path_stem)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in prompt.state_dict().items()}
    data = safetensors.torch.save(tensors, metadata={"format": FORMAT, "kind": prompt.kind})
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": prompt.kind,
        "config": prompt.config_dict(),
        "fairprompt_version": _version(),
        "tensors_file": tensor_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "tensors": {name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for name, t in tensors.items()},
    }
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    with atomic_open(json_path, "w") as json_handle:
        json_handle.write(text)
        with atomic_open(tensor_path, "wb", encoding=None) as tensor_handle:
            tensor_handle.write(data)
    return json_path


def _read_record(json_path: Path) -> dict[str, Any]:
    if not json_path.is_file():
        raise FairpromptError(f"prompt file '{json_path}' does not exist; check the path or train and save the prompt first")
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise FairpromptError(f"prompt file '{json_path}' is not UTF-8 text; re-save the prompt with fairprompt") from None
    except json.JSONDecodeError as error:
        raise FairpromptError(
            f"prompt file '{json_path}' is not valid JSON (line {error.lineno}: {error.msg}); re-save the prompt with fairprompt"
        ) from None
    if not isinstance(record, dict):
        raise FairpromptError(f"prompt file '{json_path}' does not hold a JSON object; re-save the prompt with fairprompt")
    for key in REQUIRED_KEYS:
        if key not in record:
            raise FairpromptError(f"prompt file '{json_path}' has no {key!r} key; re-save the prompt with fairprompt")
    if not isinstance(record["config"], dict) or not isinstance(record["tensors"], dict):
        raise FairpromptError(
            f"prompt file '{json_path}' has a 'config' or 'tensors' entry that is not an object; "
            "re-save the prompt with fairprompt"
        )
    return record


def _load_tensors(tensor_path: Path, *, json_path: Path, sha256: Any) -> dict[str, Tensor]:
    if not tensor_path.is_file():
        raise FairpromptError(
            f"prompt tensors '{tensor_path}' are missing (named by '{json_path.name}'); "
            "keep the .json and .safetensors files together"
        )
    data = tensor_path.read_bytes()
    try:
        tensors = safetensors.torch.load(data)
    except Exception as error:  # safetensors raises its own error types (and others) on bad input
        raise FairpromptError(
            f"prompt tensors '{tensor_path}' are corrupted or truncated ({type(error).__name__}); "
            "re-save the prompt with fairprompt"
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FairpromptError(
            f"prompt tensors '{tensor_path}' do not match the sha256 recorded in '{json_path.name}'; "
            "the file changed after saving, so re-save the prompt"
        )
    return tensors


def load_prompt(path: str | Path) -> SoftPrompt | ConditionalPrompt | PixelBorder | PixelPatch:
    """Load a prompt saved by ``save``, from its stem or either file; parameters are bit-for-bit the saved ones."""
    json_path, tensor_path = prompt_paths(path)
    record = _read_record(json_path)
    kind = record["kind"]
    if kind not in PROMPT_KINDS:
        raise FairpromptError(f"prompt file '{json_path}' has unknown kind {kind!r}{did_you_mean(str(kind), PROMPT_KINDS)}")
    cls = PROMPT_KINDS[kind]
    config = config_from_dict(cls.config_class, record["config"], where=f"prompt file '{json_path}'")
    tensors = _load_tensors(tensor_path, json_path=json_path, sha256=record["sha256"])

    expected = cls.expected_shapes(config)
    if set(tensors) != set(expected):
        raise FairpromptError(
            f"prompt tensors '{tensor_path}' hold {sorted(tensors)} but a {kind} needs {sorted(expected)}; "
            "re-save the prompt with fairprompt"
        )
    for name, shape in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise FairpromptError(
                f"prompt tensor {name!r} in '{tensor_path}' has shape {tuple(tensor.shape)} but the config in "
                f"'{json_path.name}' needs {shape}; re-save the prompt with fairprompt"
            )
        recorded = record["tensors"].get(name)
        if not isinstance(recorded, dict) or list(recorded.get("shape", [])) != list(shape):
            raise FairpromptError(
                f"prompt file '{json_path}' records tensor {name!r} as {recorded!r} but the tensors file holds shape {shape}; "
                "re-save the prompt with fairprompt"
            )
        if not tensor.is_floating_point():
            raise FairpromptError(
                f"prompt tensor {name!r} in '{tensor_path}' has dtype {tensor.dtype}, not a float type; "
                "re-save the prompt with fairprompt"
            )
    module = cls.from_tensors(config, tensors)
    module.source = json_path
    return module  # type: ignore[return-value]


def check_fits(
    prompt: PromptModule,
    *,
    dim: int | None = None,
    image_size: int | None = None,
    channels: int | None = None,
) -> None:
    """Refuse a prompt that does not fit a backbone (embedding ``dim``, or ``image_size`` / ``channels``)."""
    who = prompt.label()
    fix = "train a prompt for this backbone"
    if isinstance(prompt, SoftPrompt | ConditionalPrompt):
        if image_size is not None or channels is not None:
            raise FairpromptError(f"{who} is a text prompt but the backbone takes images; use a pixel border or patch prompt")
        if dim is not None and prompt.config.dim != dim:
            raise FairpromptError(
                f"{who} has {prompt.config.dim}-dim tokens but the backbone's embeddings are {dim}-dim; {fix}"
            )
        return
    if isinstance(prompt, PixelBorder | PixelPatch):
        if dim is not None:
            raise FairpromptError(f"{who} is an image prompt but the backbone takes text; use a soft prompt")
        if image_size is not None and prompt.config.image_size != image_size:
            raise FairpromptError(
                f"{who} makes {prompt.config.image_size}-pixel images but the backbone takes {image_size}-pixel images; {fix}"
            )
        if channels is not None and prompt.config.channels != channels:
            raise FairpromptError(
                f"{who} makes {prompt.config.channels}-channel images but the backbone takes {channels}-channel images; {fix}"
            )
        return
    raise FairpromptError("check_fits needs a SoftPrompt, ConditionalPrompt, PixelBorder or PixelPatch but got "
                          f"{type(prompt).__name__}")
