"""Pixel-space prompts for image backbones: a learned border (frame) and a learned corner patch.

Images are float tensors [B, C, H, W] with values in [0, 1]; normalisation
happens later, inside the model.  Learned pixels stay in [0, 1] because each
prompt stores an unconstrained parameter (a logit) and renders
``sigmoid(parameter)``: init ``"zeros"`` is therefore a neutral grey (0.5),
init ``"random"`` draws seeded normal(0, init_std) logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairprompt.errors import FairpromptError
from fairprompt.prompts.base import PromptModule, check_choice, check_int, check_positive

PixelInit = Literal["zeros", "random"]
PIXEL_INITS: tuple[str, ...] = ("zeros", "random")
Corner = Literal["top_left", "top_right", "bottom_left", "bottom_right"]
CORNERS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")


def _initial(shape: tuple[int, ...], *, init: str, seed: int, std: float, generator: torch.Generator | None = None) -> Tensor:
    if init == "zeros":
        return torch.zeros(shape)
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen) * std


def _check_images(images: Tensor, *, channels: int, who: str) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise FairpromptError(f"{who} needs float images [batch, channels, height, width] but got {shape}; "
                              "convert the images to a float tensor in [0, 1]")
    if images.shape[1] != channels:
        raise FairpromptError(
            f"{who} was made for {channels}-channel images but got {images.shape[1]} channels; "
            "set channels in its config to match the images"
        )


def _resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def _to_uint8(image: Tensor) -> np.ndarray:
    """[1, C, H, W] in [0, 1] -> H x W x C uint8."""
    array = image[0].detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(1, 2, 0).contiguous().numpy()


@dataclass
class PixelBorderConfig:
    """Configuration of a :class:`PixelBorder`."""

    image_size: int = field(metadata={"help": "Side of the square image the backbone takes."})
    width: int = field(metadata={"help": "Width in pixels of the learned frame; the image fills the centre."})
    channels: int = field(default=3, metadata={"help": "Number of image channels."})
    init: PixelInit = field(default="zeros", metadata={"help": "'zeros' (grey frame) or 'random' (seeded logits)."})
    seed: int = field(default=0, metadata={"help": "Seed of init='random'."})
    init_std: float = field(default=1.0, metadata={"help": "Standard deviation of the random logits."})

    def __post_init__(self) -> None:
        owner = "PixelBorderConfig"
        check_int(owner, "image_size", self.image_size, minimum=3)
        check_int(owner, "width", self.width, minimum=1)
        check_int(owner, "channels", self.channels, minimum=1)
        check_choice(owner, "init", self.init, PIXEL_INITS)
        check_int(owner, "seed", self.seed, minimum=0)
        check_positive(owner, "init_std", self.init_std)
        if self.image_size - 2 * self.width < 1:
            raise FairpromptError(
                f"PixelBorderConfig.width {self.width} leaves no room for the image in a {self.image_size}-pixel square; "
                f"set width below {(self.image_size + 1) // 2}"
            )

    @property
    def inner_size(self) -> int:
        """Side of the centre square the input image is resized into."""
        return self.image_size - 2 * self.width


class PixelBorder(PromptModule):
    """A learned frame of ``width`` pixels around the input image, resized into the centre.

    Parameters (logits): ``top`` / ``bottom`` [C, width, S] and ``left`` /
    ``right`` [C, S - 2*width, width]; one parameter per frame pixel.
    """

    kind: ClassVar[str] = "pixel_border"
    config_class: ClassVar[type] = PixelBorderConfig

    def __init__(self, config: PixelBorderConfig) -> None:
        super().__init__()
        if not isinstance(config, PixelBorderConfig):
            raise FairpromptError(f"PixelBorder needs a PixelBorderConfig but got {type(config).__name__}; build one first")
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        for name, shape in self.expected_shapes(config).items():
            value = _initial(shape, init=config.init, seed=config.seed, std=config.init_std, generator=generator)
            setattr(self, name, nn.Parameter(value))

    @classmethod
    def expected_shapes(cls, config: PixelBorderConfig) -> dict[str, tuple[int, ...]]:
        c, s, w, inner = config.channels, config.image_size, config.width, config.inner_size
        return {"top": (c, w, s), "bottom": (c, w, s), "left": (c, inner, w), "right": (c, inner, w)}

    @classmethod
    def from_tensors(cls, config: PixelBorderConfig, tensors: Mapping[str, Tensor]) -> PixelBorder:
        module = cls(config)
        for name in cls.expected_shapes(config):
            setattr(module, name, nn.Parameter(tensors[name].detach().clone()))
        return module

    def forward(self, images: Tensor) -> Tensor:
        """[B, C, H, W] in [0, 1] -> [B, C, S, S]: image resized into the centre, learned frame around it."""
        _check_images(images, channels=self.config.channels, who="PixelBorder")
        centre = _resize(images, self.config.inner_size)
        batch = centre.shape[0]

        def frame(p: Tensor) -> Tensor:
            return torch.sigmoid(p).to(device=centre.device, dtype=centre.dtype).unsqueeze(0).expand(batch, -1, -1, -1)

        middle = torch.cat([frame(self.left), centre, frame(self.right)], dim=3)
        return torch.cat([frame(self.top), middle, frame(self.bottom)], dim=2)

    def render(self, *, background: float = 0.5) -> np.ndarray:
        """The frame around a uniform ``background`` centre, as an S x S x C uint8 image for reports."""
        c, s = self.config.channels, self.config.inner_size  # already centre-sized: no resampling
        with torch.no_grad():
            grey = torch.full((1, c, s, s), float(background), dtype=self.top.dtype, device=self.top.device)
            return _to_uint8(self(grey))

    def extra_repr(self) -> str:
        return f"image_size={self.config.image_size}, width={self.config.width}, channels={self.config.channels}"


@dataclass
class PixelPatchConfig:
    """Configuration of a :class:`PixelPatch`."""

    image_size: int = field(metadata={"help": "Side of the square image the backbone takes."})
    size: int = field(metadata={"help": "Side k of the learned k x k patch."})
    corner: Corner = field(default="bottom_right", metadata={"help": "Where the patch goes."})
    channels: int = field(default=3, metadata={"help": "Number of image channels."})
    init: PixelInit = field(default="zeros", metadata={"help": "'zeros' (grey patch) or 'random' (seeded logits)."})
    seed: int = field(default=0, metadata={"help": "Seed of init='random'."})
    init_std: float = field(default=1.0, metadata={"help": "Standard deviation of the random logits."})

    def __post_init__(self) -> None:
        owner = "PixelPatchConfig"
        check_int(owner, "image_size", self.image_size, minimum=1)
        check_int(owner, "size", self.size, minimum=1)
        check_choice(owner, "corner", self.corner, CORNERS)
        check_int(owner, "channels", self.channels, minimum=1)
        check_choice(owner, "init", self.init, PIXEL_INITS)
        check_int(owner, "seed", self.seed, minimum=0)
        check_positive(owner, "init_std", self.init_std)
        if self.size > self.image_size:
            raise FairpromptError(
                f"PixelPatchConfig.size {self.size} is larger than image_size {self.image_size}; "
                "set size to at most image_size"
            )

    @property
    def offset(self) -> tuple[int, int]:
        """(row, column) of the patch's top-left pixel."""
        far = self.image_size - self.size
        row = 0 if self.corner.startswith("top") else far
        col = 0 if self.corner.endswith("left") else far
        return row, col


