"""The reference mitigations: reweighing weights against AIF360, ThresholdOptimizer on scores against fairlearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairprompt.errors import FairpromptError
from fairprompt.mitigation import reweighing_weights, threshold_optimizer


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.35, "Female", "Male").astype(object)
    labels = (rng.random(n) < np.where(groups == "Male", 0.3, 0.1)).astype(int)
    return groups, labels


def test_reweighing_weights_equal_aif360() -> None:
    from aif360.algorithms.preprocessing import Reweighing
    from aif360.datasets import BinaryLabelDataset

    groups, labels = _data()
    frame = pd.DataFrame({"sex": (groups == "Male").astype(float), "label": labels.astype(float)})
    data = BinaryLabelDataset(df=frame, label_names=["label"], protected_attribute_names=["sex"],
                              favorable_label=1.0, unfavorable_label=0.0)
    reference = Reweighing(unprivileged_groups=[{"sex": 0.0}], privileged_groups=[{"sex": 1.0}]).fit_transform(data)
    ours = reweighing_weights(groups=groups, labels=labels)
    np.testing.assert_allclose(ours, reference.instance_weights, rtol=1e-12)


def test_reweighing_makes_label_independent_of_group_for_three_groups() -> None:
    rng = np.random.default_rng(1)
    groups = rng.choice(["a", "b", "c"], size=600, p=[0.5, 0.3, 0.2])
    labels = (rng.random(600) < np.select([groups == "a", groups == "b"], [0.5, 0.2], 0.1)).astype(int)
    w = reweighing_weights(groups=groups, labels=labels)
    overall = labels.mean()
    for g in ("a", "b", "c"):
        in_g = groups == g
        assert np.average(labels[in_g], weights=w[in_g]) == pytest.approx(overall, abs=1e-12)
        assert w[in_g].sum() == pytest.approx(in_g.sum(), rel=1e-12)  # each group keeps its weight


def test_threshold_optimizer_equals_fairlearn_on_a_fitted_model() -> None:
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    groups, labels = _data(1200, seed=3)
    X = np.column_stack([labels + rng.normal(0, 1.0, labels.size), (groups == "Male") + rng.normal(0, 1, labels.size)])
    fit, use = np.arange(600), np.arange(600, 1200)
    model = LogisticRegression().fit(X[fit], labels[fit])
    reference = ThresholdOptimizer(estimator=model, constraints="demographic_parity", objective="accuracy_score",
                                   prefit=True, predict_method="predict_proba")
    reference.fit(X[fit], labels[fit], sensitive_features=groups[fit])
    expected = reference.predict(X[use], sensitive_features=groups[use], random_state=0)
    scores = model.predict_proba(X)[:, 1]
    ours = threshold_optimizer(fit_scores=scores[fit], fit_labels=labels[fit], fit_groups=groups[fit],
                               scores=scores[use], groups=groups[use], seed=0)
    np.testing.assert_array_equal(ours, expected)
    rate = lambda p, g: p[groups[use] == g].mean()  # noqa: E731
    before = (scores[use] >= 0.5).astype(int)
    assert abs(rate(ours, "Male") - rate(ours, "Female")) < abs(rate(before, "Male") - rate(before, "Female"))


@pytest.mark.parametrize("call, fragment", [
    (lambda: reweighing_weights(groups=["a", "a"], labels=[0, 1]), "single group"),
    (lambda: reweighing_weights(groups=["a", "b", "b"], labels=[0, 1]), "3 group labels for 2 labels"),
    (lambda: threshold_optimizer(fit_scores=[0.2, 0.8], fit_labels=[0, 1], fit_groups=["a", "b"], scores=[0.5],
                                 groups=["c"]), "no rows in the fit split"),
])
def test_bad_input_is_a_clear_error(call, fragment: str) -> None:
    with pytest.raises(FairpromptError, match=fragment):
        call()
