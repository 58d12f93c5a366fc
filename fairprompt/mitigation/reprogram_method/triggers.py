"""The triggers FairReprogram trains, and the triggered copies of a frozen model they go on: soft and hard
text tokens (appended after the input), a pixel border or patch (images); what each may be for a given model;
and the trigger's saved form, picture and parameter counts."""

from __future__ import annotations

import base64
import copy
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.reprogram_method.config import ReprogramConfig


def word_candidates(tokenizer: Any) -> np.ndarray:
    """Vocabulary ids of whole words a hard trigger may use: alphabetic, no special/[unused]/## entries."""
    vocab = tokenizer.get_vocab()
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for token, i in vocab.items()
           if i not in special and token.isascii() and token.isalpha() and not token.startswith("##")]
    if not ids:
        raise FairpromptError("the tokenizer has no whole-word vocabulary entries for a hard trigger; use trigger: soft")
    return np.asarray(sorted(ids), dtype=np.int64)


def project_simplex(rows: Tensor) -> Tensor:
    """Euclidean projection of each row onto the probability simplex (Duchi et al. 2008)."""
    sorted_, _ = torch.sort(rows, dim=1, descending=True)
    cumulative = sorted_.cumsum(dim=1) - 1.0
    index = torch.arange(1, rows.shape[1] + 1, device=rows.device, dtype=rows.dtype)
    condition = sorted_ - cumulative / index > 0
    rho = condition.to(rows.dtype).cumsum(dim=1).argmax(dim=1, keepdim=True)  # last index where it holds
    theta = cumulative.gather(1, rho) / (rho + 1).to(rows.dtype)
    return (rows - theta).clamp_min(0.0)


class HardTrigger(nn.Module):
    """``n`` vocabulary words chosen by a simplex-projected selector [n, candidates] (straight-through)."""

    def __init__(self, *, embeddings: Tensor, candidates: np.ndarray, tokens: int, seed: int) -> None:
        super().__init__()
        self.register_buffer("matrix", embeddings.detach()[torch.as_tensor(candidates)].clone(), persistent=False)
        self.register_buffer("candidate_ids", torch.as_tensor(candidates), persistent=False)
        start = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))[:tokens]
        selector = torch.zeros(tokens, len(candidates))
        selector[torch.arange(tokens), start] = 1.0
        self.selector = nn.Parameter(selector)

    def token_ids(self) -> Tensor:
        return self.candidate_ids[self.selector.detach().argmax(dim=1)]

    def embeddings(self) -> Tensor:
        hard = F.one_hot(self.selector.argmax(dim=1), self.selector.shape[1]).to(self.selector.dtype)
        weights = hard + (self.selector - self.selector.detach())  # straight-through: value exactly hard, gradient soft
        return weights @ self.matrix

    def insert(self, *, inputs_embeds: Tensor, attention_mask: Tensor, **_: Any):
        from fairprompt.prompts import insert_tokens

        return insert_tokens(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                             tokens=self.embeddings().unsqueeze(0), position="append")

    @torch.no_grad()
    def project(self) -> None:
        self.selector.copy_(project_simplex(self.selector))


@dataclass
class Target:
    """What training and evaluation need of a model, whatever its modality."""

    model: nn.Module                                  # the triggered copy (frozen parts shared)
    trigger: nn.Module                                # the trainable module inside it
    forward: Callable[[nn.Module, dict[str, Tensor]], Tensor]
    modality: Literal["text", "image"]


def text_target(model: Any, *, kind: str, config: ReprogramConfig) -> tuple[Target, dict[str, Any]]:
    from fairprompt.models.text import text_forward
    from fairprompt.prompts import SoftPrompt, SoftPromptConfig

    check_text_trigger(model, tokens=config.tokens)
    if kind == "conditional":
        check_generator_budget(model, config=config)
    triggered = model.adapter_copy()
    for parameter in triggered.parameters():
        parameter.requires_grad_(False)
    dim = int(model.encoder.config.hidden_size)
    info: dict[str, Any] = {}
    if kind in ("soft", "conditional"):
        trigger: nn.Module = SoftPrompt.initialise(
            SoftPromptConfig(n_tokens=config.tokens, dim=dim, position="append", init="vocab", seed=config.seed),
            embeddings=model.base.get_input_embeddings())
        if kind == "conditional":
            from fairprompt.prompts import ConditionalPrompt, ConditionalPromptConfig

            trigger = ConditionalPrompt(ConditionalPromptConfig(n_tokens=config.tokens, dim=dim,
                                                                bottleneck=config.bottleneck, position="append"),
                                        weight=trigger.weight.detach())
    else:
        candidates = word_candidates(model.tokenizer)
        trigger = HardTrigger(embeddings=model.base.get_input_embeddings().weight, candidates=candidates,
                              tokens=config.tokens, seed=config.seed)
        info["candidate_words"] = int(candidates.size)
    trigger.requires_grad_(True)
    triggered.prompts.append(trigger)
    return Target(model=triggered, trigger=trigger, forward=text_forward, modality="text"), info


