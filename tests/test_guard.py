"""The one-class guard of the repairs' grids: a grid point's decisions predict one class by the decision rule of the
degenerate-model check (every row one decision, or 99% of a group of 20 rows or more with both labels present)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairprompt.metrics.counts import CountTable
from fairprompt.metrics.degenerate import assess_degeneracy
from fairprompt.mitigation.guard import one_class_reason


def _rows(decide_a: np.ndarray, *, size_a: int = 40, size_b: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group a (decisions ``decide_a``) and group b (half of each decision); labels alternate in both groups."""
    groups = np.array(["a"] * size_a + ["b"] * size_b, dtype=object)
    y = np.arange(size_a + size_b) % 2
    pred = np.concatenate([decide_a, np.arange(size_b) % 2 == 0]).astype(int)
    return y, pred, groups


def test_constant_decisions_are_one_class() -> None:
    y, _, groups = _rows(np.ones(40))
    reason = one_class_reason(y_true=y, y_pred=np.zeros_like(y), groups=groups, column="sex")
    assert reason == "every one of the 80 audited rows gets the negative decision"


def test_a_group_with_one_decision_is_one_class_and_named_by_column_and_value() -> None:
    y, pred, groups = _rows(np.ones(40))
    reason = one_class_reason(y_true=y, y_pred=pred, groups=groups, column="sex")
    assert reason is not None and reason.startswith("sex = a: 100.0% of its 40 rows get the positive decision")
    # the same rule as the audit's degenerate check: its two decision reasons, and only those
    table = CountTable.from_arrays(y_true=y, y_pred=pred, sensitive=pd.DataFrame({"sex": groups}))
    assert [r.message for r in assess_degeneracy(table).reasons if r.code == "constant_in_group"] == [reason]


def test_below_the_rule_is_not_one_class() -> None:
    # 39 of 40 rows of group a (97.5%) get one decision: below 99%
    y, pred, groups = _rows(np.r_[np.ones(39), 0])
    assert one_class_reason(y_true=y, y_pred=pred, groups=groups, column="sex") is None
    # a group of 19 rows with one decision: too small to judge
    y, pred, groups = _rows(np.ones(19), size_a=19)
    assert one_class_reason(y_true=y, y_pred=pred, groups=groups, column="sex") is None
    # a group whose rows all have one label may fairly get one decision
    y, pred, groups = _rows(np.ones(40))
    y[:40] = 1
    assert one_class_reason(y_true=y, y_pred=pred, groups=groups, column="sex") is None
    # no better than the majority class is not one class (a point may be inaccurate and still decide both ways)
    y, pred, groups = _rows(np.arange(40) % 2 == 0)
    assert one_class_reason(y_true=y, y_pred=1 - y, groups=groups, column="sex") is None
