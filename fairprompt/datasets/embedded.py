"""The embedded (vendored, offline) benchmark data sets and their readers.

Each data set is a gzipped CSV in ``fairprompt/datasets/data`` whose source,
licence and sha256 are recorded in ``data/PROVENANCE.md`` and in
:data:`EMBEDDED` below.  A reader turns the raw file bytes into the frame that
:func:`fairprompt.datasets.load` returns, plus a note of what it changed.

Row counts (measured on the vendored files):

- ``adult``: 32,561 rows x 15 columns; 7,841 ``>50K``.  ``?`` (4,262 cells in
  ``workclass``, ``occupation``, ``native-country``) becomes missing.
- ``german``: 1,000 rows x 23 columns (21 raw + derived ``sex``, ``age_group``);
  700 good (``credit`` = 1), 300 bad (2).
- ``compas``: 7,214 raw rows; ProPublica's filter keeps 6,172 (3,363 did not
  re-offend, 2,809 did).  48 columns after dropping the duplicated
  ``decile_score`` and ``priors_count``.
- ``compas_violent``: 4,743 raw rows; ProPublica's filter keeps 4,020 (3,368
  no violent re-offence, 652 violent re-offence).  48 columns after dropping
  the duplicated ``decile_score``, ``priors_count`` and ``two_year_recid``.

Generated data sets (:data:`GENERATED`) have no file: a registered, seeded,
keyword-only generator builds the frame, and the entry records the roles and the
default frame's shape and sha256 (of its canonical CSV bytes, see
:func:`frame_sha256`).  ``available()`` lists both kinds.

- ``identity_toxicity``: template comments naming identity terms, toxic or not,
  with a spurious identity-toxicity correlation in train/validation and a
  balanced test split of disjoint templates; see
  :mod:`fairprompt.datasets.identity_toxicity`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError

#: Directory of the vendored files.
DATA_DIR = Path(str(resources.files("fairprompt.datasets") / "data"))


@dataclass(frozen=True)
class DatasetInfo:
    """What ``fairprompt datasets list`` shows about one embedded data set (default load)."""

    name: str
    rows: int
    columns: int
    label: str
    favourable_label: Any
    sensitive: tuple[str, ...]
    description: str
    licence: str
    file: str
    sha256: str
    kind: Literal["embedded", "generated"] = "embedded"


@dataclass(frozen=True)
class Embedded:
    """Registry entry: the vendored file, its checksum, roles and reader."""

    info: DatasetInfo
    reader: Callable[..., tuple[pd.DataFrame, str]]

    @property
    def path(self) -> Path:
        return DATA_DIR / self.info.file


# --------------------------------------------------------------------------- readers


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]


def _read_adult(raw: bytes, **_: Any) -> tuple[pd.DataFrame, str]:
    frame = pd.read_csv(io.BytesIO(raw), compression="gzip", keep_default_na=False, na_values=["?"], skipinitialspace=True)
    for column in _text_columns(frame):
        text = frame[column].str.strip()
        frame[column] = text.mask(text == "?")  # a '?' with spaces around it, should one survive the reader
    missing = int(frame.isna().sum().sum())
    return frame, f"'?' read as missing ({missing:,} cells); surrounding whitespace stripped from text columns"


_GERMAN_SEX = {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}


def _read_german(raw: bytes, **_: Any) -> tuple[pd.DataFrame, str]:
    frame = pd.read_csv(io.BytesIO(raw), compression="gzip")
    unknown = sorted(set(frame["personal_status"].astype(str)) - set(_GERMAN_SEX))
    if unknown:  # pragma: no cover - only a changed vendored file could get here
        raise FairpromptError(f"embedded german data has unknown personal_status codes {unknown}; reinstall fairprompt")
    frame["sex"] = frame["personal_status"].map(_GERMAN_SEX)
    frame["age_group"] = np.where(frame["age"] >= 25, "25 and over", "under 25")
    return frame, (
        "sex derived from personal_status (A91, A93, A94 male; A92, A95 female); "
        "age_group derived from age ('25 and over' / 'under 25'); credit 1 = good (favourable), 2 = bad"
    )


def _drop_identical_duplicates(frame: pd.DataFrame, raw_header: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Drop the ``name.1`` copies pandas makes of repeated header names when they equal the first copy."""
    dropped = []
    for name in sorted({c for c in raw_header if raw_header.count(c) > 1}):
        copy = f"{name}.1"
        if copy in frame.columns and frame[copy].equals(frame[name]):
            frame = frame.drop(columns=copy)
            dropped.append(name)
    return frame, dropped


def _compas_reader(score_column: str) -> Callable[..., tuple[pd.DataFrame, str]]:
    def read(raw: bytes, *, compas_filter: bool = True, **_: Any) -> tuple[pd.DataFrame, str]:
        frame = pd.read_csv(io.BytesIO(raw), compression="gzip", keep_default_na=False, na_values=["", "N/A"])
        with gzip.open(io.BytesIO(raw), "rt", encoding="utf-8") as handle:
            header = handle.readline().rstrip("\r\n").split(",")
        frame, dropped = _drop_identical_duplicates(frame, header)
        notes = [f"duplicated columns dropped (identical copies): {', '.join(dropped)}"] if dropped else []
        notes.append("'N/A' read as missing")
        before = len(frame)
        if compas_filter:
            keep = (
                frame["days_b_screening_arrest"].between(-30, 30)
                & (frame["is_recid"] != -1)
                & (frame["c_charge_degree"] != "O")
                & frame[score_column].notna()
            )
            frame = frame.loc[keep].reset_index(drop=True)
            notes.insert(0, (
                f"ProPublica's filter applied (days_b_screening_arrest within +-30, is_recid != -1, "
                f"c_charge_degree != 'O', {score_column} != 'N/A'): {before:,} -> {len(frame):,} rows"
            ))
        else:
            notes.insert(0, f"ProPublica's filter not applied (compas_filter=False): all {before:,} rows")
        return frame, "; ".join(notes)

    return read


