"""Frozen image classifiers: a backbone that never changes, with input-side prompts in front of it.

:class:`FrozenImageClassifier` runs ``images in [0, 1] -> prompts (in order) ->
resize to the backbone's input size if needed -> normalise (mean/std) ->
backbone -> logits``.  The backbone is frozen when the wrapper is built
(``requires_grad=False``, eval mode, and kept in eval mode by ``train()`` so
batch-norm statistics never move); only the prompt modules can train.

Backbones come from three places:

- :func:`from_torchvision`: a torchvision classifier built by name
  (``torchvision.models.get_model(name, weights=None, num_classes=...)``),
  optionally with a user's local ``.safetensors`` weights file;
- :func:`load_classifier`: a folder written by :func:`save_classifier`
  (``model.safetensors`` + ``model.json``);
- :func:`fixture_classifier`: the biased colored-digits classifier, trained once
  from scratch on the training split of
  :mod:`fairprompt.datasets.colored_digits`, frozen and cached.

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

Nothing is unpickled: weights are read with ``safetensors`` only, and a cached
file whose sha256 differs from the one recorded in its JSON is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairprompt.atomic import write_bytes, write_text
from fairprompt.cache import cache_dir, cache_key
from fairprompt.errors import FairpromptError, did_you_mean
from fairprompt.models.frozen import freeze, state_sha256, total_parameters

__all__ = [
    "FIXTURE_ARCHITECTURE", "IMAGENET_MEAN", "IMAGENET_STD", "FrozenImageClassifier", "ImageRows", "build_backbone",
    "fixture_classifier", "fixture_cnn", "from_torchvision", "images_to_tensor", "load_classifier", "save_classifier",
]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; library code never prints."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

FORMAT = "fairprompt-image-classifier"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"

#: The fixture CNN's settings (see the module docstring).
FIXTURE_ARCHITECTURE: dict[str, Any] = {"name": "fixture-cnn", "widths": [16, 32, 64], "hidden": 128, "num_classes": 2}
#: The fixture's training hyper-parameters; ``epochs`` can be overridden.
FIXTURE_TRAINING: dict[str, Any] = {
    "optimizer": "AdamW", "lr": 3e-3, "weight_decay": 1e-4, "schedule": "one-cycle", "batch_size": 32,
    "epochs": 12, "shift": 2, "loss": "cross-entropy", "device": "cpu",
}
_TRAINER_VERSION = 1


# --------------------------------------------------------------------------- backbones


def fixture_cnn(*, input_size: int | Sequence[int] = 32, widths: Sequence[int] = (16, 32, 64),
                hidden: int = 128, num_classes: int = 2) -> nn.Sequential:
    """The small CNN used by the colored-digits fixture (randomly initialised)."""
    height, width = _pair(input_size)
    shrink = 2 ** len(widths)
    if height < shrink or width < shrink:
        raise FairpromptError(f"fixture-cnn needs inputs of at least {shrink}x{shrink} pixels, got {height}x{width}")
    layers: list[nn.Module] = []
    channels = 3
    for w in widths:
        layers += [nn.Conv2d(channels, int(w), 3, padding=1, bias=False), nn.BatchNorm2d(int(w)),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = int(w)
    flat = channels * (height // shrink) * (width // shrink)
    layers += [nn.Flatten(), nn.Linear(flat, int(hidden)), nn.ReLU(inplace=True), nn.Linear(int(hidden), int(num_classes))]
    return nn.Sequential(*layers)


def build_backbone(architecture: dict[str, Any], *, input_size: int | Sequence[int]) -> nn.Module:
    """A randomly initialised backbone from an architecture record (as stored in ``model.json``)."""
    name = str(architecture.get("name", ""))
    if name == "fixture-cnn":
        return fixture_cnn(input_size=input_size, widths=architecture["widths"], hidden=architecture["hidden"],
                           num_classes=architecture["num_classes"])
    if name.startswith("torchvision:"):
        return _torchvision_model(name.split(":", 1)[1], num_classes=int(architecture["num_classes"]))
    raise FairpromptError(f"unknown image architecture {name!r}; use 'fixture-cnn' or 'torchvision:<model name>'")


def _torchvision_model(name: str, *, num_classes: int) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models()
    if name not in names:
        raise FairpromptError(f"torchvision has no model {name!r}{did_you_mean(name, names)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torchvision.models.get_model(name, weights=None, num_classes=int(num_classes))


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise FairpromptError(f"input_size must be an integer or a (height, width) pair, got {size!r}")


# --------------------------------------------------------------------------- the wrapper


def images_to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A float ``[B, C, H, W]`` tensor in [0, 1] from uint8 ``[B, H, W, C]`` images (array or tensor).

    A floating-point tensor or array is taken as ``[B, C, H, W]`` already in [0, 1].
    """
    tensor = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(tensor, torch.Tensor):
        raise FairpromptError(f"images must be a numpy array or a torch tensor, got {type(images).__name__}")
    if tensor.ndim != 4:
        raise FairpromptError(
            f"images must be 4-D (uint8 [N, H, W, 3] or float [N, 3, H, W]), got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype == torch.uint8:
        if tensor.shape[-1] not in (1, 3):
            raise FairpromptError(f"uint8 images must be channels-last [N, H, W, 3], got shape {tuple(tensor.shape)}")
        tensor = tensor.permute(0, 3, 1, 2).float().div_(255.0)
        return tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor
    if not tensor.is_floating_point():
        raise FairpromptError(f"images must be uint8 or floating point, got {tensor.dtype}")
    if tensor.shape[1] not in (1, 3):
        raise FairpromptError(f"float images must be channels-first [N, 3, H, W] in [0, 1], got shape {tuple(tensor.shape)}")
    tensor = tensor.float()
    return tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ImageRows:
    """uint8 images [N, H, W, C] with labels, as a ``BatchSource`` for Accelerate training and prediction."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def lengths(self) -> np.ndarray:
        return np.zeros(len(self), dtype=np.int64)

    def collate(self, indices: Sequence[int]) -> dict[str, Any]:
        index = np.asarray(indices, dtype=np.int64)
        return {"images": images_to_tensor(self.images[index]), "labels": torch.as_tensor(self.labels[index]),
                "weights": torch.ones(index.size), "index": torch.as_tensor(index)}


class FrozenImageClassifier(nn.Module):
    """A frozen image backbone with normalisation and an ordered list of input-side prompts.

    ``forward(images)`` takes float ``[B, 3, H, W]`` in [0, 1] and returns logits
    ``[B, num_classes]``.  Each prompt maps such images to images in [0, 1]
    (possibly of another size); after the prompts the batch is resized
    (bilinear) to ``input_size`` when its size differs, normalised with
    ``mean``/``std`` and passed to the backbone.

    The backbone is frozen at construction and stays frozen: ``train()`` keeps it
    in eval mode and ``requires_grad_()`` reaches the prompts only.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        input_size: int | Sequence[int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        prompts: Sequence[nn.Module] = (),
        architecture: dict[str, Any] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(float(s) for s in std) <= 0:
            raise FairpromptError(f"mean and std must be three numbers each with std > 0, got mean={list(mean)}, std={list(std)}")
        self.backbone = freeze(backbone)
        self.prompts = nn.ModuleList(list(prompts))
        self.input_size = _pair(input_size)
        self.architecture = dict(architecture or {"name": type(backbone).__name__})
        self.class_names = tuple(class_names) if class_names is not None else None
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, 3, 1, 1), persistent=False)

    # ---- frozen-ness
    def train(self, mode: bool = True) -> FrozenImageClassifier:
        super().train(mode)
        self.backbone.eval()
        return self

    def requires_grad_(self, requires_grad: bool = True) -> FrozenImageClassifier:
        """Set ``requires_grad`` on the prompts only; the backbone stays frozen."""
        for prompt in self.prompts:
            prompt.requires_grad_(requires_grad)
        return self

    @property
    def backbone_sha256(self) -> str:
        """sha256 of the backbone's state (see :func:`fairprompt.models.frozen.state_sha256`)."""
        return state_sha256(self.backbone)

    def with_prompts(self, prompts: Sequence[nn.Module]) -> FrozenImageClassifier:
        """A new wrapper around the *same* backbone (not a copy) with ``prompts`` in front."""
        return FrozenImageClassifier(
            backbone=self.backbone, input_size=self.input_size, mean=self.mean.flatten().tolist(),
            std=self.std.flatten().tolist(), prompts=prompts, architecture=self.architecture,
            class_names=self.class_names,
        )

    # ---- prediction
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for prompt in self.prompts:
            x = prompt(x)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return self.backbone(x)

    def predict_proba(
        self,
        *,
        images: np.ndarray | torch.Tensor,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Class probabilities ``[N, num_classes]`` (float64), in batches, under ``torch.inference_mode``.

        ``images`` is uint8 ``[N, H, W, 3]`` (as the data sets give them) or float
        ``[N, 3, H, W]`` in [0, 1].  ``device`` defaults to CUDA when available.
        """
        if batch_size < 1:
            raise FairpromptError(f"batch_size must be at least 1, got {batch_size}")
        if not isinstance(images, (np.ndarray, torch.Tensor)):
            raise FairpromptError(f"images must be a numpy array or a torch tensor, got {type(images).__name__}")
        target = _device(device)
        self.to(target)
        was_training = self.training
        self.eval()
        n = int(images.shape[0])
        out: list[np.ndarray] = []
        try:
            with torch.inference_mode():
                for start in range(0, n, batch_size):
                    batch = images_to_tensor(images[start:start + batch_size]).to(target)
                    out.append(torch.softmax(self(batch).float(), dim=1).cpu().numpy().astype(np.float64))
                    if progress is not None:
                        progress("predict", min(start + batch_size, n), n)
        finally:
            self.train(was_training)
        if not out:
            return np.empty((0, self.num_classes), dtype=np.float64)
        return np.concatenate(out, axis=0)

    def predict(self, *, images: np.ndarray | torch.Tensor, batch_size: int = 256,
                device: str | torch.device | None = None, progress: Progress | None = None) -> np.ndarray:
        """Predicted class indices ``[N]`` (the most probable class)."""
        return self.predict_proba(images=images, batch_size=batch_size, device=device, progress=progress).argmax(axis=1)

    @property
    def num_classes(self) -> int:
        if "num_classes" in self.architecture:
            return int(self.architecture["num_classes"])
        with torch.inference_mode():
            probe = torch.zeros(1, 3, *self.input_size, device=self.mean.device)
            return int(self.backbone((probe - self.mean) / self.std).shape[1])

    def config(self) -> dict[str, Any]:
        """The JSON-ready description of the frozen part (architecture, input size, normalisation)."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": self.architecture,
            "input_size": list(self.input_size), "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
            "class_names": None if self.class_names is None else list(self.class_names),
        }


