"""fairprompt.datasets: embedded data sets, users' files, and the errors people see."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairprompt import datasets
from fairprompt.datasets import Dataset, load, read_table, sha256_file
from fairprompt.datasets.embedded import DATA_DIR, EMBEDDED
from fairprompt.errors import FairpromptError

SHARED = Path("/work/shared/data")


@pytest.fixture(scope="module")
def loaded() -> dict[str, Dataset]:
    return {name: load(name) for name in datasets.NAMES}


# --------------------------------------------------------------------------- embedded data sets


def test_names_and_available(loaded: dict[str, Dataset]) -> None:
    assert datasets.NAMES == ("adult", "compas", "compas_violent", "german")
    infos = [i for i in datasets.available() if i.kind == "embedded"]
    assert [i.name for i in infos] == list(datasets.NAMES)
    for info in infos:
        ds = loaded[info.name]
        assert ds.frame.shape == (info.rows, info.columns), info.name
        assert (ds.label, ds.favourable_label, ds.sensitive) == (info.label, info.favourable_label, info.sensitive)
        assert ds.description == info.description and info.licence
        assert ds.source == f"embedded:{info.name}" and ds.sha256 == info.sha256


def test_adult(loaded: dict[str, Dataset]) -> None:
    ds = loaded["adult"]
    assert ds.frame.shape == (32_561, 15)
    assert (ds.label, ds.favourable_label, ds.sensitive) == ("income-per-year", ">50K", ("sex", "race"))
    assert ds.y.dtype.kind == "i" and set(np.unique(ds.y)) == {0, 1}
    assert int(ds.y.sum()) == 7_841
    frame = ds.frame
    text = frame.select_dtypes(exclude="number")
    assert not (text == "?").any().any()
    assert not text.apply(lambda s: s.dropna().str.contains(r"^\s|\s$", regex=True).any()).any()
    assert int(frame.isna().sum().sum()) == 4_262
    assert frame["sex"].value_counts().to_dict() == {"Male": 21_790, "Female": 10_771}


def test_german(loaded: dict[str, Dataset]) -> None:
    ds = loaded["german"]
    assert ds.frame.shape == (1_000, 23)
    assert (ds.label, ds.favourable_label, ds.sensitive) == ("credit", 1, ("sex", "age_group"))
    assert int(ds.y.sum()) == 700
    frame = ds.frame
    assert frame["sex"].value_counts().to_dict() == {"male": 690, "female": 310}
    assert frame["age_group"].value_counts().to_dict() == {"25 and over": 851, "under 25": 149}
    assert set(frame.loc[frame["personal_status"].isin(["A92", "A95"]), "sex"]) == {"female"}
    assert (frame.loc[frame["age"] < 25, "age_group"] == "under 25").all()


def test_compas_filtered(loaded: dict[str, Dataset]) -> None:
    ds = loaded["compas"]
    assert ds.frame.shape == (6_172, 48)
    assert (ds.label, ds.favourable_label, ds.sensitive) == ("two_year_recid", 0, ("race", "sex", "age_cat"))
    # favourable = did NOT re-offend: y is 1 where two_year_recid is 0
    assert int(ds.y.sum()) == 3_363 and int((ds.frame["two_year_recid"] == 1).sum()) == 2_809
    np.testing.assert_array_equal(ds.y, (ds.frame["two_year_recid"] == 0).astype(int))
    f = ds.frame
    assert f["days_b_screening_arrest"].between(-30, 30).all()
    assert (f["is_recid"] != -1).all() and (f["c_charge_degree"] != "O").all() and f["score_text"].notna().all()
    assert not any(c.endswith(".1") for c in f.columns)
    assert f["race"].value_counts()["African-American"] == 3_175
    assert "7,214 -> 6,172" in ds.notes


def test_compas_unfiltered() -> None:
    ds = load("compas", compas_filter=False)
    assert ds.frame.shape == (7_214, 48)
    assert ds.frame["race"].value_counts()["African-American"] == 3_696
    assert "not applied" in ds.notes


def test_compas_violent(loaded: dict[str, Dataset]) -> None:
    ds = loaded["compas_violent"]
    assert ds.frame.shape == (4_020, 48)
    assert (ds.label, ds.favourable_label) == ("two_year_recid", 0)
    assert int(ds.y.sum()) == 3_368 and int((1 - ds.y).sum()) == 652
    f = ds.frame
    # the label is violent re-offence: every 1 is a violent re-offender
    assert (f.loc[f["two_year_recid"] == 1, "is_violent_recid"] == 1).all()
    assert "two_year_recid.1" not in f.columns and f["v_score_text"].notna().all()
    raw = load("compas_violent", compas_filter=False).frame
    assert len(raw) == 4_743 and int(raw["two_year_recid"].sum()) == 775


def test_role_overrides() -> None:
    ds = load("german", sensitive="sex")
    assert ds.sensitive == ("sex",)
    ds = load("adult", label="sex", favourable_label="Female", sensitive=["race"])
    assert int(ds.y.sum()) == 10_771
    relabelled = load("adult", label="sex")
    assert relabelled.favourable_label is None  # the default favourable label belongs to the default label
    assert relabelled.sensitive == ("race",)  # and the label leaves the default sensitive columns
    assert load("compas", favourable_label="0").favourable_label == 0  # "0" from a YAML file matches the int column


# --------------------------------------------------------------------------- checksums and provenance


def _provenance_checksums() -> dict[str, str]:
    text = (DATA_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    return dict(re.findall(r"\|\s*([\w.-]+\.csv\.gz)\s*\|.*\|\s*([0-9a-f]{64})\s*\|", text))


def test_checksums_match_provenance() -> None:
    recorded = _provenance_checksums()
    assert set(recorded) == {e.info.file for e in EMBEDDED.values()}
    for entry in EMBEDDED.values():
        assert recorded[entry.info.file] == entry.info.sha256
        assert sha256_file(entry.path) == entry.info.sha256
        if (SHARED / entry.info.file).is_file():
            assert entry.path.read_bytes() == (SHARED / entry.info.file).read_bytes()


def test_provenance_documents_the_counts() -> None:
    text = (DATA_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    for fragment in ("7,214 -> 6,172", "4,743 -> 4,020", "7,841", "700", "1 = re-offended within two years"):
        assert fragment in text


def test_verify_detects_a_changed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    with gzip.open(data / "german.csv.gz", "ab") as handle:
        handle.write(b"A11,6,A34,A43,1169,A65,A75,4,A93,A101,4,A121,67,A143,A152,2,A173,1,A192,A201,1\n")
    monkeypatch.setattr("fairprompt.datasets.embedded.DATA_DIR", data)
    with pytest.raises(FairpromptError, match=r"german\.csv\.gz.*sha256.*reinstall"):
        load("german")
    assert len(load("german", verify=False).frame) == 1_001
    (data / "adult.csv.gz").unlink()
    with pytest.raises(FairpromptError, match=r"adult\.csv\.gz.*missing"):
        load("adult")


# --------------------------------------------------------------------------- users' files


@pytest.fixture()
def small() -> pd.DataFrame:
    return pd.DataFrame({
        "outcome": ["yes", "no", "yes", "no"],
        "group": ["a", "a", "b", "b"],
        "age": [21, 35, 47, 52],
        "score": [0.9, 0.2, 0.7, 0.4],
    })


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet", "t.pq", "T.CSV"])
def test_round_trip(tmp_path: Path, small: pd.DataFrame, name: str) -> None:
    path = tmp_path / name
    if ".csv" in name.lower():
        small.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    else:
        small.to_parquet(path, engine="pyarrow")
    pd.testing.assert_frame_equal(read_table(path), small, check_dtype=False)
    ds = load(path, label="outcome", favourable_label="yes", sensitive=["group"])
    assert ds.name == "t" or ds.name == "T"
    assert ds.source == str(path) and ds.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.y.tolist() == [1, 0, 1, 0] and ds.sensitive == ("group",)
    pd.testing.assert_frame_equal(ds.frame, small, check_dtype=False)


def test_file_without_roles(tmp_path: Path, small: pd.DataFrame) -> None:
    path = tmp_path / "preds.csv"
    small.to_csv(path, index=False)
    ds = load(str(path))
    assert ds.label is None and ds.favourable_label is None and ds.sensitive == ()
    with pytest.raises(FairpromptError, match="no label column"):
        _ = ds.y


def test_binary_label_needs_no_favourable(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    pd.DataFrame({"y": [0, 1, 1], "g": ["a", "b", "b"]}).to_csv(path, index=False)
    assert load(path, label="y").y.tolist() == [0, 1, 1]
    path2 = tmp_path / "c.csv"
    pd.DataFrame({"y": ["p", "q", "q"]}).to_csv(path2, index=False)
    with pytest.raises(FairpromptError, match=r"'y'.*not 0/1.*favourable_label"):
        _ = load(path2, label="y").y


# --------------------------------------------------------------------------- errors people see


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(FairpromptError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_name_suggests_closest() -> None:
    message = _error(load, "adlt")
    assert "'adlt'" in message and "did you mean 'adult'" in message
    message = _error(load, "compas-violent")
    assert "did you mean 'compas_violent'" in message
    message = _error(load, "mnist_but_not")
    assert "'adult'" in message and "'german'" in message  # nothing close: the choices are listed


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    for call in (load, read_table, sha256_file):
        message = _error(call, path)
        assert str(path) in message and "does not exist" in message
    assert "directory" in _error(read_table, tmp_path)


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"not really excel")
    message = _error(load, path)
    assert str(path) in message and ".xlsx" in message and ".parquet" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "is empty"),
        ("header.csv", b"a,b,c\n", "no data rows"),
        ("blank.csv", b"\n\n\n", "is empty"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5,6\n", "could not read"),
        ("latin.csv", b"name,city\nJos\xe9,M\xfcnchen\n", "UTF-8"),
        ("notgz.csv.gz", b"a,b\n1,2\n", "not a valid, complete gzip"),
        ("broken.parquet", b"PAR1 this is not parquet", "could not read"),
        ("semi.csv", b"a;b;c\n1;2;3\n", "semicolon"),
    ],
)
def test_malformed_or_empty(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    message = _error(read_table, path)
    assert str(path) in message and expected in message
    assert _error(load, path) == message


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    body = "a,b\n" + "".join(f"{i},{i * 7919 % 10007}\n" for i in range(5000))
    compressed = gzip.compress(body.encode())
    path.write_bytes(compressed[: len(compressed) // 2])
    message = _error(read_table, path)
    assert str(path) in message and "complete gzip" in message


def test_parquet_without_rows_or_columns(tmp_path: Path) -> None:
    rows = tmp_path / "norows.parquet"
    pd.DataFrame({"a": pd.Series([], dtype="int64")}).to_parquet(rows)
    assert "no data rows" in _error(read_table, rows)
    cols = tmp_path / "nocols.parquet"
    pd.DataFrame(index=range(3)).to_parquet(cols)
    message = _error(read_table, cols)
    assert str(cols) in message and ("no columns" in message or "no data rows" in message)


def test_missing_label_column(tmp_path: Path, small: pd.DataFrame) -> None:
    path = tmp_path / "s.csv"
    small.to_csv(path, index=False)
    message = _error(load, path, label="outcom")
    assert str(path) in message and "label column 'outcom'" in message and "did you mean 'outcome'" in message
    message = _error(load, "adult", label="income_per_year")
    assert "'adult'" in message and "did you mean 'income-per-year'" in message


def test_missing_sensitive_column(tmp_path: Path, small: pd.DataFrame) -> None:
    path = tmp_path / "s.parquet"
    small.to_parquet(path)
    message = _error(load, path, label="outcome", sensitive=["group", "agee"])
    assert str(path) in message and "sensitive column 'agee'" in message and "did you mean 'age'" in message
    message = _error(load, "german", sensitive=["gender"])
    assert "'german'" in message and "'gender'" in message


def test_favourable_label_checks(tmp_path: Path, small: pd.DataFrame) -> None:
    path = tmp_path / "s.csv"
    small.to_csv(path, index=False)
    message = _error(load, path, label="outcome", favourable_label="maybe")
    assert "'maybe'" in message and "'outcome'" in message and "'yes'" in message
    assert "label column" in _error(load, path, favourable_label="yes")
    assert "both the label and a sensitive" in _error(load, path, label="group", sensitive=["group"])
    assert "'2'" in _error(load, "compas", favourable_label="2")