def check_text_trigger(model: Any, *, tokens: int) -> None:
    """Refuse a trigger that, with the task prompt and the longest input, exceeds the backbone's positions."""
    limit = getattr(model.encoder.config, "max_position_embeddings", None)
    task = int(model.peft_model.peft_config["default"].num_virtual_tokens) if model.peft_model is not None else 0
    if limit is not None and tokens + int(task) + int(model.max_length) > int(limit):
        room = int(limit) - int(task) - int(model.max_length)
        raise FairpromptError(
            f"reprogram.tokens is {tokens}, but with the {task} task-prompt tokens and inputs of up to {model.max_length} "
            f"tokens the sequence would need {tokens + int(task) + int(model.max_length)} positions and {model.backbone} "
            f"takes at most {limit}; use at most {max(room, 0)} trigger tokens (or a smaller model.text.max_length)")


def check_generator_budget(model: Any, *, config: ReprogramConfig) -> None:
    """Refuse a conditional trigger whose generator trains more than ``parameter_budget`` of the model's parameters."""
    from fairprompt.models.frozen import total_parameters
    from fairprompt.prompts import conditional_parameters

    dim = int(model.encoder.config.hidden_size)
    trained = conditional_parameters(n_tokens=config.tokens, dim=dim, bottleneck=config.bottleneck)
    allowed = int(config.parameter_budget * total_parameters(model))
    if trained > allowed:
        raise FairpromptError(
            f"reprogram: the conditional trigger ({config.tokens} tokens, bottleneck {config.bottleneck}) trains "
            f"{trained:,} numbers, above the parameter budget of {allowed:,} ({config.parameter_budget:g} of the model's "
            f"parameters); use a smaller reprogram.bottleneck or fewer tokens, or raise reprogram.parameter_budget")


def check_image_trigger(*, kind: str, image_size: int, width: int, patch_size: int) -> None:
    """Refuse a border wider than half the image, or a patch larger than it."""
    if kind == "border" and 2 * width >= image_size:
        raise FairpromptError(f"reprogram.width is {width} pixels, at least half of the {image_size}-pixel image, so no "
                              f"image would be left inside the border; use a width below {(image_size + 1) // 2}")
    if kind == "patch" and patch_size > image_size:
        raise FairpromptError(f"reprogram.patch_size is {patch_size}, larger than the {image_size}-pixel image; "
                              f"use at most {image_size}")


def image_target(model: Any, *, kind: str, config: ReprogramConfig) -> tuple[Target, dict[str, Any]]:
    from fairprompt.prompts import PixelBorder, PixelBorderConfig, PixelPatch, PixelPatchConfig

    size = int(model.input_size[0])
    check_image_trigger(kind=kind, image_size=size, width=config.width, patch_size=config.patch_size)
    if kind == "border":
        trigger: nn.Module = PixelBorder(PixelBorderConfig(image_size=size, width=config.width, seed=config.seed))
    else:
        trigger = PixelPatch(PixelPatchConfig(image_size=size, size=config.patch_size, corner=config.corner,  # type: ignore[arg-type]
                                              seed=config.seed))
    existing = [copy.deepcopy(p).requires_grad_(False) for p in model.prompts]
    trigger.requires_grad_(True)
    triggered = model.with_prompts([*existing, trigger])
    return Target(model=triggered, trigger=trigger, forward=lambda net, batch: net(batch["images"]), modality="image"), {}


def model_modality(model: Any) -> str:
    """``text`` for a FrozenTextClassifier, ``image`` for a FrozenImageClassifier; anything else is refused."""
    from fairprompt.models.image import FrozenImageClassifier
    from fairprompt.models.text import FrozenTextClassifier

    if isinstance(model, FrozenTextClassifier):
        return "text"
    if isinstance(model, FrozenImageClassifier):
        return "image"
    raise FairpromptError(f"reprogram needs a FrozenTextClassifier or FrozenImageClassifier, not {type(model).__name__}")