class PixelPatch(PromptModule):
    """A learned k x k patch (parameter ``patch`` [C, k, k], logits) overwriting one corner of the image."""

    kind: ClassVar[str] = "pixel_patch"
    config_class: ClassVar[type] = PixelPatchConfig

    def __init__(self, config: PixelPatchConfig) -> None:
        super().__init__()
        if not isinstance(config, PixelPatchConfig):
            raise FairpromptError(f"PixelPatch needs a PixelPatchConfig but got {type(config).__name__}; build one first")
        self.config = config
        shape = self.expected_shapes(config)["patch"]
        self.patch = nn.Parameter(_initial(shape, init=config.init, seed=config.seed, std=config.init_std))
        mask = torch.zeros(1, 1, config.image_size, config.image_size, dtype=torch.bool)
        row, col = config.offset
        mask[..., row : row + config.size, col : col + config.size] = True
        self.register_buffer("mask", mask, persistent=False)

    @classmethod
    def expected_shapes(cls, config: PixelPatchConfig) -> dict[str, tuple[int, ...]]:
        return {"patch": (config.channels, config.size, config.size)}

    @classmethod
    def from_tensors(cls, config: PixelPatchConfig, tensors: Mapping[str, Tensor]) -> PixelPatch:
        module = cls(config)
        module.patch = nn.Parameter(tensors["patch"].detach().clone())
        return module

    def forward(self, images: Tensor) -> Tensor:
        """[B, C, H, W] in [0, 1] -> [B, C, S, S]: image resized to S if needed, corner patch overwritten."""
        _check_images(images, channels=self.config.channels, who="PixelPatch")
        images = _resize(images, self.config.image_size)
        s, k = self.config.image_size, self.config.size
        row, col = self.config.offset
        values = torch.sigmoid(self.patch).to(device=images.device, dtype=images.dtype)
        canvas = F.pad(values, (col, s - k - col, row, s - k - row)).unsqueeze(0)
        return torch.where(self.mask.to(images.device), canvas, images)

    def render(self, *, background: float = 0.5) -> np.ndarray:
        """The patch on a uniform ``background`` image, as an S x S x C uint8 image for reports."""
        c, s = self.config.channels, self.config.image_size
        with torch.no_grad():
            grey = torch.full((1, c, s, s), float(background), dtype=self.patch.dtype, device=self.patch.device)
            return _to_uint8(self(grey))

    def extra_repr(self) -> str:
        cfg = self.config
        return f"image_size={cfg.image_size}, size={cfg.size}, corner={cfg.corner!r}, channels={cfg.channels}"

