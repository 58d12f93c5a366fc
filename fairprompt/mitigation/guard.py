"""The one-class guard every repair's grid shares: a grid point whose decisions on the selection rows predict one
class is marked and never chosen.

"One class" is the decision part of the degenerate-model check (:mod:`fairprompt.metrics.degenerate`, reasons
``constant`` and ``constant_in_group``): every row gets the same decision, or one group of the repaired column
with at least :data:`~fairprompt.metrics.degenerate.MIN_GROUP_ROWS` rows and both labels present gets one
decision for at least :data:`~fairprompt.metrics.degenerate.MAX_DECISION_SHARE` of its rows.  The rule itself
lives there; this module only applies it to a grid point's decisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairprompt.metrics.counts import CountTable
from fairprompt.metrics.degenerate import assess_degeneracy

ONE_CLASS_CODES: frozenset[str] = frozenset({"constant", "constant_in_group"})
"""The degenerate-model reasons that make a grid point one-class (accuracy against the majority class is not one)."""


def one_class_reason(*, y_true: Any, y_pred: Any, groups: Any, column: str) -> str | None:
    """Why the 0/1 decisions ``y_pred`` (labels ``y_true``, groups ``groups`` of the sensitive ``column``)
    predict one class, in words; None when they do not."""
    y = np.asarray(y_true).astype(np.int8).reshape(-1)
    pred = np.asarray(y_pred).astype(np.int8).reshape(-1)
    table = CountTable.from_arrays(y_true=y, y_pred=pred,
                                   sensitive=pd.DataFrame({column: np.asarray(groups, dtype=object).reshape(-1)}))
    reasons = [r.message for r in assess_degeneracy(table).reasons if r.code in ONE_CLASS_CODES]
    return "; ".join(reasons) or None


__all__ = ["ONE_CLASS_CODES", "one_class_reason"]
