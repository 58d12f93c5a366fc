"""Data sets: the embedded benchmarks and users' files, each as a frame plus roles.

>>> from fairprompt import datasets
>>> ds = datasets.load("adult")
>>> ds.label, ds.favourable_label, ds.sensitive
('income-per-year', '>50K', ('sex', 'race'))

Embedded names (offline, vendored with ``data/PROVENANCE.md``):

- ``adult``: UCI Adult; label ``income-per-year``, favourable ``">50K"``;
  sensitive ``sex``, ``race``.  ``?`` is read as missing.
- ``compas``: ProPublica COMPAS two-year recidivism; label ``two_year_recid``
  where **1 = re-offended within two years**; the favourable outcome for the
  defendant is **0 (did not re-offend)**, so ``favourable_label == 0`` and
  ``Dataset.y`` is 1 for defendants who did *not* re-offend.  Sensitive
  ``race``, ``sex``, ``age_cat``.  ProPublica's filter is applied by default.
- ``compas_violent``: the same for violent re-offence (``two_year_recid`` in
  that file, 1 = violent re-offence within two years; favourable 0).
- ``german``: UCI Statlog German Credit; label ``credit`` (1 good, favourable;
  2 bad); derived sensitive ``sex`` and ``age_group``.

Generated names (built by a seeded generator; ``options`` are its keywords):

- ``identity_toxicity``: template comments naming identity terms; label
  ``toxic`` (1 toxic), favourable **0**, so a toxicity classifier's classic
  false positive rate is reported as the false negative rate; sensitive
  ``identity``, ``identity_category``.  ``load("identity_toxicity",
  options={"spurious": 0.9, "seed": 1})``; see
  :mod:`fairprompt.datasets.identity_toxicity`.

Anything else is a path to a .csv, .csv.gz, .parquet or .pq file.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairprompt.datasets.embedded import EMBEDDED, GENERATED, DatasetInfo, available, frame_sha256
from fairprompt.datasets.files import SUPPORTED_SUFFIXES, read_table, sha256_file
from fairprompt.errors import FairpromptError, did_you_mean

__all__ = [
    "Dataset", "DatasetInfo", "GENERATED_NAMES", "NAMES", "available", "frame_sha256", "load", "read_table",
    "sha256_file",
]

#: The embedded (vendored file) data set names.
NAMES: tuple[str, ...] = tuple(sorted(EMBEDDED))
#: The generated data set names.
GENERATED_NAMES: tuple[str, ...] = tuple(sorted(GENERATED))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A table and the roles of its columns.

    ``label`` is None for files that hold no true outcome (predictions only);
    ``favourable_label`` is the raw label value counted as the favourable
    (positive) outcome, or None when the label is already 0/1.  ``source`` is
    the file path, ``"embedded:NAME"`` or ``"generated:NAME"``; ``sha256`` is
    that of the file's bytes, or of a generated frame's canonical CSV bytes
    (:func:`frame_sha256`).
    """

    name: str
    frame: pd.DataFrame
    label: str | None
    favourable_label: Any
    sensitive: tuple[str, ...]
    source: str
    sha256: str
    description: str = ""
    notes: str = ""

    @property
    def y(self) -> np.ndarray:
        """The label as 0/1 ints, 1 where it equals ``favourable_label`` (the favourable outcome)."""
        if self.label is None:
            raise FairpromptError(f"data set {self.name!r} has no label column; pass label=... to datasets.load")
        values = self.frame[self.label]
        if values.isna().any():
            raise FairpromptError(
                f"label column {self.label!r} of {self.name!r} has {int(values.isna().sum())} missing values; "
                "drop or fill those rows"
            )
        if self.favourable_label is None:
            uniques = set(pd.unique(values).tolist())
            if uniques <= {0, 1} or uniques <= {False, True}:
                return values.to_numpy().astype(np.int64)
            raise FairpromptError(
                f"label column {self.label!r} of {self.name!r} is not 0/1; pass favourable_label=... to datasets.load"
            )
        matches = values == self.favourable_label
        if not matches.any():
            matches = values.astype(str) == str(self.favourable_label)
        return matches.to_numpy(dtype=bool).astype(np.int64)


