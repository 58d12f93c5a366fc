"""Checks on the data that every repair of a group gap makes before any model is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from fairprompt.errors import FairpromptError

if TYPE_CHECKING:
    from fairprompt.tasks import ImageTask, TextTask


def check_validation_groups(task: TextTask | ImageTask, group: str, *, measure: str, key: str) -> None:
    """The validation rows must give the fairness gap a meaning: no missing group, two groups or more,
    and (equal opportunity, equalized odds) every group with favourable (and unfavourable) rows."""
    values = task.dataset.frame[group].iloc[task.splits.validation]
    where = f"the validation split ({values.size} rows) of {task.dataset.source}"
    if values.isna().any():
        raise FairpromptError(f"sensitive column {group!r} has {int(values.isna().sum())} missing values in {where}; "
                              f"{key} needs a group for every validation row: fill them, or choose another group")
    present = pd.unique(values.astype(str))
    if present.size < 2:
        raise FairpromptError(f"{where} has a single {group!r} group ({present[0]!r}); {key} needs two groups or more: "
                              "use a larger validation split, or another group")
    labels = task.y[task.splits.validation]
    needed = {"demographic_parity": (), "equal_opportunity": (1,), "equalized_odds": (1, 0)}[measure]
    for label in needed:
        have = set(values[labels == label].astype(str))
        lacking = [g for g in present if g not in have]
        if lacking:
            what = "favourable" if label == 1 else "unfavourable"
            raise FairpromptError(f"{group!r} group {lacking[0]!r} has no {what} rows in {where}, so {measure} is "
                                  f"undefined for {key}; use a larger validation split or measure demographic_parity")


__all__ = ["check_validation_groups"]