# --------------------------------------------------------------------------- registry

_UCI = "CC BY 4.0"
_PROPUBLICA = "as published by ProPublica (compas-analysis repository)"

EMBEDDED: dict[str, Embedded] = {
    "adult": Embedded(
        DatasetInfo(
            name="adult", rows=32_561, columns=15, label="income-per-year", favourable_label=">50K",
            sensitive=("sex", "race"),
            description="UCI Adult, 1994 US census extract: does income exceed $50K a year (>50K favourable)",
            licence=_UCI, file="adult.csv.gz",
            sha256="937b0d95ef69b33d76bd4280560d8e96eaadad5dda870b2cf32401029ac64ec4",
        ),
        _read_adult,
    ),
    "compas": Embedded(
        DatasetInfo(
            name="compas", rows=6_172, columns=48, label="two_year_recid", favourable_label=0,
            sensitive=("race", "sex", "age_cat"),
            description=(
                "ProPublica COMPAS, Broward County: re-offence within two years "
                "(two_year_recid 1 = re-offended; 0, no re-offence, is favourable)"
            ),
            licence=_PROPUBLICA, file="propublica-recidivism.csv.gz",
            sha256="9d6238f0340adcf6a53d2d5889444d7bbe2867c5fbb3a0ed49cebde05748ba70",
        ),
        _compas_reader("score_text"),
    ),
    "compas_violent": Embedded(
        DatasetInfo(
            name="compas_violent", rows=4_020, columns=48, label="two_year_recid", favourable_label=0,
            sensitive=("race", "sex", "age_cat"),
            description=(
                "ProPublica COMPAS, Broward County: violent re-offence within two years "
                "(two_year_recid 1 = violent re-offence; 0 is favourable)"
            ),
            licence=_PROPUBLICA, file="propublica-violent-recidivism.csv.gz",
            sha256="c185bb8f993dbf42660dbe41389e0975ec3e11b72f652b334b2419e841837ae0",
        ),
        _compas_reader("v_score_text"),
    ),
    "german": Embedded(
        DatasetInfo(
            name="german", rows=1_000, columns=23, label="credit", favourable_label=1,
            sensitive=("sex", "age_group"),
            description="UCI Statlog German Credit: credit risk (credit 1 = good, favourable; 2 = bad)",
            licence=_UCI, file="german.csv.gz",
            sha256="079d5afe95b517b19cfbb59aa1c277ad40b2b27452949d858b01382ac0c92967",
        ),
        _read_german,
    ),
}


# --------------------------------------------------------------------------- generated data sets


def frame_sha256(frame: pd.DataFrame) -> str:
    """The sha256 of a frame's canonical CSV bytes (UTF-8, no index, ``\\n`` line ends)."""
    return hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Generated:
    """Registry entry of a generated data set: its roles and where its generator lives.

    ``module``.``function`` is a keyword-only function returning the frame
    (imported only when the set is loaded, so heavy dependencies stay lazy);
    its keyword parameters are the options ``datasets.load(name, options=...)``
    accepts.  ``info.rows``, ``info.columns`` and ``info.sha256`` describe the
    frame made with the default options; ``digest`` computes ``Dataset.sha256``
    from a frame (a set whose frame holds arrays can register its own).
    """

    info: DatasetInfo
    module: str
    function: str = "generate"
    digest: Callable[[pd.DataFrame], str] = frame_sha256

    @property
    def generator(self) -> Callable[..., pd.DataFrame]:
        return getattr(importlib.import_module(self.module), self.function)

    def option_names(self) -> tuple[str, ...]:
        """The generator's keyword options, in signature order."""
        parameters = inspect.signature(self.generator).parameters.values()
        return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


GENERATED: dict[str, Generated] = {
    "identity_toxicity": Generated(
        DatasetInfo(
            name="identity_toxicity", rows=7_176, columns=8, label="toxic", favourable_label=0,
            sensitive=("identity", "identity_category"),
            description=(
                "generated comments naming identity terms (Dixon et al. 2018 style): toxic 1/0 (0 favourable); "
                "spurious identity-toxicity link in train/validation, balanced test (and optional final) of unseen templates"
            ),
            licence="generated by fairprompt (no third-party data)", file="",
            sha256="4e5615b847ae367523a9a63bbc28e57b06d79cfbbe081e7b36e47ddff27d5575",
            kind="generated",
        ),
        module="fairprompt.datasets.identity_toxicity",
    ),
    "colored_digits": Generated(
        DatasetInfo(
            name="colored_digits", rows=1_797, columns=5, label="label", favourable_label=1, sensitive=("group",),
            description=(
                "scikit-learn's 8x8 digits upsampled to 32x32 and tinted by group; label 1 = digit >= 5 (favourable); "
                "tint follows the label in train (correlation 0.9), independent of it in validation/test/final"
            ),
            licence="generated by fairprompt from scikit-learn's bundled digits (UCI, CC BY 4.0)", file="",
            sha256="77eebc647ae158f64bbf74f7275c8115ffa0846d028acca73a1e3b71cd5c4278",
            kind="generated",
        ),
        module="fairprompt.datasets.colored_digits", function="generate_frame",
    ),
}


def available() -> list[DatasetInfo]:
    """The embedded and generated data sets, by name, with their default-load shape, roles and licence."""
    infos = {name: entry.info for name, entry in EMBEDDED.items()} | {name: g.info for name, g in GENERATED.items()}
    return [infos[name] for name in sorted(infos)]