def build(model: Any, *, kind: str, config: ReprogramConfig) -> Target:
    return (text_target if model_modality(model) == "text" else image_target)(model, kind=kind, config=config)[0]


def build_forward(model: Any) -> Callable[[nn.Module, dict[str, Tensor]], Tensor]:
    if model_modality(model) == "text":
        from fairprompt.models.text import text_forward

        return text_forward
    return lambda net, batch: net(batch["images"])


def png_data_uri(image: np.ndarray, *, scale: int = 4) -> str:
    from PIL import Image

    picture = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def hard_as_soft(trigger: HardTrigger, *, model: Any) -> nn.Module:
    """A hard trigger's words as the soft prompt that holds their embedding rows (the same input)."""
    from fairprompt.prompts import SoftPrompt, SoftPromptConfig

    weight = model.base.get_input_embeddings().weight.detach()[trigger.token_ids()].to(torch.float32)
    return SoftPrompt(SoftPromptConfig(n_tokens=int(weight.shape[0]), dim=int(weight.shape[1]), position="append"),
                      weight=weight)


def deployed_trigger(triggered: Any, *, model: Any) -> nn.Module:
    """The trigger in front of a triggered copy of ``model``, in its saved form (a hard trigger as its words)."""
    trigger = triggered.prompts[-1]
    return hard_as_soft(trigger, model=model) if isinstance(trigger, HardTrigger) else trigger


def saved_form(target: Target, *, kind: str, model: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The chosen trigger as a loadable prompt module, and how the report shows it."""
    trigger = target.trigger
    if kind == "hard":
        assert isinstance(trigger, HardTrigger)
        ids = trigger.token_ids()
        words = model.tokenizer.convert_ids_to_tokens(ids.tolist())
        saved = hard_as_soft(trigger, model=model)
        # the deployed model carries the saved words, exactly as trained (straight-through forward = these rows)
        target.model.prompts[-1] = saved
        return saved, {"kind": "hard", "words": words, "token_ids": ids.tolist(), "text": " ".join(words)}
    if kind == "conditional":
        return trigger, {"kind": "conditional", "tokens": int(trigger.config.n_tokens), "dim": int(trigger.config.dim),
                         "bottleneck": int(trigger.config.bottleneck),
                         "parameters": int(sum(p.numel() for p in trigger.parameters())),
                         "norms": [float(v) for v in trigger.weight.detach().norm(dim=1)]}
    if kind == "soft":
        weight = trigger.weight.detach()
        matrix = model.base.get_input_embeddings().weight.detach()
        nearest = torch.cdist(weight, matrix).argmin(dim=1)
        return trigger, {"kind": "soft", "tokens": int(weight.shape[0]), "dim": int(weight.shape[1]),
                         "nearest_words": model.tokenizer.convert_ids_to_tokens(nearest.tolist()),
                         "norms": [float(v) for v in weight.norm(dim=1)]}
    image = trigger.render()
    return trigger, {"kind": kind, "image_png": png_data_uri(image), "image_size": list(image.shape[:2]),
                     "config": trigger.config_dict()}


def parameter_counts(model: Any, target: Target, *, kind: str) -> dict[str, Any]:
    from fairprompt.models.frozen import total_parameters

    trained = sum(p.numel() for p in target.trigger.parameters())
    backbone = total_parameters(model.encoder if hasattr(model, "encoder") else model.backbone)
    whole = total_parameters(model)
    out = {"trigger_trainable": int(trained), "backbone": int(backbone), "model_total": int(whole),
           "trainable_share_of_model": trained / whole if whole else None}
    if kind == "hard":
        out["deployed_trigger_tokens"] = int(target.trigger.selector.shape[0]) if isinstance(target.trigger, HardTrigger) \
            else int(sum(p.shape[0] for p in target.trigger.parameters()))
        out["note"] = ("the selector over the candidate words is what trains (a relaxation); the deployed trigger is "
                       f"{out['deployed_trigger_tokens']} vocabulary words")
    return out


__all__ = ["HardTrigger", "Target", "build", "build_forward", "check_generator_budget", "check_image_trigger",
           "check_text_trigger",
           "deployed_trigger", "hard_as_soft", "model_modality", "parameter_counts", "png_data_uri", "project_simplex",
           "saved_form", "word_candidates"]
