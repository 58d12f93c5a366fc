"""The output folder of a run (``fairprompt audit``, ``fairprompt mitigate``, ``fairprompt report``): one writer
at a time, a manifest that says which files belong together, and no leftovers of dead runs.

- :func:`hold` checks that the folder can be created and written (before any work), takes an advisory lock
  (``fcntl.flock`` on ``.fairprompt.lock``, which holds the writer's PID) so that a second run into the same
  folder stops at once with one line naming that PID, removes the temporary files and staging folders that a
  killed run left (only while holding the lock, so a live writer's are never touched), and on the way out
  releases the lock, removes the lock file, and removes the folder again when it created it and nothing was
  written into it (a run that failed on its inputs leaves nothing behind).
- :meth:`RunFolder.write_step` writes one complete set of files: first ``manifest.json`` marked
  ``"complete": false`` with the sha256 every file *will* have, then each file atomically, then
  ``manifest.json`` again, complete.  A kill at any point leaves a manifest that names exactly the files that
  do not match it; it never leaves an older manifest that makes a mixed folder look whole.
- :func:`verify` compares the folder with its manifest (:class:`Verification`).  A folder without a manifest
  (written by an older fairprompt) is not verified: nothing in it counts as stale.

Only the main process of a distributed run writes: :func:`hold` with ``writer=False`` checks, locks and writes
nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fairprompt import __version__
from fairprompt.atomic import file_sha256, write_bytes, write_text
from fairprompt.errors import FairpromptError

LOCK_FILE = ".fairprompt.lock"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "fairprompt.manifest"
PRINTED = ("report.pdf", "compliance.pdf")  # printed from an earlier results.json: removed when a run rewrites it
_TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # fairprompt.atomic's temporary files
_STAGING_DIR = re.compile(r"^\.[^/]{1,12}-(old-)?[a-z0-9_]{8}$")  # fairprompt.atomic.replace_dir's staging folders


def _text_sha256(content: str | bytes) -> str:
    return hashlib.sha256(content.encode("utf-8") if isinstance(content, str) else content).hexdigest()


def _inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` when that stays inside ``root`` (paths in records come from a file a user can edit)."""
    if not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
        return None
    return root / relative


def files_under(root: Path, paths: Iterable[str]) -> list[str]:
    """The files named by ``paths`` (relative to ``root``; a folder stands for every file in it), relative, sorted;
    paths that do not exist are left out."""
    found: set[str] = set()
    for relative in paths:
        path = _inside(root, relative)
        if path is None:
            continue
        if path.is_file():
            found.add(path.relative_to(root).as_posix())
        elif path.is_dir():
            found.update(p.relative_to(root).as_posix() for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sorted(found)


@dataclass(frozen=True)
class Verification:
    """A folder compared with its manifest: ``stale`` lists the files it names that are missing or differ."""

    folder: Path
    has_manifest: bool
    files: Mapping[str, str] = field(default_factory=dict)  # relative path -> sha256, as the manifest lists them
    stale: tuple[str, ...] = ()
    complete: bool = True
    readable: bool = True  # False: manifest.json is damaged, so nothing in the folder can be trusted

    def is_stale(self, path: str) -> bool:
        """Whether ``path`` (a file, or a folder: any file in it) does not match the manifest, or is not covered by
        it; always False without a manifest (an older fairprompt's folder)."""
        if not self.has_manifest:
            return False
        if not self.readable:
            return True
        prefix = path.rstrip("/") + "/"
        listed = [f for f in self.files if f == path or f.startswith(prefix)]
        return not listed or any(f in self.stale for f in listed)

    def describe(self, path: str) -> str:
        """One clause saying why ``path`` is stale."""
        manifest = self.folder / MANIFEST_FILE
        if not self.readable:
            return f"{manifest} is damaged, so {self.folder / path} cannot be checked"
        if path not in self.files:
            return f"{self.folder / path} is not listed in {manifest}"
        if not (self.folder / path).is_file():
            return f"{self.folder / path} is missing (listed in {manifest})"
        return f"{self.folder / path} does not match {manifest}"


def _read_manifest(folder: Path) -> dict[str, object] | None:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT or not isinstance(raw.get("files"), dict):
        return {}
    return raw


def verify(folder: str | os.PathLike[str]) -> Verification:
    """Compare ``folder`` with its ``manifest.json``."""
    root = Path(folder)
    raw = _read_manifest(root)
    if raw is None:
        return Verification(folder=root, has_manifest=False)
    if not raw:
        return Verification(folder=root, has_manifest=True, stale=(MANIFEST_FILE,), complete=False, readable=False)
    files = _listed(raw)
    return Verification(folder=root, has_manifest=True, files=files, stale=_stale(root, files),
                        complete=raw.get("complete") is True)


def _listed(raw: Mapping[str, object]) -> dict[str, str]:
    listed = raw["files"]
    assert isinstance(listed, dict)
    return {str(k): str(v) for k, v in listed.items()}


def _stale(root: Path, files: Mapping[str, str]) -> tuple[str, ...]:
    """The files of ``files`` (relative path -> sha256) that are missing under ``root`` or differ."""
    stale = []
    for relative, expected in sorted(files.items()):
        path = _inside(root, relative)
        if path is None or not path.is_file() or file_sha256(path) != expected:
            stale.append(relative)
    return tuple(stale)


def _manifest_text(files: Mapping[str, str], *, complete: bool) -> str:
    body = {"format": MANIFEST_FORMAT, "format_version": 1, "fairprompt_version": __version__, "complete": complete,
            "files": dict(sorted(files.items()))}
    return json.dumps(body, indent=2) + "\n"


class RunFolder:
    """An output folder held by this process (see :func:`hold`); writes nothing when not the writer."""

    def __init__(self, path: Path, *, writer: bool) -> None:
        self.path = path
        self.writer = writer

    def write_step(self, contents: Mapping[str, str | bytes], *, keep: Iterable[str] = ()) -> dict[str, Path]:
        """Write ``contents`` (relative path -> text or bytes), each atomically, as one step of the run, with the
        files (or folders) in ``keep`` that are already on disk and belong to it; ``manifest.json`` is written
        first as incomplete, then complete once every file is in place.  PDFs printed from an earlier
        results.json are removed.  Returns the paths written."""
        paths = {name: self.path / name for name in contents}
        if not self.writer:
            return paths
        kept = [f for f in files_under(self.path, keep) if f not in contents and f != MANIFEST_FILE]
        files = {f: file_sha256(self.path / f) for f in kept} | {n: _text_sha256(c) for n, c in contents.items()}
        write_text(self.path / MANIFEST_FILE, _manifest_text(files, complete=False))
        for name in PRINTED:
            if name not in contents:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / name).unlink()
        for name, content in contents.items():
            (write_text if isinstance(content, str) else write_bytes)(paths[name], content)
        write_text(self.path / MANIFEST_FILE, _manifest_text(files, complete=True))
        return paths

    def record(self, names: Iterable[str]) -> None:
        """Enter the files ``names`` (just written, e.g. by ``fairprompt report``) into the manifest, keeping what it
        says of the others; a folder without a manifest (an older fairprompt's) gets none."""
        if not self.writer:
            return
        raw = _read_manifest(self.path)
        if not raw:
            return
        files = _listed(raw) | {n: file_sha256(self.path / n) for n in names if (self.path / n).is_file()}
        write_text(self.path / MANIFEST_FILE, _manifest_text(files, complete=not _stale(self.path, files)))


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in [path, *path.parents]:
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing


