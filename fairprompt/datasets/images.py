"""Users' images: a folder of image files and a metadata table that lists them.

The metadata table (.csv, .csv.gz, .parquet or .pq, read by
:func:`fairprompt.datasets.files.read_table`) has one row per image: a path
column (relative to ``root``, which defaults to the metadata file's folder, or
absolute), an optional label column and the sensitive columns.  Images are
decoded with Pillow, converted to RGB (EXIF orientation applied, alpha
dropped) and resized (bilinear) to ``image_size``, giving ``uint8 [N, H, W, 3]``
arrays like :mod:`fairprompt.datasets.colored_digits`.

>>> table = load_image_folder(metadata="faces/metadata.csv", label_column="smiling", sensitive=["gender"])
>>> table.images().shape                     # decoded once, then kept
(1200, 64, 64, 3)
>>> table.load([0, 5, 7]).shape              # any rows, decoded on demand
(3, 64, 64, 3)

Every user mistake raises :class:`~fairprompt.errors.FairpromptError` with one
sentence naming the file or column and the fix: a missing or empty metadata
file, a missing column (with a did-you-mean hint), empty paths, rows that point
at missing files (how many, and the first), and an image that cannot be decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairprompt.datasets.files import read_table
from fairprompt.errors import FairpromptError, did_you_mean

__all__ = ["ImageTable", "decode_image", "load_image_folder"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; library code never prints."""


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int or a pair, validated."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        pair = (int(image_size), int(image_size))
    elif isinstance(image_size, Sequence) and not isinstance(image_size, str) and len(image_size) == 2:
        pair = (int(image_size[0]), int(image_size[1]))
    else:
        raise FairpromptError(f"image_size must be an integer or a (height, width) pair, got {image_size!r}")
    if min(pair) < 1 or max(pair) > 4096:
        raise FairpromptError(f"image_size must lie between 1 and 4096 pixels, got {image_size!r}")
    return pair


def decode_image(data: bytes, *, size: tuple[int, int], name: str = "image") -> np.ndarray:
    """Decode image bytes to RGB ``uint8 [H, W, 3]`` resized (bilinear) to ``size = (height, width)``.

    Raises :class:`FairpromptError` naming ``name`` when the bytes are not an image Pillow can decode.
    """
    try:
        from PIL import Image, ImageOps
    except ImportError:  # pragma: no cover - Pillow comes with torchvision and matplotlib
        raise FairpromptError("reading images needs Pillow; install it with 'pip install pillow'") from None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise FairpromptError(
            f"image '{name}' could not be decoded ({reason[:160]}); replace it with a valid PNG or JPEG file "
            "or remove its row from the metadata"
        ) from None
    height, width = size
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).copy()


@dataclass(eq=False)
class ImageTable:
    """A metadata frame, the image files it lists, and their roles.

    ``frame`` is the metadata table as read (fresh 0..n-1 index); ``paths`` the
    resolved image paths, one per row; ``label`` the label column (or None),
    ``favourable_label`` the label value counted as favourable (None when the
    label is already 0/1); ``sensitive`` the sensitive columns; ``image_size``
    ``(height, width)``; ``sha256`` covers the metadata file and every image
    file's bytes, so it changes when any of them does.
    """

    frame: pd.DataFrame
    paths: tuple[Path, ...]
    label: str | None
    favourable_label: Any
    sensitive: tuple[str, ...]
    image_size: tuple[int, int]
    source: str
    root: Path
    sha256: str
    name: str = ""
    _decoded: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def y(self) -> np.ndarray:
        """The label as 0/1 ints, 1 where it equals ``favourable_label`` (or the 0/1 label itself)."""
        if self.label is None:
            raise FairpromptError(f"image metadata '{self.source}' has no label column; "
                                  "pass label_column=... to load_image_folder")
        values = self.frame[self.label]
        if values.isna().any():
            raise FairpromptError(
                f"label column {self.label!r} of '{self.source}' has {int(values.isna().sum())} missing values; "
                "fill them or drop those rows"
            )
        if self.favourable_label is None:
            uniques = set(pd.unique(values).tolist())
            if uniques <= {0, 1} or uniques <= {False, True}:
                return values.to_numpy().astype(np.int64)
            raise FairpromptError(
                f"label column {self.label!r} of '{self.source}' is not 0/1; pass favourable_label=... to load_image_folder"
            )
        matches = (values == self.favourable_label) | (values.astype(str) == str(self.favourable_label))
        return matches.to_numpy(dtype=bool).astype(np.int64)

    def load(self, rows: Sequence[int] | np.ndarray | None = None, *, progress: Progress | None = None) -> np.ndarray:
        """Decode the images of ``rows`` (all when None) to ``uint8 [n, H, W, 3]``."""
        if self._decoded is not None:
            return self._decoded if rows is None else self._decoded[np.asarray(rows, dtype=np.int64)]
        index = np.arange(len(self.paths)) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.empty((index.size, *self.image_size, 3), dtype=np.uint8)
        for done, row in enumerate(index.tolist()):
            out[done] = decode_image(_read(self.paths[row], self.source), size=self.image_size, name=str(self.paths[row]))
            if progress is not None:
                progress("decode images", done + 1, index.size)
        return out

    def images(self, *, progress: Progress | None = None) -> np.ndarray:
        """All images as ``uint8 [N, H, W, 3]``, decoded once and kept."""
        if self._decoded is None:
            self._decoded = self.load(progress=progress)
        return self._decoded


