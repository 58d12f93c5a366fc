"""Train / validation / test splits: disjoint, seeded, stratified, and stable under a smaller test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairprompt.datasets.splits import make_splits
from fairprompt.errors import FairpromptError

Y = np.r_[np.zeros(700, dtype=np.int64), np.ones(300, dtype=np.int64)]
FRAME = pd.DataFrame({"a": np.arange(1000)})


def test_draw_is_disjoint_seeded_and_stratified() -> None:
    s = make_splits(frame=FRAME, y=Y, train=200, validation=100, test=300, seed=1)
    assert (s.train.size, s.validation.size, s.test.size) == (200, 100, 300)
    assert len(set(s.train) | set(s.validation) | set(s.test)) == 600
    assert Y[s.train].mean() == pytest.approx(0.3) and Y[s.test].mean() == pytest.approx(0.3)
    again = make_splits(frame=FRAME, y=Y, train=200, validation=100, test=300, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((s.train, s.validation, s.test), (again.train, again.validation, again.test)))
    other = make_splits(frame=FRAME, y=Y, train=200, validation=100, test=300, seed=2)
    assert not np.array_equal(s.train, other.train)


def test_test_size_does_not_move_training_rows() -> None:
    small = make_splits(frame=FRAME, y=Y, train=200, validation=100, test=50)
    everything = make_splits(frame=FRAME, y=Y, train=200, validation=100, test=None)
    assert np.array_equal(small.train, everything.train) and np.array_equal(small.validation, everything.validation)
    assert set(small.test) <= set(everything.test) and everything.test.size == 700


def test_split_column() -> None:
    frame = pd.DataFrame({"split": ["train", "val", "test", "Train", "validation", "test"]})
    s = make_splits(frame=frame, y=np.zeros(6, dtype=np.int64), column="split")
    assert s.train.tolist() == [0, 3] and s.validation.tolist() == [1, 4] and s.test.tolist() == [2, 5]


@pytest.mark.parametrize(("frame", "kwargs", "message"), [
    (FRAME, {"train": 900, "validation": 100, "test": 300}, "lower those sizes"),
    (pd.DataFrame({"split": ["train", "test"]}), {"column": "split"}, "no 'validation' rows"),
    (pd.DataFrame({"split": ["train", "holdout"]}), {"column": "split"}, "'holdout'"),
    (pd.DataFrame({"part": ["train"]}), {"column": "split"}, "no split column 'split'"),
])
def test_bad_splits(frame: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(FairpromptError, match=message):
        make_splits(frame=frame, y=np.zeros(len(frame), dtype=np.int64), **kwargs)
