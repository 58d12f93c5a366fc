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
- :func:`fairprompt.models.image_fixture.fixture_classifier`: the biased colored-digits
  classifier, trained once from scratch on the training split of
  :mod:`fairprompt.datasets.colored_digits`, frozen and cached (its architecture,
  ``fixture-cnn``, is :func:`fixture_cnn` here).

Nothing is unpickled: weights are read with ``safetensors`` only, and a cached
file whose sha256 differs from the one recorded in its JSON is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairprompt.atomic import write_bytes, write_text
from fairprompt.errors import FairpromptError, did_you_mean
from fairprompt.models.frozen import freeze, state_sha256

__all__ = [
    "CONFIG_FILE", "IMAGENET_MEAN", "IMAGENET_STD", "FrozenImageClassifier", "ImageRows", "build_backbone", "fixture_cnn",
    "from_torchvision", "images_to_tensor", "load_classifier", "load_folder", "save_classifier",
]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; library code never prints."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

FORMAT = "fairprompt-image-classifier"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"



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
    model, _ = load_folder(Path(directory), prompts=prompts)
    return model


def load_folder(folder: Path, *, prompts: Sequence[nn.Module] = (),
                fix: str | None = None) -> tuple[FrozenImageClassifier, dict[str, Any]]:
    """A classifier folder and its JSON config (:func:`load_classifier`; ``fix``: what the error says to do)."""
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