# --------------------------------------------------------------------------- saving and loading


def _load_weights(data: bytes, *, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as load_safetensors

    try:
        return load_safetensors(data)
    except Exception as exc:  # safetensors raises its own SafetensorError, or ValueError / OSError
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise FairpromptError(f"weights file '{name}' is not a valid safetensors file ({reason}); replace it") from None


def _load_state(backbone: nn.Module, state: dict[str, torch.Tensor], *, name: str) -> None:
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise FairpromptError(
            f"weights file '{name}' does not fit the architecture ({len(missing)} missing and {len(unexpected)} "
            f"unexpected tensors, e.g. {detail}); give weights saved from the same architecture and num_classes"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise FairpromptError(
                f"weights file '{name}' has tensor {key!r} of shape {tuple(state[key].shape)}, the architecture needs "
                f"{tuple(tensor.shape)}; give weights saved from the same architecture and num_classes"
            )
    backbone.load_state_dict(state, strict=True)


def from_torchvision(
    *,
    name: str,
    num_classes: int,
    weights: str | os.PathLike[str] | None = None,
    input_size: int | Sequence[int] = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    prompts: Sequence[nn.Module] = (),
    class_names: Sequence[str] | None = None,
) -> FrozenImageClassifier:
    """A torchvision classifier by name, optionally with a local ``.safetensors`` weights file, frozen.

    Nothing is downloaded: the model is built with ``weights=None``.  ``weights``
    must be a safetensors file of the model's ``state_dict`` (pickled ``.pt`` /
    ``.pth`` files are refused; convert them with ``safetensors.torch.save_file``).
    """
    backbone = _torchvision_model(name, num_classes=num_classes)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FairpromptError(f"weights file '{path}' does not exist; give the path of a .safetensors file")
        if path.suffix.lower() in (".pt", ".pth", ".bin", ".pkl", ".ckpt"):
            raise FairpromptError(
                f"weights file '{path}' looks like a pickled checkpoint, which fairprompt never loads; "
                "convert it to .safetensors with safetensors.torch.save_file(model.state_dict(), ...)"
            )
        _load_state(backbone, _load_weights(path.read_bytes(), name=str(path)), name=str(path))
    architecture = {"name": f"torchvision:{name}", "num_classes": int(num_classes)}
    return FrozenImageClassifier(backbone=backbone, input_size=input_size, mean=mean, std=std, prompts=prompts,
                                 architecture=architecture, class_names=class_names)


def save_classifier(*, model: FrozenImageClassifier, directory: str | os.PathLike[str],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the backbone as ``model.safetensors`` and its config as ``model.json`` (atomically, JSON last).

    Prompts are not saved here (they have their own artifacts).  ``extra`` is
    stored under ``"extra"`` in the JSON.  Returns the folder.
    """
    from safetensors.torch import save as save_safetensors

    folder = Path(directory)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.backbone.state_dict().items()}
    data = save_safetensors(state, metadata={"format": FORMAT})
    write_bytes(folder / WEIGHTS_FILE, data)
    config = model.config() | {
        "weights_sha256": hashlib.sha256(data).hexdigest(), "backbone_sha256": state_sha256(state),
        "extra": extra or {},
    }
    write_text(folder / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def load_classifier(*, directory: str | os.PathLike[str], prompts: Sequence[nn.Module] = ()) -> FrozenImageClassifier:
    """Load a folder written by :func:`save_classifier`, verifying the weights' sha256; frozen.

    Raises :class:`FairpromptError` when a file is missing, the JSON is invalid,
    or the weights file is corrupted (its sha256 differs from the recorded one).
    """
    model, _ = _load_folder(Path(directory), prompts=prompts)
    return model


def _load_folder(folder: Path, *, prompts: Sequence[nn.Module] = (),
                 fix: str | None = None) -> tuple[FrozenImageClassifier, dict[str, Any]]:
    fix = fix or "save the model again with save_classifier"
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FairpromptError(f"model file '{path}' does not exist; {fix}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format") != FORMAT or int(config.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} file")
        architecture, input_size = dict(config["architecture"]), config["input_size"]
        mean, std, recorded = config["mean"], config["std"], str(config["weights_sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FairpromptError(f"model config '{config_path}' is corrupted or not a fairprompt model ({exc}); {fix}") from None
    data = weights_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise FairpromptError(
            f"weights file '{weights_path}' is corrupted (sha256 {actual[:12]}... differs from the recorded "
            f"{recorded[:12]}...); {fix}"
        )
    backbone = build_backbone(architecture, input_size=input_size)
    _load_state(backbone, _load_weights(data, name=str(weights_path)), name=str(weights_path))
    model = FrozenImageClassifier(backbone=backbone, input_size=input_size, mean=mean, std=std, prompts=prompts,
                                  architecture=architecture, class_names=config.get("class_names"))
    return model, config


# --------------------------------------------------------------------------- the colored-digits fixture


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
        model, config = _load_folder(folder, fix=fix)
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