def _read(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FairpromptError(
            f"image file '{path}' listed in '{source}' no longer exists; restore it or remove its row"
        ) from None
    except OSError as exc:
        raise FairpromptError(f"image file '{path}' listed in '{source}' could not be read ({exc.strerror}); "
                              "check its permissions") from None


def _column(frame: pd.DataFrame, column: str, *, role: str, where: str, argument: str) -> None:
    if column not in frame.columns:
        raise FairpromptError(
            f"metadata '{where}' has no {role} column {column!r}{did_you_mean(column, [str(c) for c in frame.columns])} "
            f"(set {argument})"
        )


def load_image_folder(
    *,
    metadata: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    path_column: str = "path",
    label_column: str | None = "label",
    sensitive: str | Sequence[str] = ("group",),
    favourable_label: Any = None,
    image_size: int | Sequence[int] = 32,
    decode: Literal["eager", "lazy"] = "eager",
    progress: Progress | None = None,
) -> ImageTable:
    """Read an image metadata table and the images it lists.

    Args:
        metadata: .csv, .csv.gz, .parquet or .pq file with one row per image.
        root: folder that relative paths start from; default the metadata file's folder.
        path_column: column holding each image's path.
        label_column: column holding the true label, or None for unlabelled images.
        sensitive: one or more sensitive columns.
        favourable_label: the label value counted as favourable; None when the label is 0/1.
        image_size: output size, an int (square) or ``(height, width)``.
        decode: ``eager`` decodes every image now (so a bad file fails here);
            ``lazy`` decodes on :meth:`ImageTable.load` / :meth:`ImageTable.images`.
            Both read every file's bytes once to compute ``sha256``.
        progress: optional callback ``progress(stage, done, total)``.

    Raises :class:`FairpromptError` for a missing or empty metadata file, a
    missing column, an empty path, rows whose image files are missing, or (eager)
    an image that cannot be decoded.
    """
    meta = Path(metadata)
    if not meta.exists():
        raise FairpromptError(
            f"image metadata file '{meta}' does not exist; give a CSV with one row per image and "
            f"a {path_column!r} column (relative paths start from '{Path.cwd()}')"
        )
    if decode not in ("eager", "lazy"):
        raise FairpromptError(f"decode must be 'eager' or 'lazy', got {decode!r}")
    size = _size(image_size)
    frame = read_table(meta)  # FairpromptError for an empty, header-only or unreadable table
    where = str(meta)
    _column(frame, path_column, role="path", where=where, argument="path_column")
    if label_column is not None:
        _column(frame, label_column, role="label", where=where, argument="label_column")
    roles = (sensitive,) if isinstance(sensitive, str) else tuple(dict.fromkeys(str(s) for s in sensitive))
    for column in roles:
        _column(frame, column, role="sensitive", where=where, argument="sensitive")
    if label_column is not None and label_column in roles:
        raise FairpromptError(f"column {label_column!r} of '{meta}' is both the label and a sensitive column; "
                              "choose different sensitive columns")
    if path_column in roles or path_column == label_column:
        raise FairpromptError(f"column {path_column!r} of '{meta}' is the path column "
                              "and cannot also be a label or sensitive column")
    if favourable_label is not None:
        if label_column is None:
            raise FairpromptError(f"favourable_label {favourable_label!r} was given for '{meta}' without a label column; "
                                  "set label_column too")
        present = pd.unique(frame[label_column].dropna()).tolist()
        match = [v for v in present if v == favourable_label] or [v for v in present if str(v) == str(favourable_label)]
        if not match:
            shown = ", ".join(repr(v) for v in present[:6]) + (", ..." if len(present) > 6 else "")
            raise FairpromptError(
                f"favourable label {favourable_label!r} does not occur in label column {label_column!r} of '{meta}' "
                f"(values: {shown}); set favourable_label to one of them"
            )
        favourable_label = match[0].item() if isinstance(match[0], np.generic) else match[0]

    raw_paths = frame[path_column]
    blank = raw_paths.isna() | (raw_paths.astype(str).str.strip() == "")
    if blank.any():
        first = int(np.flatnonzero(blank.to_numpy())[0])
        raise FairpromptError(
            f"{int(blank.sum())} rows of '{meta}' have an empty {path_column!r} value (first: data row {first + 1}); "
            "fill in each image's path or remove those rows"
        )
    base = Path(root) if root is not None else meta.parent
    if root is not None and not base.is_dir():
        raise FairpromptError(f"image root folder '{base}' does not exist; pass root= the folder that holds the images")
    paths = tuple(p if p.is_absolute() else base / p for p in (Path(str(v).strip()) for v in raw_paths.tolist()))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FairpromptError(
            f"{len(missing)} of {len(paths)} rows of '{meta}' point at missing image files (first: '{missing[0]}'); "
            f"fix the {path_column!r} column or pass root= the folder the paths start from"
        )

    digest = hashlib.sha256()
    digest.update(meta.read_bytes())
    decoded = np.empty((len(paths), *size, 3), dtype=np.uint8) if decode == "eager" else None
    for row, path in enumerate(paths):
        data = _read(path, str(meta))
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
        if decoded is not None:
            decoded[row] = decode_image(data, size=size, name=str(path))
        if progress is not None:
            progress("read images", row + 1, len(paths))
    return ImageTable(
        frame=frame, paths=paths, label=label_column, favourable_label=favourable_label, sensitive=roles,
        image_size=size, source=str(meta), root=base, sha256=digest.hexdigest(), name=meta.stem, _decoded=decoded,
    )
