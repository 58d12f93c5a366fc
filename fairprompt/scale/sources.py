"""Predictions files of any size, read batch by batch: CSV, gzipped CSV, Parquet, a directory or a glob of Parquet.

:func:`resolve_files` turns what the user gave into a list of files of one kind and checks, before a row is read,
that every file has the columns the audit needs with one type per column across files.  :func:`batches` then yields
``(file, first row, batch)`` with only those columns (pyarrow: a Parquet file's row groups, or a streaming CSV
reader), so memory holds one batch at a time.  Every failure is a :class:`~fairprompt.errors.FairpromptError` naming
the file and the fix.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fairprompt.datasets.files import check_table_shape, csv_errors, error_reason, file_kind
from fairprompt.errors import FairpromptError, did_you_mean

BATCH_ROWS = 1 << 20
"""Rows per batch read from a Parquet file (a CSV reader's blocks hold about as many bytes as this many rows)."""

CSV_CHUNK_ROWS = 1 << 19
"""Rows per chunk read from a CSV file (pandas' reader, as for every user's table)."""


@dataclass(frozen=True)
class Sources:
    """The files to read, their kind, and what the user gave."""

    given: str
    files: tuple[Path, ...]
    kind: str  # "csv" or "parquet"


def resolve_files(given: str | Path) -> Sources:
    """The files behind a path: one CSV / gzipped CSV / Parquet file, a directory of Parquet files (searched
    recursively), or a glob pattern (``data/part-*.parquet``)."""
    text = str(given)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and file_kind(p) == "parquet")
        if not files:
            raise FairpromptError(f"directory '{path}' holds no .parquet or .pq files; give a directory of Parquet "
                                  "files, a glob such as 'dir/*.parquet', or one file")
    elif path.is_file():
        files = [path]
    elif glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise FairpromptError(f"glob '{text}' matches no file; check the pattern (relative paths start from "
                                  f"'{Path.cwd()}')")
    else:
        raise FairpromptError(f"file '{path}' does not exist; check the path (relative paths start from '{Path.cwd()}')")
    kinds = {p: file_kind(p) for p in files}
    unknown = [p for p, k in kinds.items() if k is None]
    if unknown:
        raise FairpromptError(f"file '{unknown[0]}' has an unsupported type; give .csv, .csv.gz, .parquet or .pq files")
    if len(set(kinds.values())) > 1:
        raise FairpromptError(f"'{text}' mixes CSV and Parquet files ({files[0].name}, ...); give files of one kind")
    kind = next(iter(kinds.values()))
    if kind == "csv" and len(files) > 1:
        raise FairpromptError(f"'{text}' matches {len(files)} CSV files; give one CSV file, or Parquet files for a "
                              "directory or glob")
    return Sources(given=text, files=tuple(files), kind=str(kind))


def _schema(path: Path, kind: str, columns: Sequence[str]) -> pa.Schema:
    if kind == "parquet":
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise FairpromptError(f"could not read '{path}' as Parquet ({error_reason(exc)}); fix the file or write it "
                                  "again with pandas.DataFrame.to_parquet") from None
    else:
        head = _csv_header(path)
        schema = pa.schema([pa.field(str(c), pa.null()) for c in head.columns])
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise FairpromptError(f"file '{path}' has no column {missing[0]!r}{did_you_mean(missing[0], schema.names)}; "
                              "every file must hold the columns the audit names")
    return pa.schema([schema.field(c) for c in columns])


def _csv_header(path: Path) -> pd.DataFrame:
    """The first rows of a CSV file, with the in-memory reader's checks (rows, columns, separator)."""
    chunk = next(_csv_chunks(path, None, rows=100), None)
    if chunk is None:  # a header and no row: the chunked reader yields nothing
        raise FairpromptError(f"file '{path}' has a header but no data rows; give a table with at least one data row")
    check_table_shape(path, chunk, csv=True)
    return chunk


def check_schemas(sources: Sources, columns: Sequence[str]) -> pa.Schema:
    """The needed columns' schema, the same in every file (else an error naming the first file that differs)."""
    first = _schema(sources.files[0], sources.kind, columns)
    for path in sources.files[1:]:
        other = _schema(path, sources.kind, columns)
        for field in first:
            theirs = other.field(field.name)
            if theirs.type != field.type:
                raise FairpromptError(
                    f"file '{path}' stores column {field.name!r} as {theirs.type}, but '{sources.files[0]}' as "
                    f"{field.type}; write every file of '{sources.given}' with the same schema")
    return first


Batch = dict[str, "pa.Array | pd.Series"]
"""One batch: column name -> values (Arrow arrays from Parquet, pandas series from CSV)."""


def _csv_chunks(path: Path, columns: Sequence[str] | None, *, rows: int = CSV_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A CSV file in chunks, read as :func:`fairprompt.datasets.read_table` reads it (same errors, same types)."""
    with csv_errors(path):
        yield from pd.read_csv(path, usecols=None if columns is None else list(columns), chunksize=rows,
                               low_memory=False)


def batches(sources: Sources, columns: Sequence[str]) -> Iterator[tuple[Path, int, int, Batch]]:
    """``(file, index of the batch's first row in that file, rows, columns)``, one batch at a time."""
    for path in sources.files:
        start = 0
        if sources.kind == "parquet":
            try:
                parquet = pq.ParquetFile(path)
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(columns)):
                    yield path, start, batch.num_rows, {name: batch.column(name) for name in columns}
                    start += batch.num_rows
            except (pa.ArrowInvalid, OSError) as exc:
                raise FairpromptError(f"could not read '{path}' as Parquet after row {start:,} ({error_reason(exc)}); fix "
                                      "the file or write it again") from None
        else:
            for chunk in _csv_chunks(path, columns):
                yield path, start, len(chunk), {name: chunk[name].reset_index(drop=True) for name in columns}
                start += len(chunk)
