"""The spec pipeline on the embedded data: the demo's path, reproducibility and atomic outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairprompt import pipeline
from fairprompt.errors import FairpromptError
from fairprompt.spec import Spec, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def adult_spec(**audit: object) -> Spec:
    raw = load_spec(ROOT / "audits" / "adult_baseline.yaml").model_dump(mode="json", exclude_unset=True)
    raw["audit"] = {**raw["audit"], "n_boot": 100, **audit}
    return parse_spec(raw, source="test")


@pytest.mark.parametrize("path", sorted((ROOT / "audits").glob("*.yaml")), ids=lambda p: p.name)
def test_every_committed_spec_validates(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem


def test_adult_baseline_runs_and_reports(tmp_path: Path) -> None:
    out = pipeline.run(adult_spec(), out_dir=tmp_path / "adult")
    results = json.loads(out.results_path.read_text())
    assert results["data"]["rows"] == 32_561
    assert results["data"]["rows_audited"] == out.audit.n_rows == 9_769  # the 30% held out
    names = [s["name"] for s in results["audit"]["slices"]]
    assert names == ["sex", "race", "sex × race"]
    sex = out.audit.slice("sex")
    assert sex.reference == "Male" and sex.reference_rule == "configured"
    dp = sex.disparity("demographic_parity_difference")
    value, low, high = dp[["value", "ci_low", "ci_high"]].iloc[0]
    assert 0.0 < low <= value <= high  # the baseline selects men more often, as the census data would suggest
    assert results["model"]["kind"] == "logistic_regression" and "sex" not in results["model"]["features"]
    assert results["inputs"][0]["sha256"] == "937b0d95ef69b33d76bd4280560d8e96eaadad5dda870b2cf32401029ac64ec4"
    html = out.report_path.read_text()
    assert "<svg" in html
    assert not list(out.out_dir.glob(".*.tmp"))


@pytest.mark.slow  # three whole runs
def test_same_seed_gives_identical_results(tmp_path: Path) -> None:
    a = pipeline.run(adult_spec(seed=7), out_dir=tmp_path / "a")
    b = pipeline.run(adult_spec(seed=7), out_dir=tmp_path / "b")
    c = pipeline.run(adult_spec(seed=8), out_dir=tmp_path / "c")
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "created"}  # noqa: E731
    assert strip(a.results_path) == strip(b.results_path)
    assert (a.report_path.read_text().replace(a.results["created"], "")
            == b.report_path.read_text().replace(b.results["created"], ""))
    assert strip(a.results_path)["audit"]["slices"] != strip(c.results_path)["audit"]["slices"]


def test_bad_model_feature_is_a_user_error(tmp_path: Path) -> None:
    raw = load_spec(ROOT / "audits" / "adult_baseline.yaml").model_dump(mode="json", exclude_unset=True)
    raw["model"]["features"] = ["age", "educaton"]
    with pytest.raises(FairpromptError, match="'educaton'.*'education'"):
        pipeline.run(parse_spec(raw, source="test"), out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unknown_embedded_dataset_is_a_user_error(tmp_path: Path) -> None:
    raw = {"name": "x", "data": {"dataset": "adlt"}, "model": {}, "audit": {"n_boot": 0}}
    with pytest.raises(FairpromptError, match="adult"):
        pipeline.run(parse_spec(raw, source="test"), out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()
