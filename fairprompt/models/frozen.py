"""Freezing and fingerprinting modules: the guarantee that a backbone never changes.

``freeze`` sets ``requires_grad=False`` on every parameter and puts the module
in eval mode; ``state_sha256`` hashes a module's whole state_dict (names,
dtypes, shapes and bytes, in a fixed order), so a test can assert that a
training entry point left a backbone bit-for-bit unchanged.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def freeze(module: nn.Module) -> nn.Module:
    """Make every parameter of ``module`` non-trainable and switch it to eval mode; return it."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    module.eval()
    return module


def trainable_parameters(module: nn.Module) -> int:
    """Number of parameters with ``requires_grad``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def total_parameters(module: nn.Module) -> int:
    """Number of parameters, trainable or not (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def state_sha256(module: nn.Module | dict[str, torch.Tensor]) -> str:
    """sha256 over a state_dict's names, dtypes, shapes and raw bytes, sorted by name."""
    state = module.state_dict() if isinstance(module, nn.Module) else module
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(name.encode("utf-8"))
        digest.update(str(tensor.dtype).encode("ascii"))
        digest.update(str(tuple(tensor.shape)).encode("ascii"))
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def adapter_sha256(model: nn.Module) -> str | None:
    """sha256 of a model's task adapter (the task prompt and head of a text model), or None when it has none."""
    parameters = model.task_parameters() if hasattr(model, "task_parameters") else []
    return state_sha256({str(i): p for i, p in enumerate(parameters)}) if parameters else None
