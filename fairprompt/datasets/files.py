"""Reading users' tables (CSV, gzipped CSV, Parquet) with errors a person can act on.

:func:`read_table` is the one reader for users' data and prediction files;
every failure raises :class:`~fairprompt.errors.FairpromptError` with one
sentence naming the file and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from fairprompt.errors import FairpromptError

#: File name endings :func:`read_table` understands, lower-case.
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES

_CHUNK = 1 << 20


def file_kind(path: Path) -> str | None:
    """``"csv"`` or ``"parquet"`` by the file name's ending, or None for any other file."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _require_file(path: Path) -> None:
    if not path.exists():
        raise FairpromptError(f"file '{path}' does not exist; check the path (relative paths start from '{Path.cwd()}')")
    if not path.is_file():
        raise FairpromptError(f"'{path}' is a directory, not a file; give the path of a .csv, .csv.gz or .parquet file")


def error_reason(exc: BaseException) -> str:
    """The first line of an exception's message, shortened, for a one-line error."""
    text = str(exc).strip().splitlines()
    first = text[0].strip() if text else type(exc).__name__
    first = first.rstrip(".")
    return first if len(first) <= 160 else first[:157] + "..."


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (as recorded in results.json and PROVENANCE.md)."""
    p = Path(path)
    _require_file(p)
    digest = hashlib.sha256()
    try:
        with p.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise FairpromptError(f"could not read '{p}' ({error_reason(exc)}); check that the file is readable") from None
    return digest.hexdigest()


@contextmanager
def csv_errors(path: Path) -> Iterator[None]:
    """Turn pandas' failures while reading ``path`` as CSV (whole, or in chunks inside the block) into one-line
    errors naming the file and the fix."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise FairpromptError(f"file '{path}' is empty; give a table with a header row and at least one data row") from None
    except (gzip.BadGzipFile, zlib.error, EOFError):
        raise FairpromptError(
            f"file '{path}' is not a valid, complete gzip file; compress it again with gzip or save it as plain .csv"
        ) from None
    except UnicodeDecodeError:
        raise FairpromptError(f"file '{path}' is not UTF-8 text; save it again as comma-separated UTF-8 CSV") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise FairpromptError(
            f"could not read '{path}' as CSV ({error_reason(exc)}); fix the file or save it again as comma-separated UTF-8 text"
        ) from None


def check_table_shape(path: Path, frame: pd.DataFrame, *, csv: bool) -> None:
    """A table read from ``path`` (its first rows will do) has columns and rows, and a CSV one is comma-separated."""
    if frame.shape[1] == 0:
        raise FairpromptError(f"file '{path}' has no columns; give a table with a header row and at least one data row")
    if frame.shape[0] == 0:
        raise FairpromptError(f"file '{path}' has a header but no data rows; give a table with at least one data row")
    if csv and frame.shape[1] == 1:
        header = str(frame.columns[0])
        for sep, word in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in header:
                raise FairpromptError(
                    f"file '{path}' looks {word}-separated (header {header[:60]!r}); save it again with commas as separators"
                )


def _read_csv(path: Path) -> pd.DataFrame:
    with csv_errors(path):
        return pd.read_csv(path, low_memory=False)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401  (the engine; a clear error if it is missing)
    except ImportError:
        raise FairpromptError(f"reading '{path}' needs pyarrow; install it with 'pip install pyarrow' "
                              "or give a CSV file") from None
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except (ValueError, OSError, TypeError) as exc:  # pyarrow.ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise FairpromptError(
            f"could not read '{path}' as Parquet ({error_reason(exc)}); "
            "fix the file or write it again with pandas.DataFrame.to_parquet"
        ) from None


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a .csv, .csv.gz, .parquet or .pq file into a DataFrame with a fresh 0..n-1 index.

    Raises :class:`FairpromptError` when the file is missing, has another
    extension, cannot be parsed, or holds no rows or no columns.
    """
    p = Path(path)
    kind = file_kind(p)
    _require_file(p)
    if kind is None:
        suffix = "".join(p.suffixes[-2:]) or "no extension"
        raise FairpromptError(
            f"file '{p}' has an unsupported type ({suffix}); give a .csv, .csv.gz, .parquet or .pq file"
        )
    frame = _read_csv(p) if kind == "csv" else _read_parquet(p)
    check_table_shape(p, frame, csv=kind == "csv")
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True)
