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


def test_the_final_split_is_drawn_last_from_unused_rows_and_changes_no_other() -> None:
    """Adult as the specs split it: 2,000 / 1,000 / 5,000, then 10,000 final rows from the 24,561 left."""
    from fairprompt.datasets import load as load_dataset

    ds = load_dataset("adult")
    sizes = dict(train=2000, validation=1000, test=5000, seed=0)
    without = make_splits(frame=ds.frame, y=ds.y, **sizes)
    with_final = make_splits(frame=ds.frame, y=ds.y, final=10_000, **sizes)
    for name in ("train", "validation", "test"):
        assert np.array_equal(getattr(without, name), getattr(with_final, name))
    final = with_final.final
    assert final.size == 10_000 and np.unique(final).size == 10_000 and without.final.size == 0
    used = np.concatenate([with_final.train, with_final.validation, with_final.test])
    assert not np.intersect1d(final, used).size  # disjoint from every other split
    assert np.array_equal(final, make_splits(frame=ds.frame, y=ds.y, final=10_000, **sizes).final)  # seeded
    assert abs(ds.y[final].mean() - ds.y.mean()) < 0.01  # stratified by label
    assert with_final.describe()["final"] == 10_000 and "final" not in without.describe()
    left = len(ds.frame) - 8000
    assert make_splits(frame=ds.frame, y=ds.y, final=left, **sizes).final.size == left  # every unused row
    with pytest.raises(FairpromptError, match=f"has {left:,} rows left .* fewer than splits.final = {left + 1:,}"):
        make_splits(frame=ds.frame, y=ds.y, final=left + 1, **sizes)


def test_a_split_column_may_name_final_rows() -> None:

    frame = pd.DataFrame({"split": ["train", "val", "test", "final", "Final", "train"]})
    splits = make_splits(frame=frame, y=np.array([0, 1, 0, 1, 0, 1]), column="split")
    assert splits.final.tolist() == [3, 4] and splits.train.tolist() == [0, 5]


def test_a_final_split_larger_than_the_unused_rows_is_one_line(tmp_path) -> None:
    from factories import assert_user_error, run_cli, write_spec

    spec = write_spec(tmp_path, {"name": "t", "data": {"dataset": "adult"},
                                 "model": {"kind": "frozen_text", "splits": {"train": 2000, "validation": 1000,
                                                                             "test": 5000, "final": 30_000}},
                                 "audit": {"sensitive": ["sex"]}})
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "out"))
    assert_user_error(code, err, "splits.final = 30,000", "24,561 rows left")
    assert not (tmp_path / "out").exists()


def test_the_colored_digits_spec_holds_out_final_images_by_source() -> None:
    """audits/colored_digits.yaml takes the generator's split column: 181 final images, none of whose source digit
    images is in another split."""
    from pathlib import Path

    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_task

    task = load_task(load_spec(Path("audits/colored_digits.yaml")))
    s = task.splits
    assert (s.train.size, s.validation.size, s.test.size, s.final.size) == (1078, 359, 179, 181)
    assert s.describe()["final"] == 181
    source = task.dataset.frame["source_index"].to_numpy()
    others = np.concatenate([s.train, s.validation, s.test])
    assert not np.intersect1d(source[s.final], source[others]).size


def test_splits_final_with_a_split_column_is_one_line(tmp_path) -> None:
    """A split column says which rows are final; splits.final beside it would be silently ignored, so it is refused."""
    from factories import assert_user_error, run_cli, write_spec

    spec = write_spec(tmp_path, {"name": "t", "data": {"dataset": "colored_digits"},
                                 "model": {"kind": "frozen_image", "splits": {"column": "split", "final": 100}},
                                 "audit": {"sensitive": ["group"]}})
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "out"))
    assert_user_error(code, err, "splits.final = 100", "split column 'split'", "(181 now)", "colored_digits' four fractions")
    assert not (tmp_path / "out").exists()
    frame = pd.DataFrame({"split": ["train", "val", "test"]})
    with pytest.raises(FairpromptError, match="splits.final = 1 draws rows only without splits.column"):
        make_splits(frame=frame, y=np.zeros(3, dtype=np.int64), column="split", final=1)


def test_colored_digits_fractions_a_spec_cannot_split_by_is_one_line(tmp_path) -> None:
    from factories import assert_user_error, run_cli, write_spec

    options = {"fractions": [0.5, 0.5, 0.1, 0.1]}
    spec = write_spec(tmp_path, {"name": "t", "data": {"dataset": "colored_digits", "options": options},
                                 "model": {"kind": "frozen_image"}, "audit": {"sensitive": ["group"]}})
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "out"))
    assert_user_error(code, err, "option 'fractions'", "final")
    assert not (tmp_path / "out").exists()
