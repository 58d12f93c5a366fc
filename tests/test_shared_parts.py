"""The parts the repairs share, each in its one home: the group gap, AUC, the before/after comparison and the paired
bootstrap (fairprompt.metrics), the atomic folder replace (fairprompt.atomic), and the repair-method registry and
the spec blocks derived from its config dataclasses."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from fairprompt.atomic import replace_dir
from fairprompt.errors import FairpromptError
from fairprompt.metrics import HEADLINE, auc_or_none, compare_audits, group_gap, paired_bootstrap
from fairprompt.metrics.paired import resample_clusters, resample_rows


# ------------------------------------------------------------------------------------------ gap = fairlearn
@pytest.mark.parametrize("n_groups", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gap_equals_fairlearn(n_groups: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    groups = np.array(["a", "b", "c"])[rng.integers(0, n_groups, n)]
    y_true = rng.integers(0, 2, n)
    y_pred = (rng.random(n) < np.where(groups == "a", 0.7, 0.4)).astype(int)  # a real gap for group a
    dp = group_gap(y_true=y_true, y_pred=y_pred, groups=groups, measure="demographic_parity")
    eo = group_gap(y_true=y_true, y_pred=y_pred, groups=groups, measure="equalized_odds")
    assert dp == pytest.approx(demographic_parity_difference(y_true, y_pred, sensitive_features=groups), abs=1e-12)
    assert eo == pytest.approx(equalized_odds_difference(y_true, y_pred, sensitive_features=groups), abs=1e-12)
    assert dp > 0.1 and eo > 0.1
    # one group: no gap.  It is undefined (NaN), as everywhere in the metric engine; the old reprogram.gap said 0.0
    one = np.full(n, "a")
    assert math.isnan(group_gap(y_true=y_true, y_pred=y_pred, groups=one, measure="demographic_parity"))
    assert math.isnan(group_gap(y_true=y_true, y_pred=y_pred, groups=one, measure="equalized_odds"))


def test_gap_is_nan_only_where_undefined() -> None:
    groups = np.array(["a", "a", "b", "b"])
    y_true = np.array([1, 1, 1, 0])  # group a has no negative rows: its FPR is undefined
    y_pred = np.array([1, 0, 1, 1])
    assert group_gap(y_true=y_true, y_pred=y_pred, groups=groups, measure="demographic_parity") == 0.5
    assert group_gap(y_true=y_true, y_pred=y_pred, groups=groups, measure="equal_opportunity") == 0.5
    assert math.isnan(group_gap(y_true=y_true, y_pred=y_pred, groups=groups, measure="equalized_odds"))
    with pytest.raises(ValueError, match="unknown gap measure"):
        group_gap(y_true=y_true, y_pred=y_pred, groups=groups, measure="parity")


def test_auc_or_none() -> None:
    assert auc_or_none([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3]) == 1.0
    assert auc_or_none([1, 1], [0.1, 0.9]) is None


def test_compare_audits_lists_the_headline_disparities_and_accuracy() -> None:
    def audit(dp: float | None, accuracy: float) -> dict:
        return {"slices": [{"name": "sex", "disparities": [
                    {"metric": "demographic_parity_difference", "convention": "between_groups", "value": dp,
                     "ci_low": 0.0, "ci_high": 0.3, "ideal": 0.0},
                    {"metric": "demographic_parity_difference", "convention": "to_reference", "value": -0.5},
                    {"metric": "fpr_difference", "convention": "between_groups", "value": 0.2}]}],
                "overall": [{"metric": "accuracy", "value": accuracy}]}

    rows = compare_audits(before=audit(0.2, 0.8), after=audit(0.05, 0.79))
    assert "demographic_parity_difference" in HEADLINE and "fpr_difference" not in HEADLINE
    assert [(r["slice"], r["metric"]) for r in rows] == [("sex", "demographic_parity_difference"), ("overall", "accuracy")]
    assert rows[0]["change"] == pytest.approx(-0.15) and rows[0]["ideal"] == 0.0 and rows[1]["ideal"] == 1.0
    assert compare_audits(before=audit(None, 0.8), after=audit(0.1, 0.8))[0]["change"] is None


def test_paired_bootstrap_pairs_the_resamples() -> None:
    rng = np.random.default_rng(0)
    n = 400
    groups = np.array(["a", "b"])[rng.integers(0, 2, n)]
    y = rng.integers(0, 2, n)
    base = (rng.random(n) < np.where(groups == "a", 0.7, 0.3)).astype(int)
    fairer = (rng.random(n) < 0.5).astype(int)
    table = paired_bootstrap(y_true=y, groups=groups, predictions={"base": base, "fairer": fairer, "same": base.copy()},
                             base="base", gaps={"dp": "demographic_parity_difference",
                                                "eo": "equalized_odds_difference", "fpr_gap": "fpr_difference"},
                             n_boot=200, seed=1)
    b, f, same = table["base"], table["fairer"], table["same"]
    assert b["dp"] == pytest.approx(demographic_parity_difference(y, base, sensitive_features=groups), abs=1e-12)
    assert b["eo"] == pytest.approx(equalized_odds_difference(y, base, sensitive_features=groups), abs=1e-12)
    assert b["accuracy"] == pytest.approx(float((base == y).mean()), abs=1e-12)
    assert b["dp_ci"][0] < b["dp"] < b["dp_ci"][1] and f["dp_relative_change"] < 0 and f["dp_relative_change_ci"][1] < 0
    assert same["accuracy_change_ci"] == [0.0, 0.0] and same["dp_relative_change"] == 0.0  # paired: same rows
    assert table["base"]["fpr_gap_relative_change"] == 0.0
    again = paired_bootstrap(y_true=y, groups=groups, predictions={"base": base, "fairer": fairer}, base="base",
                             n_boot=200, seed=1)
    assert again["fairer"]["dp_ci"] == f["dp_ci"]  # seeded
    with pytest.raises(ValueError, match="base"):
        paired_bootstrap(y_true=y, groups=groups, predictions={"x": base}, base="y")


def test_paired_bootstrap_by_cluster() -> None:
    """One row per cluster is the row bootstrap; copies of a row move together, so duplicating every row leaves
    the cluster bootstrap's intervals as they were while a row bootstrap would narrow them; gap changes are
    differences on the same resamples."""
    rng = np.random.default_rng(3)
    n = 300
    groups = np.array(["a", "b"])[rng.integers(0, 2, n)]
    y = rng.integers(0, 2, n)
    base = (rng.random(n) < np.where(groups == "a", 0.7, 0.3)).astype(int)
    fairer = (rng.random(n) < 0.5).astype(int)
    predictions = {"base": base, "fairer": fairer}
    rows = paired_bootstrap(y_true=y, groups=groups, predictions=predictions, base="base", n_boot=300, seed=2)
    singletons = paired_bootstrap(y_true=y, groups=groups, predictions=predictions, base="base", n_boot=300, seed=2,
                                  clusters=np.arange(n))
    assert singletons == rows
    assert np.array_equal(resample_clusters(np.arange(n), n_boot=5, seed=1), resample_rows(n, n_boot=5, seed=1))
    twice = {k: np.concatenate([v, v]) for k, v in predictions.items()}
    copies = paired_bootstrap(y_true=np.concatenate([y, y]), groups=np.concatenate([groups, groups]),
                              predictions=twice, base="base", n_boot=300, seed=2,
                              clusters=np.concatenate([np.arange(n), np.arange(n)]))
    assert copies["fairer"]["dp_ci"] == pytest.approx(rows["fairer"]["dp_ci"], abs=1e-12)
    f = rows["fairer"]
    assert f["dp_change"] == pytest.approx(f["dp"] - rows["base"]["dp"], abs=1e-12)
    assert f["dp_change_ci"][1] < 0 and rows["base"]["eo_change_ci"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="clusters has 3 entries for 300 rows"):
        paired_bootstrap(y_true=y, groups=groups, predictions=predictions, base="base", clusters=[1, 2, 3])


# ------------------------------------------------------------------------------------------ atomic folders
def test_replace_dir_replaces_atomically_and_leaves_nothing_behind(tmp_path: Path) -> None:
    def fill(text: str):
        def write(staging: Path) -> None:
            (staging / "a.txt").write_text(text)
        return write

    final = replace_dir(tmp_path, "out", fill("one"))
    assert final == tmp_path / "out" and (final / "a.txt").read_text() == "one"
    replace_dir(tmp_path, "out", fill("two"))
    assert (tmp_path / "out" / "a.txt").read_text() == "two"
    replace_dir(tmp_path, "out", fill("three"), overwrite=False)  # kept: another writer got there first
    assert (tmp_path / "out" / "a.txt").read_text() == "two"

    def broken(staging: Path) -> None:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("crash while filling")

    with pytest.raises(RuntimeError, match="crash"):
        replace_dir(tmp_path, "out", broken)
    assert (tmp_path / "out" / "a.txt").read_text() == "two" and not (tmp_path / "out" / "half.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging folders left"
    assert (tmp_path / "out").stat().st_mode & 0o777 != 0o700, "not left private like a temporary folder"


# ------------------------------------------------------------------------------------------ registry and spec blocks
def test_registry_lists_the_methods_and_importing_them_loads_no_torch() -> None:
    code = ("import sys; import fairprompt.mitigation as m; import fairprompt.spec; "
            "from fairprompt.mitigation.registry import methods; "
            "from fairprompt.mitigation import FairIJConfig, ReprogramConfig; "
            "print(list(methods()), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["['fairij',", "'reprogram']", "False"]
    from fairprompt.mitigation import fairij, reprogram
    from fairprompt.mitigation.registry import method, methods

    assert callable(fairij) and callable(reprogram)
    for name, m in methods().items():
        assert m.name == name and hasattr(m, "run") and hasattr(m, "check_data") and hasattr(m, "check_model")
    with pytest.raises(FairpromptError, match="did you mean 'fairij'"):
        method("fairjj")


def test_spec_blocks_are_derived_from_the_config_dataclasses() -> None:
    import dataclasses

    from fairprompt.mitigation import FairIJConfig, ReprogramConfig
    from fairprompt.spec import AppendTrainingSpec, FairIJSpec, ReprogramSpec

    for block, config in ((FairIJSpec, FairIJConfig), (ReprogramSpec, ReprogramConfig)):
        spec_keys = [f.name for f in dataclasses.fields(config) if f.metadata.get("spec", True)]
        assert [k for k in block.model_fields if k not in ("name", "group")] == spec_keys
        for f in dataclasses.fields(config):
            if f.name in block.model_fields:
                assert block.model_fields[f.name].description == f.metadata["help"]
        assert block().config() == config()  # same defaults
    assert list(AppendTrainingSpec.model_fields) == ["max_epochs", "patience", "batch_size", "lr"]
    assert "l2" not in FairIJSpec.model_fields  # an API-only setting
    # the config's own checks run when the spec is read, on the block's key
    with pytest.raises(ValueError, match="projection needs objective: adversary"):
        ReprogramSpec(projection=True)
    assert FairIJSpec(verify=True, verify_epochs=2).config().verify_epochs == 2


def test_permutation_floor_separates_a_real_gap_from_noise() -> None:
    """Decisions that ignore the group sit at their floor (excess near 0, large p-value); a gap put into one group
    stands out; the floor is the same for any labelling of the same sizes, and bad input is a clear error."""
    from fairprompt.metrics.noise_floor import permutation_floor

    rng = np.random.default_rng(0)
    n, k = 3400, 17
    groups = np.repeat([f"g{i:02d}" for i in range(k)], n // k)
    y = np.ones(n, dtype=int)
    blind = (rng.random(n) < 0.9).astype(int)
    noise = permutation_floor(y_true=y, y_pred=blind, groups=groups, n_perm=300, seed=1)
    assert noise["observed"] > 0.03 and noise["p_value"] > 0.05  # max - min over 17 groups of 200 is never 0
    assert abs(noise["excess"]) < 0.03 and noise["floor"] < noise["floor_quantile"]
    biased = blind.copy()
    biased[:200] = (rng.random(200) < 0.6).astype(int)  # group g00 flagged far more often
    real = permutation_floor(y_true=y, y_pred=biased, groups=groups, n_perm=300, seed=1)
    assert real["p_value"] < 0.01 and real["excess"] > 0.15
    assert real["observed"] == pytest.approx(group_gap(y_true=y, y_pred=biased, groups=groups,
                                                       measure="equal_opportunity"), abs=1e-12)
    with pytest.raises(ValueError, match="differ in length"):
        permutation_floor(y_true=y[:-1], y_pred=blind, groups=groups)
    with pytest.raises(ValueError, match="two groups"):
        permutation_floor(y_true=y, y_pred=blind, groups=np.zeros(n))