def _as_python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _favourable(frame: pd.DataFrame, label: str, favourable: Any, where: str) -> Any:
    """The label's own value equal to ``favourable`` (so "1" from a YAML file matches an int column)."""
    values = frame[label].dropna()
    present = list(pd.unique(values))
    for value in present:
        if value == favourable:
            return _as_python(value)
    for value in present:
        if str(value) == str(favourable):
            return _as_python(value)
    shown = ", ".join(repr(_as_python(v)) for v in present[:6]) + (", ..." if len(present) > 6 else "")
    raise FairpromptError(
        f"favourable label {favourable!r} does not occur in label column {label!r} of {where} "
        f"(values: {shown}); set favourable_label to one of them"
    )


def _check_roles(
    frame: pd.DataFrame, *, label: str | None, favourable: Any, sensitive: tuple[str, ...], where: str
) -> Any:
    columns = [str(c) for c in frame.columns]
    if label is not None and label not in frame.columns:
        raise FairpromptError(f"{where} has no label column {label!r}{did_you_mean(label, columns)}")
    for column in sensitive:
        if column not in frame.columns:
            raise FairpromptError(f"{where} has no sensitive column {column!r}{did_you_mean(column, columns)}")
    if label is not None and label in sensitive:
        raise FairpromptError(f"column {label!r} of {where} is both the label and a sensitive column; "
                              "choose different sensitive columns")
    if favourable is None:
        return None
    if label is None:
        raise FairpromptError(f"favourable_label {favourable!r} was given for {where} without a label column; pass label=... too")
    return _favourable(frame, label, favourable, where)


