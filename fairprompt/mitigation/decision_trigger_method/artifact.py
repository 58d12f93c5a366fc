"""A decision trigger's files: ``trigger.safetensors`` + ``trigger.json`` (the soft tokens, through
:func:`fairprompt.prompts.save_prompt`, whose sha256 is checked on load) and ``decision_trigger.json`` (how it was
trained, on which backbone, and which lambda was chosen on which scenarios).

:func:`load_decision_trigger` gives a frozen causal LM the trigger after checking that it was trained for this model:
the GGUF's sha256 (or the model's path), the prompt and the verbalizer (:func:`model_fingerprint`).  A trigger
trained on another backbone, or asked through another prompt, is refused with the command that retrains it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fairprompt.atomic import replace_dir, write_text
from fairprompt.errors import FairpromptError
from fairprompt.models.causal_lm import FrozenCausalLM
from fairprompt.models.causal_lm_prompt import model_fingerprint
from fairprompt.results import to_jsonable

FORMAT = "fairprompt.decision_trigger"
RECORD_FILE = "decision_trigger.json"
TRIGGER_STEM = "trigger"


def save_decision_trigger(lm: FrozenCausalLM, trigger: torch.Tensor, root: Path, name: str, *,
                          record: Mapping[str, Any]) -> Path:
    """Write ``root/name/`` atomically (module docstring); ``record``: the training and the choice."""
    from fairprompt.prompts import SoftPrompt, SoftPromptConfig, save_prompt

    tokens = trigger.detach().float().cpu()
    config = SoftPromptConfig(n_tokens=int(tokens.shape[0]), dim=int(tokens.shape[1]), position="append")
    body = {"format": FORMAT, "format_version": 1, "model": model_fingerprint(lm), "tokens": int(tokens.shape[0]),
            "place": "the end of the user's turn, before the end of turn, the assistant header and the prefix",
            "load": "fairprompt.mitigation.decision_trigger_method.artifact.load_decision_trigger(lm, directory)"}

    def fill(staging: Path) -> None:
        save_prompt(SoftPrompt(config, weight=tokens), staging / TRIGGER_STEM)
        write_text(staging / RECORD_FILE, json.dumps(to_jsonable(body | dict(record)), indent=2) + "\n")

    return replace_dir(root, name, fill, overwrite=True)


def read_record(directory: str | Path) -> dict[str, Any]:
    """``decision_trigger.json`` of a trigger directory."""
    path = Path(directory) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FairpromptError(f"{path} does not exist; give a directory written by save_decision_trigger (or "
                              "`make trigger-artifact-llm_decisions`)") from None
    except ValueError as error:
        raise FairpromptError(f"{path} is not valid JSON ({error}); write the trigger again") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise FairpromptError(f"{path} is not a decision trigger record (format {FORMAT!r})")
    return record


def load_decision_trigger(lm: FrozenCausalLM, directory: str | Path) -> dict[str, Any]:
    """Set ``lm.trigger`` from ``directory`` after checking it belongs to this model; returns the record."""
    from fairprompt.prompts import load_prompt

    record = read_record(directory)
    mine = model_fingerprint(lm)
    for key in ("gguf_sha256", "path", "prompt", "verbalizer"):
        if record["model"].get(key) != mine.get(key):
            what = {"gguf_sha256": "backbone (GGUF sha256)", "path": "backbone path"}.get(key, key)
            raise FairpromptError(f"trigger {directory} was trained for another {what} ({record['model'].get(key)!r}, "
                                  f"this model has {mine.get(key)!r}); retrain it for this model "
                                  "(make trigger-artifact-llm_decisions for the embedded one)")
    prompt = load_prompt(Path(directory) / TRIGGER_STEM)
    hidden = int(lm.model.get_input_embeddings().weight.shape[1])
    if prompt.weight.shape[1] != hidden:
        raise FairpromptError(f"trigger {directory} has tokens of size {prompt.weight.shape[1]}, the model's "
                              f"embeddings {hidden}; retrain it for this model")
    lm.trigger = prompt.weight.detach().clone()
    return record


__all__ = ["FORMAT", "RECORD_FILE", "load_decision_trigger", "read_record", "save_decision_trigger"]
