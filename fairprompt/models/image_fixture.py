"""The colored-digits fixture: the biased image classifier the embedded ``colored_digits`` spec audits, trained
once from scratch on the training split of :mod:`fairprompt.datasets.colored_digits`, then frozen and cached.

**The fixture architecture** (``fixture-cnn``) is a small CNN, chosen over an
adapted ResNet-18 (conv1 3x3 stride 1, maxpool kept), which took 25-90 s per
epoch at 32x32 on a busy 2-core machine against 2.5-5 s for this CNN (too slow
for a fixture trained on first use): three blocks
``conv3x3 (16, 32, 64 channels) -> BatchNorm -> ReLU -> maxpool 2``, then
``flatten -> linear 128 -> ReLU -> linear 2``; 155,154 parameters at 32x32.
The flatten (rather than global pooling) keeps the layout of the strokes, which
the digit task needs.  It is trained on the CPU with AdamW (lr 3e-3 under a
one-cycle schedule, weight decay 1e-4), batch 32, 12 epochs, random
translations of up to 2 pixels, cross-entropy; 41-63 s measured on a busy 2-core machine.
Trained with a training-split correlation of 0.9 it reaches about 0.9 accuracy
on the uncorrelated test split and has learnt the tint shortcut (true-positive
and false-positive rates differ by group).  Training is seeded (model
initialisation under ``torch.random.fork_rng``, a seeded generator for
shuffling and augmentation), so two trainings with the same seed, torch version
and thread count give identical weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairprompt.cache import cache_dir, cache_key
from fairprompt.errors import FairpromptError
from fairprompt.models.frozen import state_sha256, total_parameters
from fairprompt.models.image import (
    CONFIG_FILE,
    FrozenImageClassifier,
    fixture_cnn,
    images_to_tensor,
    load_folder,
    save_classifier,
)

Progress = Callable[[str, int, int], None]

#: The fixture CNN's settings (see the module docstring).
FIXTURE_ARCHITECTURE: dict[str, Any] = {"name": "fixture-cnn", "widths": [16, 32, 64], "hidden": 128, "num_classes": 2}
#: The fixture's training hyper-parameters; ``epochs`` can be overridden.
FIXTURE_TRAINING: dict[str, Any] = {
    "optimizer": "AdamW", "lr": 3e-3, "weight_decay": 1e-4, "schedule": "one-cycle", "batch_size": 32,
    "epochs": 12, "shift": 2, "loss": "cross-entropy", "device": "cpu",
}
_TRAINER_VERSION = 1


def _shift(batch: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``pixels`` in each direction (edges replicated)."""
    if pixels <= 0:
        return batch
    n, c, h, w = batch.shape
    padded = F.pad(batch, (pixels, pixels, pixels, pixels), mode="replicate")
    offsets = torch.randint(0, 2 * pixels + 1, (n, 2), generator=generator)
    rows = (offsets[:, 0:1] + torch.arange(h))[:, None, :, None]
    cols = (offsets[:, 1:2] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def _accuracy(backbone: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    backbone.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch):
            correct += int((backbone(x[start:start + batch]).argmax(1) == y[start:start + batch]).sum())
    return correct / max(1, x.shape[0])


def fixture_classifier(
    *,
    data: Any,
    seed: int = 0,
    epochs: int = FIXTURE_TRAINING["epochs"],
    cache: bool = True,
    progress: Progress | None = None,
) -> tuple[FrozenImageClassifier, dict[str, Any]]:
    """The biased colored-digits classifier: trained once on ``data``'s training split, frozen, cached.

    ``data`` is a :class:`fairprompt.datasets.colored_digits.ColoredDigits`.  The
    cache key covers the data's sha256, the architecture, the hyper-parameters,
    the seed, the torch version and the trainer version; the weights live in
    ``cache_dir("models", key)`` as ``model.safetensors`` + ``model.json`` and are
    loaded (sha256-verified, never unpickled) when present.  ``cache=False``
    trains without reading or writing the cache.

    Returns the frozen classifier and a JSON-ready description: architecture,
    parameter count, epochs, final train / validation accuracy, the training
    curve, training time, cache key and path, and whether it came from the cache.

    Raises :class:`FairpromptError` when ``data`` has no training rows or a cached
    file is corrupted.
    """
    if int(epochs) < 1:
        raise FairpromptError(f"epochs must be at least 1, got {epochs}")
    try:
        frame, images, data_sha = data.frame, data.images, str(data.sha256)
    except AttributeError:
        raise FairpromptError("fixture_classifier needs data=colored_digits.generate(...) (a ColoredDigits)") from None
    size = tuple(int(s) for s in images.shape[1:3])
    hyper = dict(FIXTURE_TRAINING, epochs=int(epochs))
    architecture = dict(FIXTURE_ARCHITECTURE)
    key = cache_key({
        "kind": "colored-digits-fixture", "trainer_version": _TRAINER_VERSION, "data_sha256": data_sha,
        "architecture": architecture, "input_size": list(size), "hyper": hyper, "seed": int(seed),
        "torch": torch.__version__,
    })
    folder = cache_dir("models", key)
    fix = f"delete the folder '{folder}' to train the fixture again"
    if cache and (folder / CONFIG_FILE).is_file():
        started = time.perf_counter()
        model, config = load_folder(folder, fix=fix)
        info = dict(config.get("extra", {}))
        info.update(from_cache=True, load_time_s=round(time.perf_counter() - started, 4), cache_path=str(folder))
        if info.get("cache_key") != key:
            raise FairpromptError(f"cached fixture '{folder / CONFIG_FILE}' records another cache key; {fix}")
        return model, info

    split = frame["split"].to_numpy()
    train_rows, val_rows = np.flatnonzero(split == "train"), np.flatnonzero(split == "validation")
    if train_rows.size == 0:
        raise FairpromptError("the colored_digits data has no 'train' rows; generate it with colored_digits.generate()")
    labels = torch.tensor(frame["label"].to_numpy(dtype=np.int64))
    x_all = images_to_tensor(np.asarray(images))
    x_train, y_train = x_all[train_rows], labels[train_rows]
    mean = x_train.mean(dim=(0, 2, 3)).tolist()
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    norm = lambda x: (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)  # noqa: E731
    n_train, n_val = norm(x_train), norm(x_all[val_rows])
    y_val = labels[val_rows]

    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        backbone = fixture_cnn(input_size=size, widths=architecture["widths"], hidden=architecture["hidden"],
                               num_classes=architecture["num_classes"])
    generator = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=hyper["lr"], weight_decay=hyper["weight_decay"])
    batch = int(hyper["batch_size"])
    steps = math.ceil(n_train.shape[0] / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hyper["lr"], total_steps=int(epochs) * steps)
    curve: list[dict[str, float]] = []
    for epoch in range(int(epochs)):
        backbone.train()
        order = torch.randperm(n_train.shape[0], generator=generator)
        total = 0.0
        for start in range(0, order.numel(), batch):
            index = order[start:start + batch]
            loss = F.cross_entropy(backbone(_shift(n_train[index], int(hyper["shift"]), generator)), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * index.numel()
        point = {"epoch": epoch + 1, "loss": total / n_train.shape[0],
                 "train_accuracy": _accuracy(backbone, n_train, y_train),
                 "validation_accuracy": _accuracy(backbone, n_val, y_val) if val_rows.size else None}
        curve.append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in point.items()})
        if progress is not None:
            progress("train fixture", epoch + 1, int(epochs))
    elapsed = time.perf_counter() - started

    model = FrozenImageClassifier(backbone=backbone, input_size=size, mean=mean, std=std, architecture=architecture,
                                  class_names=("low digit", "high digit"))
    info: dict[str, Any] = {
        "architecture": architecture, "input_size": list(size), "parameters": total_parameters(backbone),
        "epochs": int(epochs), "hyper_parameters": hyper, "seed": int(seed),
        "final_train_accuracy": curve[-1]["train_accuracy"], "final_validation_accuracy": curve[-1]["validation_accuracy"],
        "curve": curve, "time_s": round(elapsed, 3), "cache_key": key, "data_sha256": data_sha,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "backbone_sha256": state_sha256(backbone),
    }
    if cache:
        save_classifier(model=model, directory=folder, extra=info)
    info.update(from_cache=False, cache_path=str(folder) if cache else None)
    return model, info


__all__ = ["FIXTURE_ARCHITECTURE", "FIXTURE_TRAINING", "fixture_classifier"]