def _sensitive_tuple(sensitive: str | Sequence[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if sensitive is None:
        return default
    names = (sensitive,) if isinstance(sensitive, str) else tuple(str(s) for s in sensitive)
    return tuple(dict.fromkeys(names))


def _load_embedded(
    name: str, *, label: str | None, favourable_label: Any, sensitive: str | Sequence[str] | None,
    verify: bool, compas_filter: bool,
) -> Dataset:
    entry = EMBEDDED[name]
    info = entry.info
    path = entry.path
    if not path.is_file():
        raise FairpromptError(f"the embedded data file '{path}' for {name!r} is missing; reinstall fairprompt")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if verify and digest != info.sha256:
        raise FairpromptError(
            f"the embedded data file '{path}' has sha256 {digest}, not the {info.sha256} recorded in PROVENANCE.md; "
            "reinstall fairprompt to restore it"
        )
    frame, notes = entry.reader(raw, compas_filter=compas_filter)
    chosen_label = info.label if label is None else label
    if favourable_label is None and chosen_label == info.label:
        favourable_label = info.favourable_label
    roles = _sensitive_tuple(sensitive, tuple(c for c in info.sensitive if c != chosen_label))
    where = f"embedded data set {name!r}"
    favourable = _check_roles(frame, label=chosen_label, favourable=favourable_label, sensitive=roles, where=where)
    return Dataset(
        name=name, frame=frame, label=chosen_label, favourable_label=favourable, sensitive=roles,
        source=f"embedded:{name}", sha256=digest, description=info.description, notes=notes,
    )


def _load_generated(
    name: str, *, label: str | None, favourable_label: Any, sensitive: str | Sequence[str] | None,
    options: Mapping[str, Any],
) -> Dataset:
    entry = GENERATED[name]
    info = entry.info
    known = entry.option_names()
    for key in options:
        if key not in known:
            raise FairpromptError(
                f"unknown option {str(key)!r} for generated data set {name!r}{did_you_mean(str(key), known)}"
            )
    frame = entry.generator(**options)
    chosen_label = info.label if label is None else label
    if favourable_label is None and chosen_label == info.label:
        favourable_label = info.favourable_label
    roles = _sensitive_tuple(sensitive, tuple(c for c in info.sensitive if c != chosen_label))
    where = f"generated data set {name!r}"
    favourable = _check_roles(frame, label=chosen_label, favourable=favourable_label, sensitive=roles, where=where)
    defaults = {
        key: p.default for key, p in inspect.signature(entry.generator).parameters.items() if key in known
    }
    used = ", ".join(f"{key}={options.get(key, defaults[key])!r}" for key in known)
    return Dataset(
        name=name, frame=frame, label=chosen_label, favourable_label=favourable, sensitive=roles,
        source=f"generated:{name}", sha256=entry.digest(frame), description=info.description,
        notes=f"generated by {entry.module}.{entry.function}({used})",
    )


def _stem(path: Path) -> str:
    lowered = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return path.name[: -len(suffix)] or path.name
    return path.stem


def load(
    name_or_path: str | os.PathLike[str],
    *,
    label: str | None = None,
    favourable_label: Any = None,
    sensitive: str | Sequence[str] | None = None,
    verify: bool = True,
    compas_filter: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Dataset:
    """Load an embedded or generated data set by name, or a user's .csv, .csv.gz, .parquet or .pq file.

    For embedded sets ``label``, ``favourable_label`` and ``sensitive`` override
    the documented roles (a different ``label`` drops the default favourable
    label, and a default sensitive column chosen as the label leaves the
    sensitive set).  For files they are optional: no label (predictions only), no
    favourable label (label already 0/1), no sensitive columns.

    ``verify`` checks the embedded file's sha256 against the one recorded in
    PROVENANCE.md (files of users have no recorded checksum; their sha256 is
    reported in ``Dataset.sha256``).  ``compas_filter`` (compas and
    compas_violent only; ignored otherwise) applies ProPublica's published
    filter: days_b_screening_arrest within +-30, is_recid != -1,
    c_charge_degree != 'O' and a COMPAS score present (score_text for compas,
    v_score_text for compas_violent).  It keeps compas 6,172 of 7,214 rows and
    compas_violent 4,020 of 4,743.

    ``options`` (generated data sets only) are keyword arguments of the
    generator, e.g. ``{"spurious": 0.9, "seed": 1}`` for ``identity_toxicity``
    (see :func:`fairprompt.datasets.identity_toxicity.generate`); omitted
    options keep their defaults and ``Dataset.notes`` records all of them.

    Raises :class:`FairpromptError` for an unknown name, a missing, unsupported,
    malformed or empty file, a missing label or sensitive column, a
    favourable label that does not occur in the label column, or an unknown or
    invalid option (or options given for a data set that is not generated).
    """
    if isinstance(name_or_path, str) and name_or_path in GENERATED:
        return _load_generated(
            name_or_path, label=label, favourable_label=favourable_label, sensitive=sensitive,
            options=dict(options or {}),
        )
    if options:
        raise FairpromptError(
            f"options {sorted(str(k) for k in options)} were given for {str(name_or_path)!r}, which is not a "
            f"generated data set; drop them (generated sets: {', '.join(GENERATED_NAMES)})"
        )
    if isinstance(name_or_path, str) and name_or_path in EMBEDDED:
        return _load_embedded(
            name_or_path, label=label, favourable_label=favourable_label, sensitive=sensitive,
            verify=verify, compas_filter=compas_filter,
        )
    path = Path(name_or_path)
    text = str(name_or_path)
    if not path.exists() and not path.suffix and os.sep not in text and "/" not in text:
        raise FairpromptError(
            f"{text!r} is neither an embedded data set nor an existing file"
            f"{did_you_mean(text, NAMES + GENERATED_NAMES)}"
        )
    frame = read_table(path)
    roles = _sensitive_tuple(sensitive, ())
    where = f"file '{path}'"
    favourable = _check_roles(frame, label=label, favourable=favourable_label, sensitive=roles, where=where)
    return Dataset(
        name=_stem(path), frame=frame, label=label, favourable_label=favourable, sensitive=roles,
        source=str(path), sha256=sha256_file(path), description=f"user file {path.name}", notes="",
    )
