"""Atomic file output: write to a temporary file (or folder) beside the target, then rename.

A crash or an error never leaves a half-written file or folder at the target path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else "") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb", encoding=None) as handle:
        handle.write(data)
    return Path(path)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def replace_dir(parent: str | os.PathLike[str], name: str, fill: Callable[[Path], None], *,
                overwrite: bool = True) -> Path:
    """Write the folder ``parent/name`` atomically and return its path.

    ``fill`` writes into a temporary folder beside it, which is then renamed to ``name``: over an old folder of
    that name (``overwrite=True``), or, with ``overwrite=False``, only where none exists yet (an existing one,
    e.g. written by a concurrent run, is kept and the new one discarded).  A failing ``fill`` leaves nothing
    behind and the old folder untouched.
    """
    root = Path(parent)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name[:12]}-", dir=root))
    final = root / name
    try:
        fill(staging)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp made it private; the folders beside it are not
        if not overwrite:
            with contextlib.suppress(OSError):  # another run stored it first: keep that one
                os.replace(staging, final)
            return final
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name[:12]}-old-", dir=root))
            os.replace(final, old / name)
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final