def _prepare(path: Path, *, create: bool) -> list[Path]:
    """Check that ``path`` is (or can be made) a writable folder; returns the folders created for it."""
    if path.exists() and not path.is_dir():
        raise FairpromptError(f"the output folder {path} is a file; give --out a folder (new or of an earlier run)")
    created = _missing_ancestors(path)
    if created and not create:
        raise FairpromptError(f"{path} does not exist; run `fairprompt audit` first, or give the folder a run wrote "
                              "(the one that holds results.json)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FairpromptError(f"cannot create the output folder {path} ({exc.strerror or exc}); choose another --out "
                              "or fix the permissions of its parent") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".fairprompt-probe.", suffix=".tmp", dir=path)
    except OSError as exc:
        _remove_empty(created)
        raise FairpromptError(f"the output folder {path} is not writable ({exc.strerror or exc}); fix its permissions "
                              "or choose another folder") from None
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):  # the holder of the lock may have swept it up as a leftover
        os.unlink(probe)
    return created


def _remove_empty(created: list[Path]) -> None:
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f"PID {text}"
    return "PID unknown"


def _lock(path: Path, *, wait_hint: str) -> int:
    """Take the folder's lock; a second holder gets a one-line error naming the first one's PID."""
    lock_path = path / LOCK_FILE
    for _ in range(20):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FairpromptError(f"cannot create {lock_path} ({exc.strerror or exc}); fix the permissions of {path} "
                                  "or choose another folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FairpromptError(f"{path} is in use by another fairprompt run ({holder}); {wait_hint}") from None
            raise FairpromptError(f"cannot lock {lock_path} ({exc.strerror or exc}); choose another folder") from None
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return fd
        os.close(fd)  # the holder removed the file as it let go: lock the new one
    raise FairpromptError(f"cannot lock {lock_path}: it keeps changing; {wait_hint}")


def _unlock(path: Path, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path / LOCK_FILE)  # while still holding it: whoever opened the old file retries (see _lock)
    os.close(fd)


def remove_leftovers(folder: Path) -> list[str]:
    """Remove the temporary files and staging folders of :mod:`fairprompt.atomic` that a dead run left in ``folder``
    (call it only while holding the folder's lock); returns their names."""
    removed = []
    for entry in folder.iterdir():
        if entry.is_symlink():
            continue
        if entry.is_file() and _TEMP_FILE.match(entry.name):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            removed.append(entry.name)
        elif entry.is_dir() and _STAGING_DIR.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return sorted(removed)


@contextlib.contextmanager
def hold(folder: str | os.PathLike[str], *, create: bool = True, writer: bool = True,
         wait_hint: str = "wait for it to finish or choose another --out") -> Iterator[RunFolder]:
    """Hold the output folder ``folder`` for one run (module docstring): check that it can be written (creating it
    when ``create``), lock it, remove a dead run's leftovers; on the way out unlock it, and remove it again when it
    was created here and nothing was written.  ``writer=False`` (a non-main process) does none of this."""
    path = Path(folder)
    if not writer:
        yield RunFolder(path, writer=False)
        return
    created = _prepare(path, create=create)
    try:
        fd = _lock(path, wait_hint=wait_hint)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        remove_leftovers(path)
        yield RunFolder(path, writer=True)
    finally:
        _unlock(path, fd)
        _remove_empty(created)


__all__ = ["LOCK_FILE", "MANIFEST_FILE", "PRINTED", "RunFolder", "Verification", "files_under", "hold",
           "remove_leftovers", "verify"]
