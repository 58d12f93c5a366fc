"""colored_digits: an embedded image task whose only group signal is a tint, and a shortcut in training.

Built offline from scikit-learn's bundled 8x8 handwritten digits
(``sklearn.datasets.load_digits``, 1,797 images), in well under a second:

- **Images.** Each 8x8 digit is upsampled (bilinear) to ``image_size`` x
  ``image_size``; its strokes are painted in the group's tint over a dark grey
  background, with a seeded per-image brightness jitter, a small seeded jitter
  of the tint and mild Gaussian pixel noise, then stored as RGB ``uint8``
  ``[N, H, W, 3]``.  The background, the noise and the jitter are drawn the
  same way for every group, so **the tint is the only group signal**.
- **Label.** ``label = 1`` ("high digit") when ``digit >= 5``, else 0.  Label 1
  is the favourable outcome (``favourable_label = 1``).
- **Group.** ``group`` is the tint's name, ``groups[0]`` ("red") and
  ``groups[1]`` ("green") by default; more tints may be given.
- **Split.** A seeded split of the source images into train / validation /
  test / final, stratified by digit (``fractions``, default 60/20/10/10):
  1,078 / 359 / 179 / 181 rows by default.  Each source image
  (``source_index``) gives exactly one row, so no source image is in two
  splits.  ``final`` is held out for the final judgement (no spec audits it).
  Train and validation keep the sizes the fixture and the triggers were built
  with; the draw is new (its own seeded stream), so the final images are not
  the old test split's, whose results were published.  Three shares give the
  train / validation / test split made before there was a final split, row
  for row (``fractions=(0.6, 0.2, 0.2)``: 1,078 / 359 / 360).
- **Correlation (training only).** Each label has a *home* group: label 1 ->
  ``groups[0]``, label 0 -> ``groups[1]``.  In the training split exactly
  ``round(correlation * n)`` of the ``n`` rows of each label get their home
  group (rows chosen by a seeded permutation) and the others are spread evenly
  over the remaining groups.  With the default two groups this is
  ``P(group = red | label = 1) = P(group = green | label = 0) = correlation``
  (0.9 by default); ``correlation = 0.5`` with two groups means no correlation.
- **No correlation in validation, test and final.** There the groups are assigned in
  equal shares within every digit (a seeded rotation), so group is independent
  of label *and* of digit, and the groups are balanced (to within one row per
  digit).

- **Every tint (``every_tint``, off by default).** In the named held-out splits
  each source image is also rendered in every other tint: a counterfactual copy
  with the same brightness, background, tint jitter and pixel noise, so the two
  rows differ in the tint alone.  The copies are appended after the
  ``load_digits`` rows, which stay byte for byte as without the option, and
  share their source's ``source_index``: resample by it (a cluster bootstrap),
  because copies of one digit are not independent.  Within a digit the gap by
  tint is then a pure tint effect, and twice the rows measure it.

A model trained on the training split can reach 90% accuracy from the tint
alone, so it tends to learn the shortcut; the uncorrelated test split then
shows the gap by group.

>>> data = generate()
>>> data.images.shape, data.frame.columns.tolist()
((1797, 32, 32, 3), ['label', 'digit', 'group', 'split', 'source_index'])
>>> data.frame["split"].value_counts().to_dict()
{'train': 1078, 'validation': 359, 'final': 181, 'test': 179}
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError, did_you_mean

__all__ = ["FRACTIONS", "PALETTE", "SPLITS", "ColoredDigits", "generate"]

#: Tint names and their RGB stroke colours in [0, 1].
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.18, 0.15),
    "green": (0.15, 0.80, 0.22),
    "blue": (0.20, 0.35, 0.95),
    "yellow": (0.92, 0.85, 0.15),
    "magenta": (0.88, 0.20, 0.85),
    "cyan": (0.15, 0.85, 0.88),
    "orange": (0.98, 0.55, 0.10),
    "purple": (0.55, 0.25, 0.85),
    "white": (0.92, 0.92, 0.92),
}

#: The split names; ``ColoredDigits.split(name)`` selects one.
SPLITS: tuple[str, ...] = ("train", "validation", "test", "final")
#: The default shares of train, validation, test and final (stratified by digit).
FRACTIONS: tuple[float, ...] = (0.6, 0.2, 0.1, 0.1)

Split = Literal["train", "validation", "test", "final"]

_BACKGROUND = 0.08
_NOISE_SD = 0.035
_TINT_JITTER = 0.04
_VERSION = 1


@dataclass(frozen=True, eq=False)
class ColoredDigits:
    """The generated data set: images, a frame of roles, and a sha256 of both.

    ``images`` is ``uint8 [N, H, W, 3]`` (RGB); ``frame`` has one row per image
    with columns ``label`` (1 = digit >= 5, favourable), ``digit`` (0-9),
    ``group`` (the tint), ``split`` (train / validation / test / final) and
    ``source_index`` (the row of ``load_digits``).  ``sha256`` covers the
    image bytes and the frame, so it changes with any generation setting.
    """

    images: np.ndarray
    frame: pd.DataFrame
    sha256: str
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = "label"
    favourable_label: int = 1
    sensitive: tuple[str, ...] = ("group",)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def y(self) -> np.ndarray:
        """The label as 0/1 ints (1 = high digit, the favourable outcome)."""
        return self.frame["label"].to_numpy(dtype=np.int64)

    @property
    def groups(self) -> tuple[str, ...]:
        """The tint names, in the order given to :func:`generate`."""
        return tuple(self.settings.get("groups", tuple(pd.unique(self.frame["group"]))))

    def split(self, name: Split) -> ColoredDigits:
        """The rows of one split (``train``, ``validation``, ``test`` or ``final``) as a new ColoredDigits."""
        if name not in SPLITS:
            raise FairpromptError(f"colored_digits has no split {name!r}{did_you_mean(str(name), SPLITS)}")
        return self.select(np.flatnonzero(self.frame["split"].to_numpy() == name))

    def select(self, rows: Sequence[int] | np.ndarray) -> ColoredDigits:
        """A new ColoredDigits holding ``rows`` (positions or a boolean mask), with its own sha256."""
        index = np.asarray(rows)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        images = np.ascontiguousarray(self.images[index])
        frame = self.frame.iloc[index].reset_index(drop=True)
        return ColoredDigits(images=images, frame=frame, sha256=_digest(images, frame), settings=dict(self.settings))

    def as_dataset(self) -> Any:
        """The frame as a :class:`fairprompt.datasets.Dataset` (label ``label``, sensitive ``group``)."""
        from fairprompt.datasets import Dataset  # late: the registry imports this module

        return Dataset(
            name="colored_digits", frame=self.frame, label="label", favourable_label=1, sensitive=("group",),
            source="embedded:colored_digits", sha256=self.sha256,
            description="sklearn 8x8 digits upsampled and tinted by group; label 1 = digit >= 5",
            notes=f"training label-group correlation {self.settings.get('correlation')}; none in validation/test/final",
        )


def _resize_matrix(source: int, target: int) -> np.ndarray:
    """Bilinear interpolation weights ``[target, source]`` (pixel centres aligned, edges clamped)."""
    centres = (np.arange(target) + 0.5) * source / target - 0.5
    centres = np.clip(centres, 0.0, source - 1.0)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, source - 1)
    frac = centres - low
    matrix = np.zeros((target, source))
    matrix[np.arange(target), low] += 1.0 - frac
    matrix[np.arange(target), high] += frac
    return matrix


def _digest(images: np.ndarray, frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(f"colored_digits-v{_VERSION}|{images.shape}|{images.dtype}|".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    for column in ("label", "digit", "group", "split", "source_index"):
        digest.update(column.encode())
        digest.update("\x1f".join(map(str, frame[column].tolist())).encode())
    return digest.hexdigest()


def _split_rows(digits: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """The split of each source image: per digit, a seeded permutation cut at the rounded shares (the last split
    takes the rest).  Three shares make train / validation / test, four add final."""
    split = np.empty(digits.shape[0], dtype=object)
    names = SPLITS[:len(fractions)]
    for d in range(10):
        rows = rng.permutation(np.flatnonzero(digits == d))
        start = 0
        for name, share in zip(names[:-1], fractions[:-1], strict=True):
            stop = start + int(round(share * rows.size))
            split[rows[start:stop]] = name
            start = stop
        split[rows[start:]] = names[-1]
    return split


def _assign_groups(
    labels: np.ndarray, digits: np.ndarray, split: np.ndarray, *, correlation: float, k: int, held_out: tuple[str, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    group = np.empty(labels.shape[0], dtype=np.int64)
    train = split == "train"
    for label, home in ((1, 0), (0, 1)):
        rows = rng.permutation(np.flatnonzero(train & (labels == label)))
        n_home = int(round(correlation * rows.size))
        group[rows[:n_home]] = home
        others = [g for g in range(k) if g != home]
        rest = rows[n_home:]
        start = int(rng.integers(len(others)))
        group[rest] = np.array(others)[(start + np.arange(rest.size)) % len(others)]
    for name in held_out:
        for d in range(10):
            rows = rng.permutation(np.flatnonzero((split == name) & (digits == d)))
            start = int(rng.integers(k))
            group[rows] = (start + np.arange(rows.size)) % k
    return group


def generate(
    *,
    image_size: int = 32,
    correlation: float = 0.9,
    groups: Sequence[str] = ("red", "green"),
    seed: int = 0,
    fractions: Sequence[float] = FRACTIONS,
    noise: float = _NOISE_SD,
    every_tint: Sequence[str] = (),
) -> ColoredDigits:
    """Generate colored_digits (see the module docstring for every definition).

    Args:
        image_size: height and width of the square RGB images (8 to 512).
        correlation: in the training split, the share of each label's rows that
            carry its home tint (label 1 -> ``groups[0]``, label 0 -> ``groups[1]``).
        groups: two or more tint names from :data:`PALETTE`.
        seed: seed of the split, the group assignment and the image noise.
        fractions: train, validation, test and final shares of the source images (stratified by digit); three
            shares make no final split (the split made before final existed).
        noise: standard deviation of the Gaussian pixel noise (in [0, 1] units).
        every_tint: held-out splits (validation, test, final) whose source images are also rendered in every other
            tint, as counterfactual copies appended after the other rows (see the module docstring).

    Raises :class:`FairpromptError` naming the option for an unknown tint or an out-of-range setting.
    """
    if not isinstance(image_size, (int, np.integer)) or not 8 <= int(image_size) <= 512:
        raise FairpromptError(f"colored_digits image_size must be an integer from 8 to 512, got {image_size!r}")
    if not 0.0 <= float(correlation) <= 1.0:
        raise FairpromptError(f"colored_digits correlation must lie in [0, 1], got {correlation!r}")
    names = (groups,) if isinstance(groups, str) else tuple(str(g) for g in groups)
    if len(names) < 2 or len(set(names)) != len(names):
        raise FairpromptError(f"colored_digits groups must be two or more distinct tint names, got {list(names)!r}")
    for name in names:
        if name not in PALETTE:
            raise FairpromptError(f"colored_digits has no tint {name!r}{did_you_mean(name, PALETTE)}")
    parts = tuple(float(f) for f in fractions)
    if len(parts) not in (3, 4) or min(parts) <= 0.0 or abs(sum(parts) - 1.0) > 1e-9:
        raise FairpromptError(f"colored_digits option 'fractions' must be four positive shares (train, validation, test, "
                              f"final) summing to 1, or three (no final split), got {list(fractions)!r}; pass e.g. "
                              f"fractions: {list(FRACTIONS)}")
    if not 0.0 <= float(noise) <= 0.5:
        raise FairpromptError(f"colored_digits noise must lie in [0, 0.5], got {noise!r}")
    copied = (every_tint,) if isinstance(every_tint, str) else tuple(str(s) for s in every_tint)
    held_out = SPLITS[1:len(parts)]
    for name in copied:
        if name not in held_out:
            raise FairpromptError(f"colored_digits option 'every_tint' takes held-out splits ({', '.join(held_out)}), "
                                  f"got {name!r}{did_you_mean(name, held_out)}")

    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = np.asarray(bunch.images, dtype=np.float64) / 16.0  # [N, 8, 8] in [0, 1]
    digits = np.asarray(bunch.target, dtype=np.int64)
    labels = (digits >= 5).astype(np.int64)
    n, size = raw.shape[0], int(image_size)

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1797, _VERSION]))
    # Four shares draw the split from a stream of its own: cut from the old permutation, the final split would be
    # a part of the old test split, whose results have been seen.
    split = _split_rows(digits, parts, rng if len(parts) == 3 else
                        np.random.default_rng(np.random.SeedSequence([int(seed), 1797, _VERSION, len(parts)])))
    group = _assign_groups(labels, digits, split, correlation=float(correlation), k=len(names),
                           held_out=SPLITS[1:len(parts)], rng=rng)

    resize = _resize_matrix(raw.shape[1], size)
    strokes = np.clip(np.einsum("hi,nij,wj->nhw", resize, raw, resize), 0.0, 1.0).astype(np.float32)
    palette = np.array([PALETTE[name] for name in names], dtype=np.float32)
    tint = palette[group] + rng.normal(0.0, _TINT_JITTER, size=(n, 3)).astype(np.float32)
    brightness = rng.uniform(0.75, 1.0, size=(n, 1, 1, 1)).astype(np.float32)
    background = (_BACKGROUND + rng.uniform(-0.03, 0.03, size=(n, 1, 1, 1))).astype(np.float32)
    alpha = strokes[..., None]
    pixel_noise = rng.normal(0.0, float(noise), size=(n, size, size, 3)).astype(np.float32)
    source = np.arange(n, dtype=np.int64)
    if copied:  # counterfactual copies: the same draws as the source row, another tint
        rows = np.flatnonzero(np.isin(split, copied))
        shift = np.arange(1, len(names))
        source = np.concatenate([source, np.repeat(rows, shift.size)])
        copy_group = (np.repeat(group[rows], shift.size) + np.tile(shift, rows.size)) % len(names)
        tint = np.concatenate([tint, palette[copy_group] + (tint - palette[group])[source[n:]]])
        group = np.concatenate([group, copy_group])
    pixels = (background[source] * (1.0 - alpha[source]) + brightness[source] * tint[:, None, None, :] * alpha[source]
              + pixel_noise[source])
    images = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)

    frame = pd.DataFrame({
        "label": labels[source],
        "digit": digits[source],
        "group": pd.Series(np.array(names, dtype=object)[group], dtype=object),
        "split": pd.Series(split[source], dtype=object),
        "source_index": source,
    })
    settings = dict(image_size=size, correlation=float(correlation), groups=names, seed=int(seed),
                    fractions=parts, noise=float(noise), version=_VERSION)
    if copied:
        settings["every_tint"] = copied
    return ColoredDigits(images=images, frame=frame, sha256=_digest(images, frame), settings=settings)


def generate_frame(
    *,
    image_size: int = 32,
    correlation: float = 0.9,
    groups: Sequence[str] = ("red", "green"),
    seed: int = 0,
    fractions: Sequence[float] = FRACTIONS,
    noise: float = _NOISE_SD,
    every_tint: Sequence[str] = (),
) -> pd.DataFrame:
    """The table of :func:`generate` without the pixels (for ``datasets.load("colored_digits")``)."""
    return generate(image_size=image_size, correlation=correlation, groups=groups, seed=seed, fractions=fractions,
                    noise=noise, every_tint=every_tint).frame
