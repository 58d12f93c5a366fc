"""discrim-eval data and the discrimination scores: the vendored file, the scenario split, the three estimators that
must agree in a balanced design, the scenario bootstrap and the bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairprompt.datasets import discrim_eval as de
from fairprompt.errors import FairpromptError
from fairprompt.metrics.discrimination import (
    MIN_SCENARIOS,
    discrimination_scores,
    fixed_effects_regression,
    paired_differences,
    random_intercept_fixed_effects,
)

SHARED = Path("/work/shared/data")
FACTORS = list(de.FACTORS)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return de.load_discrim_eval()


def _synthetic(frame: pd.DataFrame, *, seed: int = 1) -> np.ndarray:
    """Scores with scenario intercepts, known effects (female +0.3, Black -0.2, -0.05 per decade) and noise."""
    rng = np.random.default_rng(seed)
    intercept = rng.normal(0.0, 1.0, frame["scenario"].max() + 1)
    return (intercept[frame["scenario"]] + 0.3 * (frame["gender"] == "female") - 0.2 * (frame["race"] == "Black")
            - 0.05 * (frame["age"] - 60) / 10 + rng.normal(0.0, 0.1, len(frame))).to_numpy()


def test_the_vendored_file(frame: pd.DataFrame) -> None:
    assert frame.shape == (9_450, 6)
    assert frame.groupby("scenario").size().eq(135).all() and frame["scenario"].nunique() == 70
    assert {c: sorted(frame[c].unique(), key=str) for c in FACTORS} == {f: sorted(v, key=str)
                                                                        for f, v in de.LEVELS.items()}
    assert int(frame["artefact"].sum()) == 16 and frame.loc[frame["artefact"], "scenario"].nunique() == 13
    assert de.SHA256 in (Path(de.path()).parent / "PROVENANCE.md").read_text(encoding="utf-8")
    if (SHARED / de.FILE).is_file():
        assert de.path().read_bytes() == (SHARED / de.FILE).read_bytes()


def test_one_factor_variants_and_the_split(frame: pd.DataFrame) -> None:
    one = de.one_factor_variants(frame)
    assert one.groupby("scenario").size().eq(15).all()
    off = sum((one[f] != de.REFERENCE[f]).astype(int) for f in FACTORS)
    assert off.max() == 1 and off.eq(0).sum() == 70
    split = de.scenario_split(frame["scenario"], seed=0)
    parts = [set(split.train), set(split.choose), set(split.held_out)]
    assert [len(p) for p in parts] == [40, 10, 20]
    assert set().union(*parts) == set(frame["scenario"]) and sum(len(p) for p in parts) == 70
    assert de.scenario_split(frame["scenario"], seed=0) == split != de.scenario_split(frame["scenario"], seed=1)
    with pytest.raises(FairpromptError, match="needs 70 scenarios; got 3"):
        de.scenario_split([1, 2, 3])


@pytest.mark.parametrize("design", ["full", "one_factor"])
def test_regression_equals_paired_differences_and_the_random_intercept_model(frame: pd.DataFrame,
                                                                             design: str) -> None:
    rows = frame if design == "full" else de.one_factor_variants(frame)
    score = _synthetic(rows)
    kw = {"factors": FACTORS, "reference": de.REFERENCE}
    regression = fixed_effects_regression(rows, score, **kw)
    paired = paired_differences(rows, score, **kw)
    mixed = random_intercept_fixed_effects(rows, score, **kw)
    assert set(regression) == set(paired) == set(mixed) and len(regression) == 14
    for key in regression:
        assert paired[key] == pytest.approx(regression[key], abs=1e-10)
        assert mixed[key] == pytest.approx(regression[key], abs=1e-10)
    assert regression[("gender", "female")] == pytest.approx(0.3, abs=0.03)
    assert regression[("race", "Black")] == pytest.approx(-0.2, abs=0.03)
    assert regression[("age", 100)] == pytest.approx(-0.2, abs=0.06)  # 3 standard errors
    scores = discrimination_scores(rows, score, n_resamples=200)
    assert scores.estimator_disagreement < 1e-10
    assert {(e.factor, e.value) for e in scores.resolved()} >= {("gender", "female"), ("race", "Black")}
    assert scores.age_slope is not None and scores.age_slope.estimate == pytest.approx(-0.05, abs=0.01)


def test_the_bootstrap_resamples_scenarios(frame: pd.DataFrame) -> None:
    rows = de.one_factor_variants(frame)
    score = _synthetic(rows)
    scores = discrimination_scores(rows, score, n_resamples=400, seed=3)
    female = scores.effect("gender", "female")
    per_scenario = pd.Series(score[(rows["gender"] == "female").to_numpy()]
                             - score[((rows["age"] == 60) & (rows["gender"] == "male")
                                      & (rows["race"] == "white")).to_numpy()])
    # the CI is that of a mean over 70 scenario-level differences, not over rows
    assert female.std_error == pytest.approx(per_scenario.std(ddof=1) / np.sqrt(70), rel=0.25)
    assert female.ci_low < female.estimate < female.ci_high
    assert female.rows == 70 and female.mean_p_yes == pytest.approx(
        float((1 / (1 + np.exp(-score[(rows["gender"] == "female").to_numpy()]))).mean()))
    # the same seed gives the same CI; scores shifted within every scenario by a constant change nothing
    again = discrimination_scores(rows, score + 5.0 * rows["scenario"].to_numpy(), n_resamples=400, seed=3)
    assert again.effect("gender", "female").ci_low == pytest.approx(female.ci_low, abs=1e-9)


def test_too_few_scenarios_resolve_nothing(frame: pd.DataFrame) -> None:
    rows = de.one_factor_variants(frame)
    few = rows[rows["scenario"].isin(sorted(rows["scenario"].unique())[:MIN_SCENARIOS - 1])].reset_index(drop=True)
    score = _synthetic(few) + 2.0 * (few["gender"] == "female").to_numpy()  # an effect no CI could miss
    scores = discrimination_scores(few, score, n_resamples=200)
    female = scores.effect("gender", "female")
    assert female.ci_low > 0 and not female.resolved and scores.resolved() == []
    assert scores.warnings and "resolves nothing" in scores.warnings[0]
    assert scores.to_dict()["effects"][0]["resolved"] is False


def test_no_intervals_and_constant_scores(frame: pd.DataFrame) -> None:
    rows = de.one_factor_variants(frame)
    score = _synthetic(rows) + 2.0 * (rows["gender"] == "female").to_numpy()
    none = discrimination_scores(rows, score, n_resamples=0)  # n_boot: 0 gives no intervals, and resolves nothing
    female = none.effect("gender", "female")
    assert female.estimate == pytest.approx(2.3, abs=0.06) and np.isnan(female.ci_low) and not female.resolved
    assert none.resolved() == [] and any("no intervals" in w for w in none.warnings)
    assert none.to_dict()["effects"][0]["ci_low"] != none.to_dict()["effects"][0]["ci_low"]  # NaN (None in JSON)
    flat = discrimination_scores(rows, np.zeros(len(rows)), n_resamples=50)  # no residual: no division by zero
    assert all(e.estimate == 0.0 for e in flat.effects) and flat.estimator_disagreement == 0.0
    assert any("every decision is 'no'" in w for w in flat.warnings)  # a one-answer model is said to be one
    yes = discrimination_scores(rows, score + 10.0, n_resamples=200)
    assert any("every decision is 'yes'" in w for w in yes.warnings) and yes.resolved()  # the scores still resolve


def test_bad_inputs(frame: pd.DataFrame) -> None:
    rows = de.one_factor_variants(frame)
    score = _synthetic(rows)
    with pytest.raises(FairpromptError, match=r"same variants once; scenario \d+"):
        discrimination_scores(rows.iloc[1:], score[1:])
    with pytest.raises(FairpromptError, match="NaN or infinite"):
        discrimination_scores(rows, np.where(np.arange(len(rows)) == 4, np.nan, score))
    with pytest.raises(FairpromptError, match="1050 rows"):
        discrimination_scores(rows, score[:10])
    with pytest.raises(FairpromptError, match=r"columns \['race'\]"):
        discrimination_scores(rows.drop(columns="race"), score)
    not_reference = rows[~((rows["age"] == 60) & (rows["gender"] == "male") & (rows["race"] == "white"))]
    with pytest.raises(FairpromptError, match="no row is the reference person"):
        discrimination_scores(not_reference, score[not_reference.index])
